//! The command line, as clap reads it.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use cqrs_ddd::ports::{JobStatus, SagaStatus};
use uuid::Uuid;

/// Operate a cqrs-ddd application: migrations, projections, outbox, sagas, scheduled
/// commands, background jobs, the event log and tenants.
#[derive(Debug, Clone, Parser)]
#[command(name = "cqrs-ddd", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do and where.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The database: `postgres://..`, `sqlite://path.db` or `mysql://..` (MariaDB).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// The PostgreSQL schema the tables live in.
    #[arg(long, env = "CQRS_DDD_SCHEMA", global = true, default_value = "public")]
    pub schema: String,
    /// Only this tenant's sagas, scheduled commands, jobs, events, outbox rows and
    /// projection workers (every tenant's without it).
    #[arg(long, env = "CQRS_DDD_TENANT", global = true)]
    pub tenant: Option<String>,
    /// JSON on standard output instead of tables (one document per command; `events
    /// tail --follow` writes one event per line).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Creates or upgrades the tables.
    Migrate,
    /// Projections: status, rebuild, catch-up, dead letters.
    #[command(subcommand)]
    Projections(Projections),
    /// The transactional outbox: counts, dead rows, retry.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Saga instances: list, show, retry, compensate.
    #[command(subcommand)]
    Sagas(Sagas),
    /// Scheduled commands: list, cancel.
    #[command(subcommand)]
    Schedules(Schedules),
    /// Background jobs: list, stats, cancel, retry, purge.
    #[command(subcommand)]
    Jobs(Jobs),
    /// The event log: the newest events (and those that follow), one stream.
    #[command(subcommand)]
    Events(Events),
    /// Tenants.
    #[command(subcommand)]
    Tenants(Tenants),
}

/// `projections ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Projections {
    /// Every registered projection with its lag and dead letters.
    List,
    /// One projection: checkpoints, head, lag, what holds readers back.
    Status {
        /// Its name (or `name@tenant`).
        name: String,
    },
    /// Drops the read model and applies every event again, with a progress bar. Ctrl-C
    /// stops it after the batch in flight, its checkpoint consistent; `catch-up` resumes.
    Rebuild {
        /// Its name (or `name@tenant`).
        name: String,
        /// Only this partition: its checkpoint goes back to the start and its events are
        /// applied again over the documents as they are (the read model is not dropped).
        #[arg(long)]
        partition: Option<u32>,
    },
    /// Applies the events after the checkpoints (resumes a stopped rebuild).
    CatchUp {
        /// Its name (or `name@tenant`).
        name: String,
    },
    /// The events it gave up on, with the error and the payload.
    Dead {
        /// Its name (or `name@tenant`).
        name: String,
    },
    /// Applies dead letters' events again and removes the letters.
    RetryDead {
        /// Its name (or `name@tenant`).
        name: String,
        /// The events (every dead letter when none is given).
        event_ids: Vec<Uuid>,
    },
    /// Removes a dead letter without applying its event.
    SkipDead {
        /// Its name (or `name@tenant`).
        name: String,
        /// The event.
        event_id: Uuid,
    },
}

/// `outbox ..`
#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCmd {
    /// Rows waiting and rows given up on.
    Status,
    /// The rows given up on, with their last error.
    Dead,
    /// Puts dead rows back to be published.
    RetryDead {
        /// The rows (every dead row when none is given).
        ids: Vec<Uuid>,
    },
}

/// `sagas ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Sagas {
    /// Saga instances, oldest first.
    List {
        /// Only in these statuses (repeatable): pending, running, suspended,
        /// compensating, completed, compensated, failed.
        #[arg(long = "status", value_parser = parse_status)]
        statuses: Vec<SagaStatus>,
        /// Only of this saga type.
        #[arg(long = "type")]
        saga_type: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One instance with its history: commands sent and planned, compensations.
    Show(SagaRef),
    /// Sends the instance's unsent commands again now.
    Retry(SagaRef),
    /// Fails the instance and runs its compensations.
    Compensate {
        /// The instance.
        #[command(flatten)]
        saga: SagaRef,
        /// Why (kept as its error).
        #[arg(long, default_value = "by an operator")]
        reason: String,
    },
}

/// Names one saga instance.
#[derive(Debug, Clone, Args)]
pub struct SagaRef {
    /// Its association value (the id it was started for).
    pub id: String,
    /// Its saga type, when several types have an instance with this id.
    #[arg(long = "type")]
    pub saga_type: Option<String>,
}

/// `schedules ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Schedules {
    /// Commands waiting to be sent, earliest due first.
    List {
        /// The commands that gave up instead.
        #[arg(long)]
        dead: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Cancels a scheduled command.
    Cancel {
        /// Its id.
        id: Uuid,
    },
}

/// `jobs ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Jobs {
    /// Jobs, most recently changed first.
    List {
        /// Only in these statuses (repeatable): pending, running, completed, failed,
        /// cancelled.
        #[arg(long = "status", value_parser = parse_job_status)]
        statuses: Vec<JobStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// After skipping this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// How many jobs are in each status.
    Stats,
    /// Cancels jobs: a pending one at once, a running one at its next check.
    Cancel {
        /// Their ids.
        #[arg(required = true)]
        ids: Vec<Uuid>,
    },
    /// Runs failed or cancelled jobs again, their attempts reset.
    Retry {
        /// Their ids.
        #[arg(required = true)]
        ids: Vec<Uuid>,
    },
    /// Deletes the completed and cancelled jobs last changed before a date.
    Purge {
        /// `2026-01-31` (midnight UTC) or an RFC 3339 time (`2026-01-31T12:00:00Z`); a
        /// time without an offset is UTC.
        #[arg(long, value_parser = parse_date)]
        before: DateTime<Utc>,
    },
}

/// `events ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Events {
    /// The newest events; with `--follow`, then every event committed after them.
    Tail {
        /// How many of the newest to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep reading new events until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
        /// How often `--follow` looks for new events, in milliseconds.
        #[arg(long, default_value_t = 500)]
        poll_ms: u64,
    },
    /// One stream's events, oldest first.
    Stream {
        /// Its type (the aggregate's name).
        stream_type: String,
        /// Its id.
        stream_id: String,
    },
}

/// `tenants ..`
#[derive(Debug, Clone, Subcommand)]
pub enum Tenants {
    /// The tenants that have events.
    List,
}

fn parse_job_status(s: &str) -> Result<JobStatus, String> {
    s.parse::<JobStatus>().map_err(|e| e.to_string())
}

/// A date (midnight UTC) or a time, RFC 3339 or without an offset (UTC).
fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{s}` is not a date (`2026-01-31`) or an RFC 3339 time (`2026-01-31T12:00:00Z`)"))
}

fn parse_status(s: &str) -> Result<SagaStatus, String> {
    s.parse::<SagaStatus>().map_err(|e| e.to_string())
}
