//! `--instructions`: the instructions one operation of each in-memory row costs, counted
//! by valgrind's callgrind. Instruction counts do not depend on the load of the machine
//! the way times do, so they can hold a build to a committed baseline: CI runs this with
//! `--baseline benches/instructions.baseline` and fails when a row costs more than 10 %
//! more than its line there.
//!
//! Each row runs twice in a child process of its own (`--count ROW --ops N`, this binary
//! under callgrind), with two numbers of operations; the difference of the two totals
//! divided by the difference of the operations is the cost of one operation, with the
//! process start, the setup (prefilled stores, warm caches) and the exit cancelled out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::args::InstructionOptions;
use crate::contenders::ours_mem;
use crate::error::BenchError;
use crate::scenarios::{MEDIATOR_DIRECT, MEDIATOR_SEND, MEM_HANDLERS, MEM_LONG, MEM_SCALE, MEM_SPREAD};
use crate::stats::{count_f64, group_digits};

/// A row counted, and the two numbers of operations it runs.
struct Counted {
    id: &'static str,
    ops: [usize; 2],
}

/// The rows, cheapest setup first. The scale rows take at most `SCALE_COMMANDS`
/// operations (each touches an aggregate once).
const ROWS: &[Counted] = &[
    Counted { id: MEDIATOR_SEND, ops: [20_000, 120_000] },
    Counted { id: MEDIATOR_DIRECT, ops: [20_000, 120_000] },
    Counted { id: MEM_SPREAD[0], ops: [2_000, 12_000] },
    Counted { id: MEM_LONG[1].1, ops: [20, 120] },
    Counted { id: MEM_SCALE[0].1, ops: [200, 1_000] },
    Counted { id: MEM_SCALE[1].1, ops: [200, 1_000] },
    Counted { id: MEM_HANDLERS, ops: [200, 1_000] },
];

/// How much more a row may cost than its baseline before the check fails...
const TOLERANCE: f64 = 0.10;
/// ...and by at least this many instructions: a row of a dozen (the direct call) moves by
/// more than 10 % when the compiler lays out a loop differently.
const SLACK: f64 = 50.0;

/// The child's `main`: one row's operation `ops` times, on one thread (so callgrind
/// counts one deterministic schedule).
pub(crate) fn count_main(row: &str, ops: usize) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ours_mem::count(row, ops)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Counts every row, prints the table, writes and checks the baselines asked for.
/// `Ok(false)` when a row regressed against the baseline.
pub(crate) fn run(opts: &InstructionOptions) -> Result<bool, BenchError> {
    let baseline = opts.baseline.as_deref().map(read_baseline).transpose()?;
    let exe = std::env::current_exe().map_err(|e| BenchError::io("finding the benchmark's own executable", e))?;
    let dir = std::env::temp_dir().join(format!("cqrs_ddd_instructions_{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
    let counted = count_all(&exe, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let counted = counted?;
    let (table, ok) = table(&counted, baseline.as_ref());
    println!("{table}");
    if let Some(path) = &opts.write_baseline {
        std::fs::write(path, baseline_text(&counted))
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        eprintln!("baseline written to {}", path.display());
    }
    Ok(ok)
}

fn count_all(exe: &Path, dir: &Path) -> Result<Vec<(&'static str, f64)>, BenchError> {
    let mut counted = Vec::new();
    for row in ROWS {
        // The two runs of a row side by side: valgrind runs a program on one core.
        let runs = row.ops.map(|ops| start(exe, dir, row.id, ops));
        let [small, large] = runs.map(|run| run.and_then(|(child, out)| finish(child, &out, row.id)));
        let (small, large) = (small?, large?);
        let per_op = (large - small) / count_f64(row.ops[1] - row.ops[0]);
        eprintln!("{:<20} {} instructions per operation", row.id, group_digits(&format!("{per_op:.0}")));
        counted.push((row.id, per_op));
    }
    Ok(counted)
}

fn start(exe: &Path, dir: &Path, id: &str, ops: usize) -> Result<(std::process::Child, PathBuf), BenchError> {
    let out = dir.join(format!("{id}-{ops}.callgrind"));
    let child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--count", id, "--ops", &ops.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "starting valgrind (not installed? `apt-get install valgrind`)".to_owned()
            } else {
                "starting valgrind".to_owned()
            };
            BenchError::io(what, e)
        })?;
    Ok((child, out))
}

/// Waits for a counting child; the instructions it ran.
fn finish(child: std::process::Child, out: &Path, id: &'static str) -> Result<f64, BenchError> {
    let output = child.wait_with_output().map_err(|e| BenchError::io("waiting for valgrind", e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("==")).collect();
        return Err(BenchError::Cell { contender: "cqrs-ddd", group: id, message: message.join("\n") });
    }
    let text = std::fs::read_to_string(out).map_err(|e| BenchError::io(format!("reading {}", out.display()), e))?;
    totals(&text).ok_or_else(|| BenchError::Check(format!("{} has no `totals:` line", out.display())))
}

/// The `totals:` (or `summary:`) line of a callgrind output file.
fn totals(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn read_baseline(path: &Path) -> Result<BTreeMap<String, f64>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
    parse_baseline(&text).map_err(|e| BenchError::Usage(format!("{}: {e}", path.display())))
}

/// `row instructions` per line; `#` starts a comment.
fn parse_baseline(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut rows = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().map(str::parse::<f64>), parts.next()) {
            (Some(id), Some(Ok(v)), None) if v.is_finite() && v > 0.0 => {
                rows.insert(id.to_owned(), v);
            }
            _ => return Err(format!("line {}: expected `row instructions`, found `{line}`", n + 1)),
        }
    }
    Ok(rows)
}

fn baseline_text(counted: &[(&str, f64)]) -> String {
    let mut text = String::from(
        "# Instructions per operation of the in-memory rows, counted by callgrind:\n\
         # cargo run --release -p cqrs-ddd-bench -- --instructions --write-baseline benches/instructions.baseline\n\
         # CI fails when a row costs more than 10 % more than its line here.\n",
    );
    for (id, v) in counted {
        let _ = writeln!(text, "{id} {v:.0}");
    }
    text
}

/// The table, and whether every row is within its baseline.
fn table(counted: &[(&str, f64)], baseline: Option<&BTreeMap<String, f64>>) -> (String, bool) {
    let mut ok = true;
    let mut out = format!("{:<20} {:>16} {:>12} {:>9}\n", "row", "instructions/op", "baseline", "change");
    for &(id, v) in counted {
        let shown = group_digits(&format!("{v:.0}"));
        let Some(&base) = baseline.and_then(|b| b.get(id)) else {
            let _ = writeln!(out, "{id:<20} {shown:>16} {:>12} {:>9}", "-", "-");
            continue;
        };
        let change = v / base - 1.0;
        let verdict = if change > TOLERANCE && v - base > SLACK {
            ok = false;
            "  REGRESSED (more than 10 % over the baseline)"
        } else if change < -TOLERANCE {
            "  improved: lower the baseline (--write-baseline)"
        } else {
            ""
        };
        let base = group_digits(&format!("{base:.0}"));
        let _ = writeln!(out, "{id:<20} {shown:>16} {base:>12} {:>+8.1}%{verdict}", change * 100.0);
    }
    if let Some(b) = baseline {
        for id in b.keys().filter(|id| !counted.iter().any(|(c, _)| c == id)) {
            let _ = writeln!(out, "{id:<20} is in the baseline but no longer counted");
        }
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callgrind_total_is_read() {
        let text = "version: 1\ncmd: x\nevents: Ir\nsummary: 1234567\nfl=a\n0 3\ntotals: 1234567\n";
        assert_eq!(totals(text), Some(1_234_567.0));
        assert_eq!(totals("events: Ir\n"), None);
    }

    #[test]
    fn a_baseline_round_trips_and_bad_lines_are_named() {
        let text = baseline_text(&[("mediator_overhead", 1500.4), ("mem_spread", 9000.0)]);
        let parsed = parse_baseline(&text).unwrap();
        assert_eq!(parsed.get("mediator_overhead"), Some(&1500.0));
        assert_eq!(parsed.len(), 2);
        assert!(parse_baseline("mem_spread lots\n").unwrap_err().contains("line 1"));
        assert!(parse_baseline("mem_spread 5 6\n").is_err());
        assert!(parse_baseline("mem_spread -5\n").is_err());
    }

    #[test]
    fn more_than_ten_percent_over_the_baseline_fails() {
        let baseline = parse_baseline("a 1000\nb 1000\nc 1000\ngone 5\n").unwrap();
        let (text, ok) = table(&[("a", 1099.0), ("b", 800.0), ("new", 3.0)], Some(&baseline));
        assert!(ok, "{text}");
        assert!(text.contains("improved") && text.contains("no longer counted"), "{text}");
        let (text, ok) = table(&[("a", 1101.0)], Some(&baseline));
        assert!(!ok && text.contains("REGRESSED"), "{text}");
        let tiny = parse_baseline("direct_call 13\n").unwrap();
        assert!(table(&[("direct_call", 16.0)], Some(&tiny)).1, "a few instructions more is noise");
        assert!(table(&[("a", 5000.0)], None).1);
    }

    #[test]
    fn every_counted_row_is_a_row_of_the_table() {
        let ids: Vec<&str> = crate::scenarios::Group::ALL.iter().flat_map(|g| g.rows()).map(|r| r.id).collect();
        assert!(ROWS.iter().all(|r| ids.contains(&r.id) && r.ops[0] < r.ops[1]));
    }
}
