//! The loops that run background jobs: the [`JobWorker`] claims and runs them, the
//! [`JobSweeper`] takes back the jobs of workers that died.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::{JobContext, Signals};
use crate::backoff::Backoff;
use crate::context::RequestContext;
use crate::cqrs::Mediator;
use crate::domain::{new_correlation_id, new_id};
use crate::error::{Error, Result};
use crate::ports::{JobOutcome, JobRecord, JobStore, after};
use crate::worker::{Pace, Supervisor, WorkerHealth};

/// How a [`JobWorker`] (and the [`JobSweeper`] beside it) works.
#[derive(Debug, Clone)]
pub struct JobWorkerOptions {
    /// Its name in leases (unique per worker: a lease names who holds it).
    pub worker: String,
    /// Jobs run at once, at most: [`JobWorker::run`] claims another as soon as one
    /// ends; [`JobWorker::run_once`] claims this many and waits for them all.
    pub concurrency: usize,
    /// Sleep between rounds when nothing was due.
    pub poll_interval: Duration,
    /// How long a claim lasts unless renewed: a job whose worker stops answering for
    /// this long is taken back by the sweeper.
    pub lease: Duration,
    /// How often the worker renews the lease of a running job on its own (keep it well
    /// under `lease`).
    pub heartbeat: Duration,
    /// Delay before a failed job's second attempt; doubled per attempt.
    pub backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
    /// How often the sweeper looks for jobs whose lease ran out.
    pub sweep_interval: Duration,
    /// How long [`JobWorker::run`] waits before its next round after one failed with a
    /// transient error (the store unreachable). Not `backoff`, which spaces the attempts
    /// at one job.
    pub outage_backoff: Backoff,
}

impl Default for JobWorkerOptions {
    fn default() -> Self {
        JobWorkerOptions {
            worker: format!("jobs-{}", new_id()),
            concurrency: 4,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(5),
            outage_backoff: Backoff::default(),
        }
    }
}

impl JobWorkerOptions {
    /// The waits between attempts at one job: `backoff` doubling up to `max_backoff`.
    fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.backoff, self.max_backoff).with_jitter(0.0)
    }
}

/// What one round of a [`JobWorker`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Jobs that completed.
    pub completed: usize,
    /// Jobs that failed and are pending again, due after a backoff.
    pub retried: usize,
    /// Jobs that failed for good.
    pub failed: usize,
    /// Jobs that stopped after a cancel request.
    pub cancelled: usize,
    /// Jobs this worker no longer held when they ended (the sweeper took them back):
    /// nothing was written.
    pub lost: usize,
}

impl JobReport {
    /// Jobs that ended this round, however.
    pub fn ended(&self) -> usize {
        self.completed + self.retried + self.failed + self.cancelled + self.lost
    }
}

/// Claims due jobs and runs them; see the [module docs](crate::jobs).
pub struct JobWorker {
    mediator: Mediator,
    options: JobWorkerOptions,
    supervisor: Supervisor,
}

impl JobWorker {
    /// A worker with the application's options ([`crate::AppBuilder::job_options`]),
    /// else the defaults.
    pub fn new(mediator: Mediator) -> Self {
        let options = super::Jobs::of(&mediator).and_then(|j| j.options.clone()).unwrap_or_default();
        Self::with_options(mediator, options)
    }

    /// A worker with the given options.
    pub fn with_options(mediator: Mediator, options: JobWorkerOptions) -> Self {
        let supervisor = Supervisor::new("job_worker", options.worker.clone());
        JobWorker { mediator, options, supervisor }
    }

    pub(crate) fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    /// Its options.
    pub fn options(&self) -> &JobWorkerOptions {
        &self.options
    }

    /// How [`JobWorker::run`] is doing, now (readable from any task while it runs).
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    fn store(&self) -> Result<Arc<dyn JobStore>> {
        self.mediator.job_store_or_err()
    }

    /// Claims up to [`JobWorkerOptions::concurrency`] due jobs and runs them side by
    /// side, once; answers when all have ended.
    pub async fn run_once(&self) -> Result<JobReport> {
        let store = self.store()?;
        let o = &self.options;
        let now = self.mediator.clock().now();
        let claimed = store.claim_jobs(&o.worker, now, o.concurrency.max(1), o.lease).await?;
        let attempts = claimed.into_iter().map(|job| self.attempt(&store, job));
        let mut report = JobReport::default();
        let mut first_error = None;
        for ended in futures::future::join_all(attempts).await {
            match ended {
                Ok(Ended::Held(JobOutcome::Completed { .. })) => report.completed += 1,
                Ok(Ended::Held(JobOutcome::Retry { .. })) => report.retried += 1,
                Ok(Ended::Held(JobOutcome::Failed { .. })) => report.failed += 1,
                Ok(Ended::Held(JobOutcome::Cancelled)) => report.cancelled += 1,
                Ok(Ended::Lost) => report.lost += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    /// One attempt at a claimed job: runs it in its request's context, renewing the
    /// lease beside it, then records how it ended.
    async fn attempt(&self, store: &Arc<dyn JobStore>, job: JobRecord) -> Result<Ended> {
        let o = &self.options;
        let signals = Arc::new(Signals::default());
        let request = request_of(&job);
        let (id, name, attempt, max_attempts) = (job.id, job.job_type.clone(), job.attempt, job.max_attempts);
        let payload = job.payload.clone();
        let mut ctx = JobContext {
            mediator: self.mediator.clone(),
            record: job,
            request: request.clone(),
            store: store.clone(),
            worker: o.worker.clone(),
            lease: o.lease,
            signals: signals.clone(),
        };
        let result = match self.mediator.job_runner(&name) {
            None => Err(Error::UnknownMessage { kind: "job", name: name.clone() }),
            Some(run) => {
                let running = AssertUnwindSafe(request.scope(run(&payload, &mut ctx))).catch_unwind();
                // The lease is renewed beside the job, never instead of it: while a
                // heartbeat waits for the database, the job goes on being polled (it
                // may hold the very lock the heartbeat waits for, as SQLite's write
                // lock is held by a job's open commit).
                let beating = self.renew_lease(store, id, &name, &signals);
                tokio::select! {
                    biased;
                    ended = running => ended.unwrap_or_else(|panic| Err(Error::handler(format!(
                        "job `{name}` panicked: {}",
                        panic_message(&*panic)
                    )))),
                    never = beating => match never {},
                }
            }
        };
        let now = self.mediator.clock().now();
        let outcome = match result {
            Ok(result) => JobOutcome::Completed { result },
            Err(e) if signals.cancelled() || matches!(e, Error::JobCancelled { .. }) => {
                tracing::info!(job = %name, %id, "job stopped after a cancel request");
                JobOutcome::Cancelled
            }
            Err(e @ (Error::Decode { .. } | Error::Encode { .. })) => {
                tracing::error!(job = %name, %id, error = %e, "job cannot run: its payload or result does not convert");
                JobOutcome::Failed { error: e.to_string() }
            }
            Err(e) if attempt >= max_attempts => {
                tracing::error!(job = %name, %id, attempt, error = %e, "job failed on its last attempt");
                JobOutcome::Failed { error: e.to_string() }
            }
            Err(e) => {
                let delay = o.retry_backoff().delay(attempt.max(1));
                if matches!(e, Error::UnknownMessage { .. }) {
                    tracing::error!(job = %name, %id, error = %e, ?delay, "job type unknown to this program; retrying later");
                } else {
                    tracing::warn!(job = %name, %id, attempt, error = %e, ?delay, "job failed; retrying later");
                }
                JobOutcome::Retry { error: e.to_string(), run_at: after(now, delay) }
            }
        };
        if !store.finish_job(id, &o.worker, &outcome, now).await? {
            tracing::warn!(job = %name, %id, "job ended after this worker lost it (its lease ran out); nothing recorded");
            return Ok(Ended::Lost);
        }
        let label = match outcome {
            JobOutcome::Completed { .. } => "completed",
            JobOutcome::Retry { .. } => "retried",
            JobOutcome::Failed { .. } => "failed",
            JobOutcome::Cancelled => "cancelled",
        };
        metrics::counter!(crate::metrics::JOBS_FINISHED_TOTAL, "job" => name, "outcome" => label).increment(1);
        Ok(Ended::Held(outcome))
    }

    /// Renews the lease of a running job every [`JobWorkerOptions::heartbeat`], hearing
    /// cancel requests, until dropped.
    async fn renew_lease(
        &self,
        store: &Arc<dyn JobStore>,
        id: uuid::Uuid,
        name: &str,
        signals: &Signals,
    ) -> std::convert::Infallible {
        let o = &self.options;
        let mut beats = tokio::time::interval(o.heartbeat.max(Duration::from_millis(1)));
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beats.tick().await; // the first tick is now: the claim just set the lease
        loop {
            beats.tick().await;
            let now = self.mediator.clock().now();
            match store.heartbeat_job(id, &o.worker, now, o.lease, None).await {
                Ok(beat) => signals.heard(beat),
                Err(e) => tracing::warn!(job = %name, %id, error = %e, "cannot renew a running job's lease"),
            }
        }
    }

    /// Runs jobs until `shutdown` resolves: up to [`JobWorkerOptions::concurrency`] at
    /// once, claiming more as soon as one ends (or every
    /// [`JobWorkerOptions::poll_interval`] while there are free slots), so a long job
    /// holds one slot and not the others. On shutdown it claims nothing more and
    /// returns once the running jobs have ended.
    ///
    /// A claim that fails with a transient error (see [`Error::is_transient`]: the store
    /// unreachable) is tried again after [`JobWorkerOptions::outage_backoff`], the
    /// running jobs going on meanwhile; a job that fails never stops the worker. It
    /// returns early only with an error the store does not call transient (a row that
    /// cannot be decoded), after the running jobs have ended.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        use futures::StreamExt;
        let store = self.store()?;
        let o = &self.options;
        let slots = o.concurrency.max(1);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut running = futures::stream::FuturesUnordered::new();
        // The claim in flight, polled beside the running jobs (never instead of them: a
        // claim may wait for a lock a running job holds) and never dropped half way (a
        // claim that committed hands over its jobs).
        let mut claiming: Option<futures::future::BoxFuture<'_, Result<Vec<JobRecord>>>> = None;
        let mut next_claim = tokio::time::Instant::now();
        let (mut stopping, mut fatal) = (false, None);
        self.supervisor.begin();
        loop {
            let free = slots.saturating_sub(running.len());
            if claiming.is_none() && !stopping && free > 0 && tokio::time::Instant::now() >= next_claim {
                let now = self.mediator.clock().now();
                claiming = Some(store.claim_jobs(&o.worker, now, free, o.lease));
            }
            if stopping && claiming.is_none() {
                break;
            }
            tokio::select! {
                () = &mut shutdown, if !stopping => stopping = true,
                Some(ended) = running.next() => {
                    if let Err(e) = ended {
                        tracing::warn!(error = %e, "cannot record how a job ended; its lease runs out and the sweeper takes it back");
                    }
                    // A slot is free: claim again at once.
                    next_claim = tokio::time::Instant::now();
                }
                Some(claimed) = futures::future::OptionFuture::from(claiming.as_mut()) => {
                    claiming = None;
                    let mut wait = o.poll_interval;
                    match claimed {
                        Ok(claimed) => {
                            self.supervisor.succeeded();
                            running.extend(claimed.into_iter().map(|job| self.attempt(&store, job)));
                        }
                        Err(e) if e.is_transient() => wait = o.outage_backoff.delay(self.supervisor.failed(&e)),
                        Err(e) => {
                            fatal = Some(e);
                            stopping = true;
                        }
                    }
                    next_claim = tokio::time::Instant::now() + wait;
                }
                () = tokio::time::sleep_until(next_claim), if claiming.is_none() && !stopping && free > 0 => {}
            }
        }
        while let Some(ended) = running.next().await {
            if let Err(e) = ended {
                tracing::warn!(error = %e, "cannot record how a job ended; its lease runs out and the sweeper takes it back");
            }
        }
        match fatal {
            Some(e) => {
                self.supervisor.gave_up(&e);
                Err(e)
            }
            None => {
                self.supervisor.stopped();
                Ok(())
            }
        }
    }
}

/// How an attempt ended.
enum Ended {
    /// Recorded.
    Held(JobOutcome),
    /// The worker no longer held the job.
    Lost,
}

/// The context a job runs in: its enqueuing request's correlation, tenant, principal
/// and headers, caused by the job.
fn request_of(job: &JobRecord) -> RequestContext {
    let m = &job.metadata;
    RequestContext {
        correlation_id: m.correlation_id.unwrap_or_else(new_correlation_id),
        causation_id: Some(job.id),
        tenant_id: m.tenant_id.clone(),
        principal: m.principal.clone(),
        headers: m.headers.clone(),
        system: false,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Takes back the running jobs whose lease ran out: their worker died or lost the
/// database ([`JobStore::sweep_jobs`]).
pub struct JobSweeper {
    mediator: Mediator,
    interval: Duration,
    outage_backoff: Backoff,
    supervisor: Supervisor,
}

impl JobSweeper {
    /// A sweeper looking every [`JobWorkerOptions::sweep_interval`] of the application's
    /// options ([`crate::AppBuilder::job_options`]).
    pub fn new(mediator: Mediator) -> Self {
        let options = super::Jobs::of(&mediator).and_then(|j| j.options.clone()).unwrap_or_default();
        JobSweeper {
            mediator,
            interval: options.sweep_interval,
            outage_backoff: options.outage_backoff,
            supervisor: Supervisor::new("job_sweeper", options.worker),
        }
    }

    /// How [`JobSweeper::run`] is doing, now.
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    /// Takes back what expired by now, once; how many jobs.
    pub async fn run_once(&self) -> Result<u64> {
        let store = self.mediator.job_store_or_err()?;
        let swept = store.sweep_jobs(self.mediator.clock().now(), 1000).await?;
        if swept > 0 {
            tracing::warn!(swept, "took back running jobs whose lease ran out");
            metrics::counter!(crate::metrics::JOBS_SWEPT_TOTAL).increment(swept);
        }
        Ok(swept)
    }

    /// Sweeps until `shutdown` resolves, every interval (at once again after a full
    /// sweep).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        self.supervisor
            .run(&self.outage_backoff, shutdown, self.interval, None, || {
                Box::pin(async { Ok(if self.run_once().await? >= 1000 { Pace::Busy } else { Pace::Idle }) })
            })
            .await
    }
}
