//! Background jobs: work that runs outside the request that asked for it, with
//! retries, progress, cancellation and leases.
//!
//! A job is a `#[job]` type (`Serialize` + `Deserialize`, its fields the job's input)
//! with a [`JobHandler`] impl. It is enqueued inside a command
//! ([`CommandContext::enqueue`](crate::CommandContext::enqueue)): stored pending in the
//! same transaction as the command's events, so a command that fails or rolls back
//! enqueues nothing; or outside one with [`Mediator::enqueue`]. A [`JobWorker`] (run by
//! the [worker host](crate::host) whenever the program has job types) claims due jobs,
//! runs each in the tenant, correlation and principal of the request that enqueued it,
//! and records its result.
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::jobs::{JobContext, JobHandler, JobWorker};
//! use cqrs_ddd::ports::JobStatus;
//! use cqrs_ddd::prelude::*;
//!
//! #[job(name = "export")]
//! #[derive(Serialize, Deserialize)]
//! pub struct Export { pub rows: u64 }
//!
//! impl JobHandler for Export {
//!     type Output = u64;
//!     async fn run(self, ctx: &mut JobContext) -> Result<u64> {
//!         for done in 1..=self.rows {
//!             ctx.check_cancelled()?;               // stops here when an operator cancels it
//!             ctx.progress(self.rows, done).await?; // persisted; also the heartbeat
//!         }
//!         Ok(self.rows)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! let app = App::builder().build()?;
//! let id = app.enqueue(Export { rows: 3 }).await?;
//! JobWorker::new(app.clone()).run_once().await?;  // a service runs `app.run(shutdown)`
//! let job = app.job(id).await?.unwrap();
//! assert_eq!((job.status, job.result.as_deref()), (JobStatus::Completed, Some("3")));
//! # Ok(()) }
//! ```
//!
//! # States
//!
//! `pending` → `running` → `completed` | `failed` | `cancelled` ([`JobStatus`](crate::ports::JobStatus)). A claim
//! starts an attempt and takes a lease ([`JobWorkerOptions::lease`]) that the worker
//! renews while the job runs (every [`JobWorkerOptions::heartbeat`], and at each
//! [`JobContext::progress`]). An attempt that fails goes back to `pending`, due after an
//! exponential backoff ([`JobWorkerOptions::backoff`], doubling up to
//! [`JobWorkerOptions::max_backoff`]), until its last attempt
//! ([`JobOptions::max_attempts`], 3 by default) fails: then it is `failed` with the
//! error. A payload that no longer decodes into its type fails at once (no attempt could
//! heal it); a job type this program does not know is retried like any failure (during a
//! rolling deployment another process may know it), its error naming the type.
//!
//! A worker that dies (killed, or cut off from the database) stops renewing its leases:
//! the [`JobSweeper`] takes each job whose lease ran out back to `pending` (the attempt
//! counts), or to `failed` after its last attempt. A job can therefore run more than once
//! when its worker is lost mid-way; its effects should be idempotent (commands it sends
//! can carry an idempotency key made from [`JobContext::id`] and the step).
//!
//! # Cancellation
//!
//! Cancelling ([`Admin::cancel_jobs`](crate::admin::Admin::cancel_jobs)) a pending job
//! ends it at once; a running one is asked to stop: the request is stored, the worker
//! reads it at its next heartbeat or progress report, and the job's next
//! [`JobContext::check_cancelled`] returns [`Error::JobCancelled`], which ends it
//! `cancelled` (so does any error once a cancel was requested). A job that ignores the
//! request and finishes is `completed`. Failed and cancelled jobs can be run again
//! ([`Admin::retry_jobs`](crate::admin::Admin::retry_jobs)) with their attempts reset;
//! completed and cancelled ones are purged by date
//! ([`Admin::purge_jobs`](crate::admin::Admin::purge_jobs)).
//!
//! # Storage
//!
//! Jobs live in the event store ([`EventStore::jobs`](crate::ports::EventStore::jobs)):
//! [`MemoryStore`](crate::MemoryStore) keeps them beside its events, and the SQL stores
//! of `cqrs-ddd-sqlx` in a `jobs` table of the same database (claimed with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL and MariaDB, under SQLite's write lock). Every
//! job carries the tenant of the request that enqueued it; operators' listings are
//! narrowed by tenant like everything else.

mod worker;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use worker::{JobReport, JobSweeper, JobWorker, JobWorkerOptions};

use crate::context::RequestContext;
use crate::cqrs::{CommandContext, CommandHandler, Dep, Mediator, QueryHandler};
use crate::domain::{Metadata, new_id};
use crate::error::{Error, Result};
use crate::ports::{Heartbeat, JobProgress, JobRecord, JobStore, NewJob, TenantScope};

/// What a job's input needs to be stored and read back: `Serialize` and `Deserialize`.
/// Implemented for every type that has both; never by hand. `Job` has this trait, not
/// serde's, as its supertrait, so a job missing a derive is one error that says so.
#[diagnostic::on_unimplemented(
    message = "job `{Self}` cannot be stored: it does not implement `Serialize` and `Deserialize`",
    label = "derive `Serialize` and `Deserialize` on `{Self}`",
    note = "write `#[derive(Serialize, Deserialize)]` under `#[job]`"
)]
pub trait JobPayload: Sized + Send + 'static {
    /// The job as JSON text, refused when it would not read back.
    fn to_payload(&self) -> serde_json::Result<String>;
    /// Reads a stored job of type `name`; [`Error::Decode`] naming the failing field.
    fn from_payload(name: &str, json: &str) -> Result<Self>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> JobPayload for T {
    fn to_payload(&self) -> serde_json::Result<String> {
        crate::domain::encode_checked(self)
    }

    fn from_payload(name: &str, json: &str) -> Result<Self> {
        crate::cqrs::catalog::decode("job", name, crate::cqrs::catalog::Payload::Json(json))
    }
}

/// A background job type: its stable stored name. Written by `#[job]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a job",
    label = "not marked `#[job]`",
    note = "mark the type with `#[job]` (and derive `Serialize`, `Deserialize`)"
)]
pub trait Job: JobPayload {
    /// The stored name (`#[job(name = "..")]`, default the type name). Keep it when
    /// renaming the type: stored jobs are found by it.
    const NAME: &'static str;
}

/// What a job does: run once per attempt, in the tenant and correlation of the request
/// that enqueued it. Its output is stored as JSON as the job's result.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a `#[job]` but does not say what it does",
    label = "`{Self}` has no `JobHandler` impl",
    note = "add `impl JobHandler for {Self} {{ type Output = ..; async fn run(self, ctx: &mut JobContext) -> Result<Self::Output> {{ .. }} }}`"
)]
pub trait JobHandler: Sized + Send + 'static {
    /// What it answers, stored as the job's result.
    type Output: Serialize + Send;
    /// Runs one attempt.
    fn run(self, ctx: &mut JobContext) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// How a job is enqueued ([`CommandContext::enqueue_with`], [`Mediator::enqueue_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// Attempts before it fails for good (at least 1; default 3).
    pub max_attempts: u32,
    /// When it may run first (`None`: at once).
    pub run_at: Option<DateTime<Utc>>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions { max_attempts: 3, run_at: None }
    }
}

impl JobOptions {
    /// `max_attempts` attempts.
    pub fn attempts(max_attempts: u32) -> Self {
        JobOptions { max_attempts, ..JobOptions::default() }
    }

    /// Not before `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// Runs a stored job of one type: decodes its payload, runs it, encodes its result.
pub type JobRunFn = for<'a> fn(&'a str, &'a mut JobContext) -> BoxFuture<'a, Result<String>>;

/// [`JobRunFn`] of `J` (what `#[job]` registers).
#[doc(hidden)]
pub fn run_job<'a, J: Job + JobHandler>(payload: &'a str, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<String>> {
    Box::pin(async move {
        let job = J::from_payload(J::NAME, payload)?;
        let output = job.run(ctx).await?;
        serde_json::to_string(&output)
            .map_err(|source| Error::Encode { what: format!("the result of job `{}`", J::NAME), source })
    })
}

/// What the application installs into the mediator: where jobs are kept and the job
/// types this program runs.
pub(crate) struct Jobs {
    pub(crate) store: Option<Arc<dyn JobStore>>,
    pub(crate) types: HashMap<&'static str, (TypeId, JobRunFn)>,
    pub(crate) options: Option<JobWorkerOptions>,
}

impl Jobs {
    fn of(mediator: &Mediator) -> Option<&Jobs> {
        mediator.extension::<Jobs>()
    }
}

impl Mediator {
    /// Where background jobs are kept: the event store's job store, when it keeps one.
    pub fn job_store(&self) -> Option<Arc<dyn JobStore>> {
        Jobs::of(self).and_then(|j| j.store.clone())
    }

    fn job_store_or_err(&self) -> Result<Arc<dyn JobStore>> {
        self.job_store().ok_or(Error::NotWired {
            part: "job store",
            hint: "use an event store that keeps jobs (every store of cqrs-ddd does)",
        })
    }

    /// The stored names of the job types this program runs, sorted.
    pub fn job_types(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> =
            Jobs::of(self).map(|j| j.types.keys().copied().collect()).unwrap_or_default();
        names.sort_unstable();
        names
    }

    pub(crate) fn job_runner(&self, name: &str) -> Option<JobRunFn> {
        Jobs::of(self).and_then(|j| j.types.get(name)).map(|(_, run)| *run)
    }

    /// Enqueues `job` on its own (outside a command: one row, committed at once), in the
    /// current request's tenant and correlation; its id.
    pub async fn enqueue<J: Job + JobHandler>(&self, job: J) -> Result<Uuid> {
        self.enqueue_with(job, JobOptions::default()).await
    }

    /// [`Mediator::enqueue`] with options.
    pub async fn enqueue_with<J: Job + JobHandler>(&self, job: J, options: JobOptions) -> Result<Uuid> {
        let request = RequestContext::current().unwrap_or_default();
        crate::context::check_tenant(request.tenant_id.as_deref())?;
        let metadata = Metadata {
            correlation_id: Some(request.correlation_id),
            causation_id: request.causation_id,
            tenant_id: request.tenant_id,
            principal: request.principal,
            headers: request.headers,
        };
        let new = self.new_job(&job, options, metadata)?;
        self.job_store_or_err()?.enqueue_jobs(std::slice::from_ref(&new)).await?;
        Ok(new.id)
    }

    /// A job of the current tenant (every tenant's outside a tenant scope), if any.
    pub async fn job(&self, id: Uuid) -> Result<Option<JobRecord>> {
        let tenant = RequestContext::current().and_then(|r| r.tenant_id);
        let scope = match &tenant {
            Some(t) => TenantScope::Only(Some(t)),
            None => TenantScope::All,
        };
        self.job_store_or_err()?.job(scope, id).await
    }

    /// The row of a new job, checked: its type registered under its name, its payload
    /// one that reads back.
    fn new_job<J: Job + JobHandler>(&self, job: &J, options: JobOptions, metadata: Metadata) -> Result<NewJob> {
        match Jobs::of(self).and_then(|j| j.types.get(J::NAME)) {
            Some((type_id, _)) if *type_id == TypeId::of::<J>() => {}
            Some(_) => {
                return Err(Error::handler(format!(
                    "cannot enqueue `{}`: its name `{}` is registered by another job type; give it a unique name",
                    std::any::type_name::<J>(),
                    J::NAME
                )));
            }
            None => return Err(Error::UnknownMessage { kind: "job", name: J::NAME.to_owned() }),
        }
        let payload = job.to_payload().map_err(|source| Error::Encode { what: J::NAME.to_owned(), source })?;
        // To the millisecond, as every store keeps it: a job is due at once, not a
        // fraction of a millisecond later than the next claim looks.
        let now = self.clock().now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        Ok(NewJob {
            id: new_id(),
            job_type: J::NAME.to_owned(),
            payload,
            metadata,
            max_attempts: options.max_attempts.max(1),
            run_at: options.run_at.unwrap_or(now),
            created_at: now,
        })
    }
}

impl CommandContext {
    /// Enqueues `job` in this command's unit of work: stored pending in the same
    /// transaction as the command's events, so a command that fails or rolls back
    /// enqueues nothing. It runs in this command's tenant, correlation and principal
    /// (caused by this command). Answers its id.
    pub fn enqueue<J: Job + JobHandler>(&mut self, job: J) -> Result<Uuid> {
        self.enqueue_with(job, JobOptions::default())
    }

    /// [`CommandContext::enqueue`] with options.
    pub fn enqueue_with<J: Job + JobHandler>(&mut self, job: J, options: JobOptions) -> Result<Uuid> {
        self.mediator().job_store_or_err()?;
        let metadata = self.request().metadata(self.command_id());
        let new = self.mediator().new_job(&job, options, metadata)?;
        let id = new.id;
        self.unit_of_work().add_job(new)?;
        Ok(id)
    }
}

/// The flags a running job's heartbeats feed: a cancel was requested, the worker lost
/// the job.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    cancel: AtomicBool,
    lost: AtomicBool,
}

impl Signals {
    pub(crate) fn heard(&self, beat: Heartbeat) {
        match beat {
            Heartbeat::Held { cancel_requested } => {
                if cancel_requested {
                    self.cancel.store(true, Ordering::SeqCst);
                }
            }
            Heartbeat::Lost => self.lost.store(true, Ordering::SeqCst),
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// What a running job can reach: the mediator (to send commands and run queries in its
/// request's context), its progress, its cancellation, and who it is.
pub struct JobContext {
    mediator: Mediator,
    record: JobRecord,
    request: RequestContext,
    store: Arc<dyn JobStore>,
    worker: String,
    lease: Duration,
    signals: Arc<Signals>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.record.id)
            .field("job_type", &self.record.job_type)
            .field("attempt", &self.record.attempt)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// The job type's stored name.
    pub fn job_type(&self) -> &str {
        &self.record.job_type
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.record.attempt
    }

    /// Attempts it has in all.
    pub fn max_attempts(&self) -> u32 {
        self.record.max_attempts
    }

    /// The tenant it runs for (the enqueuing request's).
    pub fn tenant(&self) -> Option<&str> {
        self.request.tenant_id.as_deref()
    }

    /// Correlation, tenant and principal of the request that enqueued it; the job runs
    /// in this context, so commands it sends carry them.
    pub fn request(&self) -> &RequestContext {
        &self.request
    }

    /// The mediator.
    pub fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    /// Sends a command (a root command of its own, in the job's tenant and correlation).
    pub async fn send<C: CommandHandler>(&self, cmd: C) -> Result<C::Response> {
        self.mediator.send(cmd).await
    }

    /// Runs a query in the job's tenant.
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        self.mediator.query(query).await
    }

    /// A provided service.
    pub fn dep<T: Send + Sync + 'static>(&self) -> Result<Dep<T>> {
        self.mediator.dep::<T>("job")
    }

    /// Records how far the job is (`processed` of `total` items) and renews the
    /// worker's lease: a progress report is also a heartbeat, and hears a cancel
    /// request.
    pub async fn progress(&self, total: u64, processed: u64) -> Result<()> {
        self.beat(Some(JobProgress { total: Some(total), processed })).await
    }

    /// Renews the worker's lease now (the worker also does so on its own every
    /// [`JobWorkerOptions::heartbeat`]) and hears a cancel request.
    pub async fn heartbeat(&self) -> Result<()> {
        self.beat(None).await
    }

    async fn beat(&self, progress: Option<JobProgress>) -> Result<()> {
        let now = self.mediator.clock().now();
        let beat = self.store.heartbeat_job(self.record.id, &self.worker, now, self.lease, progress).await?;
        self.signals.heard(beat);
        Ok(())
    }

    /// Whether the job should stop: an operator asked it to, or this worker no longer
    /// holds it (its lease ran out and another attempt may have started).
    pub fn cancelled(&self) -> bool {
        self.signals.cancelled() || self.signals.lost()
    }

    /// [`Error::JobCancelled`] when the job should stop ([`JobContext::cancelled`]): call
    /// it between steps and return its error with `?`.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancelled() { Err(Error::JobCancelled { id: self.record.id }) } else { Ok(()) }
    }
}
