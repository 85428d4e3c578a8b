//! One cell (a group, a contender, a repetition) in a child process of its own, so no
//! contender inherits another's heap, its peak memory is its own, and stdout (where
//! cqrs-es's `MemStore` prints two lines per command) can go to /dev/null. The child
//! reports on stderr, one marked line per figure; any other line is an error message.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::args::CellSpec;
use crate::contenders;
use crate::measure::Outcome;
use crate::scenarios::Workload;

const MARK: &str = "@@cqrs-ddd-bench";

/// The child's `main`.
pub(crate) fn main(spec: &CellSpec) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let w = Workload::new(spec.quick);
    let ran = runtime.block_on(contenders::run(spec.group, spec.contender, &w, spec.rep, spec.target.as_ref()));
    match ran {
        Ok(outcome) => {
            eprint!("{}", encode(outcome.as_ref()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn encode(outcome: Option<&Outcome>) -> String {
    let Some(outcome) = outcome else { return format!("{MARK} unavailable\n") };
    let mut out = String::new();
    for (id, value) in &outcome.figures {
        let _ = writeln!(out, "{MARK} figure {id} {value}");
    }
    for (id, value, what) in &outcome.notes {
        let _ = writeln!(out, "{MARK} note {id} {value} {what}");
    }
    out
}

/// What the parent reads back from a child's stderr.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// `false` when the contender has no implementation for the group (yet).
    pub(crate) available: bool,
    pub(crate) figures: Vec<(String, f64)>,
    pub(crate) notes: Vec<(String, f64, String)>,
    /// Lines that are not part of the report: error messages, stray output.
    pub(crate) other: Vec<String>,
}

pub(crate) fn decode(stderr: &str) -> Report {
    let mut report = Report { available: true, ..Report::default() };
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix(MARK).map(str::trim_start) else {
            if !line.trim().is_empty() {
                report.other.push(line.to_owned());
            }
            continue;
        };
        let mut parts = rest.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next().map(str::parse::<f64>), parts.next()) {
            (Some("unavailable"), ..) => report.available = false,
            (Some("figure"), Some(id), Some(Ok(v)), None) => report.figures.push((id.to_owned(), v)),
            (Some("note"), Some(id), Some(Ok(v)), Some(what)) => report.notes.push((id.to_owned(), v, what.to_owned())),
            _ => report.other.push(line.to_owned()),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_the_trip_through_stderr() {
        let mut outcome = Outcome::default();
        outcome.figure("mem_long_0", 1.25);
        outcome.figure("mem_long_10k", 1e-3);
        outcome.note("mem_long_0", 200.0, "commands timed");
        let text = format!("a stray line\n{}", encode(Some(&outcome)));
        let report = decode(&text);
        assert!(report.available);
        assert_eq!(report.figures, vec![("mem_long_0".to_owned(), 1.25), ("mem_long_10k".to_owned(), 1e-3)]);
        assert_eq!(report.notes, vec![("mem_long_0".to_owned(), 200.0, "commands timed".to_owned())]);
        assert_eq!(report.other, vec!["a stray line".to_owned()]);
    }

    #[test]
    fn an_unavailable_contender_says_so() {
        let report = decode(&encode(None));
        assert!(!report.available && report.figures.is_empty());
    }
}
