//! The parent process: makes the databases, runs every cell in a child process,
//! repetitions outermost and contenders interleaved, then prints and writes the results.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::args::{CellSpec, RunOptions};
use crate::cell::{self, Report};
use crate::contenders;
use crate::db::{self, BenchDb, Target};
#[cfg(feature = "mysql")]
use crate::db_mysql;
use crate::db_sqlite::BenchDir;
use crate::error::BenchError;
use crate::report::Results;
use crate::scenarios::{Backend, Group, Workload};

pub(crate) async fn run(opts: RunOptions) -> Result<(), BenchError> {
    let groups = Group::select(&opts.only).map_err(BenchError::Usage)?;
    let w = Workload::new(opts.quick);
    let exe = std::env::current_exe().map_err(|e| BenchError::io("finding the benchmark's own executable", e))?;
    let places = Places::create(&groups).await?;
    let measured = tokio::select! {
        r = measure(&exe, &groups, &w, &places) => r,
        _ = tokio::signal::ctrl_c() => Err(BenchError::Interrupted),
    };
    places.remove().await;
    let results = measured?;
    println!("{}", results.table(&w));
    if let Some(path) = &opts.json {
        std::fs::write(path, results.json()).map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// What a run makes before measuring and removes afterwards, only for the backends its
/// groups use: a database on PostgreSQL, one on MariaDB, a directory for SQLite.
#[derive(Default)]
struct Places {
    pg: Option<BenchDb>,
    #[cfg(feature = "mysql")]
    my: Option<db_mysql::BenchDb>,
    lite: Option<BenchDir>,
}

impl Places {
    /// Makes them all, or (removing what it made) none.
    async fn create(groups: &[Group]) -> Result<Places, BenchError> {
        let mut places = Places::default();
        match places.make(|b| groups.iter().any(|g| g.backend() == b)).await {
            Ok(()) => Ok(places),
            Err(e) => {
                places.remove().await;
                Err(e)
            }
        }
    }

    async fn make(&mut self, needs: impl Fn(Backend) -> bool) -> Result<(), BenchError> {
        if needs(Backend::Postgres) {
            let db = BenchDb::create(db::server_url()).await?;
            eprintln!("database {} created on {}", db.target.name, db.target.shown());
            self.pg = Some(db);
        }
        #[cfg(feature = "mysql")]
        if needs(Backend::MariaDb) {
            let db = db_mysql::BenchDb::create(db_mysql::server_url()).await?;
            eprintln!("database {} created on {}", db.target.name, db.target.shown());
            self.my = Some(db);
        }
        if needs(Backend::Sqlite) {
            let dir = BenchDir::create()?;
            eprintln!("directory {} created for SQLite", dir.dir().display());
            self.lite = Some(dir);
        }
        Ok(())
    }

    /// Where the cells of `backend` keep their data.
    fn target(&self, backend: Backend) -> Option<&Target> {
        match backend {
            Backend::Memory => None,
            Backend::Postgres => self.pg.as_ref().map(|d| &d.target),
            #[cfg(feature = "mysql")]
            Backend::MariaDb => self.my.as_ref().map(|d| &d.target),
            Backend::Sqlite => self.lite.as_ref().map(|d| &d.target),
        }
    }

    /// Removes everything made; a failure is a warning (the results still count).
    async fn remove(self) {
        if let Some(db) = self.pg {
            let name = db.target.name.clone();
            match db.drop().await {
                Ok(()) => eprintln!("database {name} dropped"),
                Err(e) => eprintln!("warning: could not drop database {name}: {e}"),
            }
        }
        #[cfg(feature = "mysql")]
        if let Some(db) = self.my {
            let name = db.target.name.clone();
            match db.drop().await {
                Ok(()) => eprintln!("database {name} dropped on MariaDB"),
                Err(e) => eprintln!("warning: could not drop database {name} on MariaDB: {e}"),
            }
        }
        if let Some(dir) = self.lite {
            let shown = dir.dir().display().to_string();
            match dir.remove() {
                Ok(()) => eprintln!("directory {shown} removed"),
                Err(e) => eprintln!("warning: could not remove {shown}: {e}"),
            }
        }
    }
}

async fn measure(exe: &Path, groups: &[Group], w: &Workload, places: &Places) -> Result<Results, BenchError> {
    let seeds = |seeded: &[Group]| groups.iter().any(|g| seeded.contains(g));
    if let Some(target) = places.target(Backend::Postgres) {
        let seed = seeds(&[Group::Load, Group::LoadRss, Group::Projection]);
        let t = Instant::now();
        contenders::prepare(target, seed, groups.contains(&Group::PgScale)).await?;
        prepared("PostgreSQL", seed, t);
    }
    #[cfg(feature = "mysql")]
    if let Some(target) = places.target(Backend::MariaDb) {
        let seed = seeds(&[Group::MyLoad]);
        let t = Instant::now();
        contenders::prepare_mariadb(target, seed).await?;
        prepared("MariaDB", seed, t);
    }
    if let Some(target) = places.target(Backend::Sqlite) {
        let seed = seeds(&[Group::LiteLoad]);
        let t = Instant::now();
        contenders::prepare_sqlite(target, seed).await?;
        prepared("SQLite", seed, t);
    }
    let mut results = Results::new(groups.to_vec());
    for rep in 0..w.reps {
        for &group in groups {
            // Interleaved, and in a different order each repetition.
            let mut order = group.contenders().to_vec();
            let n = order.len();
            order.rotate_left(rep % n);
            for contender in order {
                let spec =
                    CellSpec { group, contender, rep, quick: w.quick, target: places.target(group.backend()).cloned() };
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

fn prepared(backend: &str, seed: bool, t: Instant) {
    eprintln!(
        "{backend}: tables created{} in {:.1} s",
        if seed { " and load streams seeded" } else { "" },
        t.elapsed().as_secs_f64()
    );
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
