//! Side-by-side benchmark of cqrs-ddd against cqrs-es / postgres-es 0.5 and plain sqlx
//! 0.8, on one bank-account domain.
//!
//! ```text
//! cargo run --release -p cqrs-ddd-bench -- [--quick] [--json FILE] [--only NAME]
//! cargo run --release -p cqrs-ddd-bench -- --instructions [--baseline FILE]
//! ```
//!
//! Every scenario runs for every contender, repetitions outermost and contenders
//! interleaved, each cell in a child process of its own (this binary, re-executed with
//! hidden `--cell` flags). The run prints one table: the median of the repetitions with
//! min-max, and the ratio cqrs-ddd / peer. The Postgres scenarios create a database
//! `cqrs_ddd_bench_<pid>` on `DATABASE_URL` and drop it at the end, the MariaDB ones
//! (cargo feature `mysql`, on by default) one on `MYSQL_URL`, the SQLite ones a
//! temporary directory; the in-memory ones need no database. See `benches/README.md`
//! for what each scenario compares and the targets.

mod args;
mod cell;
mod contenders;
mod db;
#[cfg(feature = "mysql")]
mod db_mysql;
mod db_sqlite;
mod domain;
mod error;
mod instructions;
mod measure;
mod report;
mod runner;
mod scenarios;
mod stats;
mod targets;

use std::process::ExitCode;

use args::Command;
use error::BenchError;

fn main() -> ExitCode {
    let command = match args::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cqrs-ddd-bench: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Cell(spec) => cell::main(&spec),
        Command::Count { row, ops } => instructions::count_main(&row, ops),
        Command::Instructions(opts) => match instructions::run(&opts) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("cqrs-ddd-bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(opts) => {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cqrs-ddd-bench: cannot start the tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(runner::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e @ BenchError::Usage(_)) => {
                    eprintln!("cqrs-ddd-bench: {e}\n\n{}", args::USAGE);
                    ExitCode::from(2)
                }
                Err(BenchError::Interrupted) => {
                    eprintln!("cqrs-ddd-bench: interrupted");
                    ExitCode::from(130)
                }
                Err(e) => {
                    eprintln!("cqrs-ddd-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
