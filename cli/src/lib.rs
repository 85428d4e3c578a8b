//! Operator commands for cqrs-ddd applications, on PostgreSQL, SQLite and MariaDB.
//!
//! ```text
//! cqrs-ddd migrate
//! cqrs-ddd projections list | status NAME | rebuild NAME [--partition N] | catch-up NAME
//! cqrs-ddd projections dead NAME | retry-dead NAME [EVENT_ID..] | skip-dead NAME EVENT_ID
//! cqrs-ddd outbox status | dead | retry-dead [ID..]
//! cqrs-ddd sagas list [--status S].. [--type T] | show ID | retry ID | compensate ID [--reason R]
//! cqrs-ddd schedules list [--dead] | cancel ID
//! cqrs-ddd jobs list [--status S].. [--limit N] [--offset N] | stats | cancel ID.. | retry ID.. | purge --before DATE
//! cqrs-ddd events tail [-n N] [--follow] | stream TYPE ID
//! cqrs-ddd tenants list
//! ```
//!
//! Every command reads the database from `--database-url` or `DATABASE_URL`, takes
//! `--tenant T` (only that tenant's rows and projection workers) and `--json` (JSON on
//! standard output instead of tables). Messages and progress go to standard error.
//!
//! # Standalone or embedded
//!
//! The `cqrs-ddd` binary knows the tables, not your code: it migrates, lists, shows the
//! event log, retries outbox rows, cancels schedules and lists, cancels, retries and
//! purges background jobs (a retried job runs in a process that has its type). What runs your code (rebuilding a
//! projection, retrying a saga's commands) needs your registrations, so embed the tool in
//! a binary of your application: it then sees your projections, commands and sagas.
//!
//! ```no_run
//! use cqrs_ddd::prelude::*;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposited { pub amount: u64 }
//!
//! pub struct Balances;
//!
//! #[projection(name = "balances")]
//! impl Balances {
//!     #[on]
//!     async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
//!         let amount = e.amount;
//!         tx.docs("balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
//!         Ok(())
//!     }
//!
//!     #[reset]
//!     async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
//!         tx.docs("balances").clear().await
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     // `my-app-ops projections rebuild balances`, `my-app-ops sagas retry o-17`, ..
//!     cqrs_ddd_cli::main(|db| async move { db.builder().projection(Balances).build() }).await
//! }
//! ```
//!
//! To add it under a subcommand of your own command line, flatten [`Cli`] into your
//! clap parser and call [`Cli::run`].
//!
//! # Exit status
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | the operation failed (the error is on standard error) |
//! | 2 | the command line is wrong, or a name is ambiguous (say which) |
//! | 3 | what was named does not exist (projection, saga, dead letter, schedule, stream) |
//! | 4 | the database cannot be reached |
//! | 130 | interrupted by Ctrl-C; a rebuild stopped after a batch, its checkpoint consistent |
//!
//! With `--json`, a failure also writes `{"error": {"kind": .., "message": ..}}` to
//! standard error.

mod args;
mod commands;
mod output;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

pub use args::{Cli, Command, Events, Global, Jobs, OutboxCmd, Projections, SagaRef, Sagas, Schedules, Tenants};
use clap::Parser;
use cqrs_ddd::ports::{EventStore, ProjectionStore};
use cqrs_ddd::{AppBuilder, Error, Mediator};
use cqrs_ddd_sqlx::{MySqlStore, PgOptions, PgStore, SqliteStore};

/// The exit statuses (see the [crate docs](crate#exit-status)).
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The operation failed.
    pub const FAILED: u8 = 1;
    /// The command line is wrong, or a name is ambiguous.
    pub const USAGE: u8 = 2;
    /// What was named does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// The database cannot be reached.
    pub const UNAVAILABLE: u8 = 4;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: u8 = 130;
}

/// A database the tool connected to, from its URL.
#[derive(Debug, Clone)]
pub enum Database {
    /// `postgres://` or `postgresql://`.
    Postgres(PgStore),
    /// `sqlite:`.
    Sqlite(SqliteStore),
    /// `mysql://` or `mariadb://`.
    MySql(MySqlStore),
}

impl Database {
    /// Connects to `url`; `schema` is PostgreSQL's.
    pub async fn connect(url: &str, schema: &str) -> cqrs_ddd::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(PgStore::connect_with(PgOptions::new(url).schema(schema).max_connections(4)).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Database::MySql(MySqlStore::connect(&url.replacen("mariadb://", "mysql://", 1)).await?))
        } else {
            Err(Error::Connect {
                backend: "database",
                target: "(the url)".to_owned(),
                reason: "the url names no database this tool knows: use postgres://, sqlite: or mysql:// (mariadb://)"
                    .to_owned(),
            })
        }
    }

    /// Creates or upgrades the tables.
    pub async fn migrate(&self) -> cqrs_ddd::Result<()> {
        match self {
            Database::Postgres(s) => s.migrate().await,
            Database::Sqlite(s) => s.migrate().await,
            Database::MySql(s) => s.migrate().await,
        }
    }

    /// An application builder over this database: events, snapshots, sagas, scheduled
    /// commands, the outbox and read models all in it. Add your registrations
    /// (`.projection(..)`, `.provide(..)`) and build.
    pub fn builder(&self) -> AppBuilder {
        match self {
            Database::Postgres(s) => builder_on(s),
            Database::Sqlite(s) => builder_on(s),
            Database::MySql(s) => builder_on(s),
        }
    }

    /// The event store (also the outbox and the read models' store).
    pub fn event_store(&self) -> Arc<dyn EventStore> {
        match self {
            Database::Postgres(s) => Arc::new(s.clone()),
            Database::Sqlite(s) => Arc::new(s.clone()),
            Database::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The read models' store: documents, checkpoints, dead letters.
    pub fn read_models(&self) -> Arc<dyn ProjectionStore> {
        match self {
            Database::Postgres(s) => Arc::new(s.clone()),
            Database::Sqlite(s) => Arc::new(s.clone()),
            Database::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// `PostgreSQL`, `SQLite` or `MariaDB`.
    pub fn name(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "PostgreSQL",
            Database::Sqlite(_) => "SQLite",
            Database::MySql(_) => "MariaDB",
        }
    }
}

/// An application builder with every port on one store.
fn builder_on<S>(store: &S) -> AppBuilder
where
    S: cqrs_ddd::ports::EventStore
        + cqrs_ddd::ports::SnapshotStore
        + cqrs_ddd::ports::SagaStore
        + cqrs_ddd::ports::ScheduleStore
        + Clone,
{
    cqrs_ddd::App::builder().event_store(store.clone()).snapshot_store(store.clone()).sagas_on(store.clone())
}

/// Parses the process's arguments and runs the command on the application `build`
/// makes from the database; answers the exit status.
pub async fn main<F, Fut>(build: F) -> ExitCode
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = cqrs_ddd::Result<Mediator>>,
{
    Cli::parse().run(build).await
}

impl Cli {
    /// Runs the command on the application `build` makes from the database; answers the
    /// exit status. `migrate` builds no application.
    pub async fn run<F, Fut>(self, build: F) -> ExitCode
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = cqrs_ddd::Result<Mediator>>,
    {
        let json = self.global.json;
        match commands::run(self, build).await {
            Ok(code) => ExitCode::from(code),
            Err(failure) => {
                failure.report(json);
                ExitCode::from(failure.code)
            }
        }
    }
}

/// A command that failed: its status and what to say.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure { code: exit::USAGE, kind: "usage", message: message.into() }
    }

    fn report(&self, json: bool) {
        if json {
            let doc = serde_json::json!({ "error": { "kind": self.kind, "message": self.message } });
            eprintln!("{doc}");
        } else {
            eprintln!("error: {}", self.message);
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let (code, kind) = match &e {
            Error::Missing { .. } | Error::NotFound { .. } | Error::UnknownMessage { .. } => {
                (exit::NOT_FOUND, "not-found")
            }
            Error::Ambiguous { .. } => (exit::USAGE, "ambiguous"),
            Error::Connect { .. } | Error::Timeout { .. } => (exit::UNAVAILABLE, "unavailable"),
            Error::Tenant(_) => (exit::USAGE, "tenant"),
            _ => (exit::FAILED, "failed"),
        };
        Failure { code, kind, message: e.to_string() }
    }
}
