//! The port of background jobs: where jobs wait, are claimed, report progress and end.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TenantScope;
use crate::domain::Metadata;
use crate::error::{Error, Result};

/// Where a job stands.
///
/// `Pending` (waiting for its `run_at`) → `Running` (claimed by a worker, under a lease)
/// → `Completed`, `Failed` (after its last attempt, or at once when its payload does not
/// decode) or `Cancelled`. A failed attempt that has attempts left goes back to
/// `Pending`, due after a backoff; so does a running job whose lease ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to be claimed once due.
    Pending,
    /// Claimed by a worker, which holds a lease on it.
    Running,
    /// Finished: its handler returned a result.
    Completed,
    /// Gave up: its last attempt failed, or it cannot run at all.
    Failed,
    /// Cancelled before it ran, or stopped at a check after a cancel was requested.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Pending, JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended (completed, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| Error::Validation {
            message: "job status",
            reason: format!(
                "`{s}` is not one of {}",
                JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
            fields: Vec::new(),
        })
    }
}

/// How far a running job is: what it reported last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// How many items there are, when the job said.
    pub total: Option<u64>,
    /// How many it has done.
    pub processed: u64,
}

/// A job to store: what [`crate::CommandContext::enqueue`] adds to the unit of work's
/// [`super::CommitBatch`], and [`JobStore::enqueue_jobs`] writes alone.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Its id (UUIDv7).
    pub id: Uuid,
    /// The job type's stable name (`#[job(name = "..")]`).
    pub job_type: String,
    /// The job as JSON text.
    pub payload: String,
    /// The tenant, correlation, causation, principal and headers it runs with.
    pub metadata: Metadata,
    /// Attempts before it fails for good (at least 1).
    pub max_attempts: u32,
    /// When it may run first.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Its id.
    pub id: Uuid,
    /// The job type's stable name.
    pub job_type: String,
    /// The job as JSON text.
    pub payload: String,
    /// The tenant, correlation, causation, principal and headers it runs with.
    pub metadata: Metadata,
    /// Where it stands.
    pub status: JobStatus,
    /// Attempts started so far (a claim starts one).
    pub attempt: u32,
    /// Attempts before it fails for good.
    pub max_attempts: u32,
    /// When it is due (again).
    pub run_at: DateTime<Utc>,
    /// The worker holding it, while running.
    pub lease_owner: Option<String>,
    /// When that worker's lease runs out unless renewed.
    pub lease_until: Option<DateTime<Utc>>,
    /// When the running worker last said it was alive.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// What it last reported of its progress.
    pub progress: JobProgress,
    /// Its handler's result as JSON text, once completed.
    pub result: Option<String>,
    /// The last failure.
    pub error: Option<String>,
    /// Whether an operator asked it to stop while it ran.
    pub cancel_requested: bool,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// A pending job as [`JobStore::enqueue_jobs`] stores it.
    pub fn pending(job: &NewJob) -> Self {
        JobRecord {
            id: job.id,
            job_type: job.job_type.clone(),
            payload: job.payload.clone(),
            metadata: job.metadata.clone(),
            status: JobStatus::Pending,
            attempt: 0,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            lease_owner: None,
            lease_until: None,
            heartbeat_at: None,
            progress: JobProgress::default(),
            result: None,
            error: None,
            cancel_requested: false,
            created_at: job.created_at,
            updated_at: job.created_at,
        }
    }
}

/// How a worker's attempt at a job ended ([`JobStore::finish_job`]).
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Its handler returned this result (JSON text).
    Completed {
        /// The result.
        result: String,
    },
    /// It failed and has attempts left: pending again, due at `run_at`.
    Retry {
        /// Why it failed.
        error: String,
        /// When it is due again.
        run_at: DateTime<Utc>,
    },
    /// It failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// It stopped after a cancel was requested.
    Cancelled,
}

impl JobOutcome {
    /// The status it leaves the job in.
    pub fn status(&self) -> JobStatus {
        match self {
            JobOutcome::Completed { .. } => JobStatus::Completed,
            JobOutcome::Retry { .. } => JobStatus::Pending,
            JobOutcome::Failed { .. } => JobStatus::Failed,
            JobOutcome::Cancelled => JobStatus::Cancelled,
        }
    }
}

/// Which jobs [`JobStore::list_jobs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFilter<'a> {
    /// In one of these statuses (any when empty).
    pub statuses: &'a [JobStatus],
    /// Of this job type only (any when `None`).
    pub job_type: Option<&'a str>,
    /// Of these tenants.
    pub tenant: TenantScope<'a>,
    /// At most this many.
    pub limit: usize,
    /// After skipping this many.
    pub offset: usize,
}

impl Default for JobFilter<'_> {
    /// Every job, the first 50.
    fn default() -> Self {
        JobFilter { statuses: &[], job_type: None, tenant: TenantScope::All, limit: 50, offset: 0 }
    }
}

impl JobFilter<'_> {
    /// Whether `job` is one it selects (paging aside).
    pub fn admits(&self, job: &JobRecord) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&job.status))
            && self.job_type.is_none_or(|t| job.job_type == t)
            && self.tenant.admits(job.metadata.tenant_id.as_deref())
    }
}

/// How many jobs there are in each status ([`JobStore::job_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobStats {
    /// Waiting to run.
    pub pending: u64,
    /// Running now.
    pub running: u64,
    /// Finished with a result.
    pub completed: u64,
    /// Gave up.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl JobStats {
    /// Every job.
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.completed + self.failed + self.cancelled
    }

    /// Adds `n` jobs of `status`.
    pub fn add(&mut self, status: JobStatus, n: u64) {
        let slot = match status {
            JobStatus::Pending => &mut self.pending,
            JobStatus::Running => &mut self.running,
            JobStatus::Completed => &mut self.completed,
            JobStatus::Failed => &mut self.failed,
            JobStatus::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    /// The jobs of `status`.
    pub fn of(&self, status: JobStatus) -> u64 {
        match status {
            JobStatus::Pending => self.pending,
            JobStatus::Running => self.running,
            JobStatus::Completed => self.completed,
            JobStatus::Failed => self.failed,
            JobStatus::Cancelled => self.cancelled,
        }
    }
}

/// What a running job's worker hears back from a heartbeat ([`JobStore::heartbeat_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The worker still holds the job; its lease is extended.
    Held {
        /// Whether an operator asked the job to stop.
        cancel_requested: bool,
    },
    /// The worker no longer holds it (its lease ran out and the sweeper took it back, or
    /// it was cancelled): the attempt must stop and write nothing more.
    Lost,
}

/// The errors [`JobStore::sweep_jobs`] records on a job whose lease ran out, the same on
/// every store.
pub mod swept {
    /// A cancel was requested: the job ends cancelled.
    pub const CANCELLED: &str = "its lease ran out after a cancel was requested";
    /// It was on its last attempt: the job ends failed.
    pub const FAILED: &str = "its worker stopped answering (the lease ran out) on its last attempt";
    /// It has attempts left: the job is pending again.
    pub const RETRIED: &str = "its worker stopped answering (the lease ran out); it runs again";
}

/// Where background jobs are kept.
///
/// A store that commits events and keeps jobs (every store of cqrs-ddd) writes the
/// [`super::CommitBatch::jobs`] of a commit in the same transaction as its events, and
/// answers [`super::EventStore::jobs`] with itself: a command that rolls back enqueues
/// nothing. Times are the caller's clock's, kept to the millisecond.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores pending jobs outside a command (in one transaction).
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<()>;

    /// The job with this id, when it is in `scope`.
    async fn job(&self, scope: TenantScope<'_>, id: Uuid) -> Result<Option<JobRecord>>;

    /// Claims up to `limit` pending jobs due at `now`, earliest first: each becomes
    /// running under `worker`'s lease until `now + lease`, its attempt counted. Two
    /// workers never claim one job (`SKIP LOCKED` where the database has it). Answers
    /// the jobs as claimed.
    async fn claim_jobs(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JobRecord>>;

    /// Extends `worker`'s lease on a running job to `now + lease`, with its progress
    /// when given; says whether the worker still holds it and whether a cancel was
    /// requested.
    async fn heartbeat_job(
        &self,
        id: Uuid,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        progress: Option<JobProgress>,
    ) -> Result<Heartbeat>;

    /// Ends `worker`'s attempt at a running job it holds; whether it held it (else
    /// nothing is written: the sweeper or an operator took it back).
    async fn finish_job(&self, id: Uuid, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<bool>;

    /// Takes back up to `limit` running jobs whose lease ran out before `now` (their
    /// worker died or lost the database): pending again, due at `now`, when they have
    /// attempts left; failed after their last one; cancelled when a cancel was
    /// requested. Answers how many.
    async fn sweep_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// The jobs `filter` selects, most recently changed first (then by id, descending).
    async fn list_jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRecord>>;

    /// How many jobs of `scope` are in each status.
    async fn job_stats(&self, scope: TenantScope<'_>) -> Result<JobStats>;

    /// Cancels the jobs of `ids` in `scope`: a pending one at once, a running one by
    /// asking it to stop (it ends cancelled at its next check, or when its lease runs
    /// out). Answers how many it cancelled or asked; the others (finished, already asked,
    /// unknown, of another tenant) are skipped.
    async fn cancel_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64>;

    /// Runs the failed or cancelled jobs of `ids` in `scope` again: pending, due at
    /// `now`, their attempts reset. Answers how many; the others are skipped.
    async fn retry_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64>;

    /// Deletes the completed and cancelled jobs of `scope` last changed before `before`;
    /// how many.
    async fn purge_jobs(&self, scope: TenantScope<'_>, before: DateTime<Utc>) -> Result<u64>;
}
