//! The parent process: makes the database, runs every cell in a child process,
//! repetitions outermost and contenders interleaved, then prints and writes the results.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::args::{CellSpec, RunOptions};
use crate::cell::{self, Report};
use crate::contenders;
use crate::db::{self, BenchDb, Target};
use crate::error::BenchError;
use crate::report::Results;
use crate::scenarios::{Group, Workload};

pub(crate) async fn run(opts: RunOptions) -> Result<(), BenchError> {
    let groups = Group::select(&opts.only).map_err(BenchError::Usage)?;
    let w = Workload::new(opts.quick);
    let exe = std::env::current_exe().map_err(|e| BenchError::io("finding the benchmark's own executable", e))?;
    let db = if groups.iter().any(|g| g.needs_db()) { Some(BenchDb::create(db::server_url()).await?) } else { None };
    if let Some(db) = &db {
        eprintln!("database {} created on {}", db.target.name, db.target.shown());
    }
    let measured = tokio::select! {
        r = measure(&exe, &groups, &w, db.as_ref().map(|d| &d.target)) => r,
        _ = tokio::signal::ctrl_c() => Err(BenchError::Interrupted),
    };
    if let Some(db) = db {
        let name = db.target.name.clone();
        match db.drop().await {
            Ok(()) => eprintln!("database {name} dropped"),
            Err(e) => eprintln!("warning: could not drop database {name}: {e}"),
        }
    }
    let results = measured?;
    println!("{}", results.table(&w));
    if let Some(path) = &opts.json {
        std::fs::write(path, results.json()).map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

async fn measure(exe: &Path, groups: &[Group], w: &Workload, target: Option<&Target>) -> Result<Results, BenchError> {
    if let Some(target) = target {
        let seed = groups.iter().any(|g| matches!(g, Group::Load | Group::LoadRss | Group::Projection));
        let t = Instant::now();
        contenders::prepare(target, seed).await?;
        eprintln!(
            "tables created{} in {:.1} s",
            if seed { " and load streams seeded" } else { "" },
            t.elapsed().as_secs_f64()
        );
    }
    let mut results = Results::new(groups.to_vec());
    for rep in 0..w.reps {
        for &group in groups {
            // Interleaved, and in a different order each repetition.
            let mut order = group.contenders().to_vec();
            let n = order.len();
            order.rotate_left(rep % n);
            for contender in order {
                let spec = CellSpec {
                    group,
                    contender,
                    rep,
                    quick: w.quick,
                    target: group.needs_db().then(|| target.cloned()).flatten(),
                };
                let t = Instant::now();
                let report = run_cell(exe, &spec).await?;
                let status =
                    if report.available { format!("{:.1} s", t.elapsed().as_secs_f64()) } else { "n/a".to_owned() };
                eprintln!("[{}/{}] {:<12} {:<12} {status}", rep + 1, w.reps, group.name(), contender.label(group));
                results.add(group, contender, &report)?;
            }
        }
    }
    Ok(results)
}

/// Runs one cell in a child process (stdout to /dev/null, the report on stderr).
async fn run_cell(exe: &Path, spec: &CellSpec) -> Result<Report, BenchError> {
    let output = tokio::process::Command::new(exe)
        .args(spec.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| BenchError::io("starting a child process", e))?;
    let report = cell::decode(&String::from_utf8_lossy(&output.stderr));
    let label = spec.contender.label(spec.group);
    if !output.status.success() {
        let message = if report.other.is_empty() { output.status.to_string() } else { report.other.join("\n") };
        return Err(BenchError::Cell { contender: label, group: spec.group.name(), message });
    }
    for line in &report.other {
        eprintln!("  {label} ({}): {line}", spec.group.name());
    }
    Ok(report)
}
