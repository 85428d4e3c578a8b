//! Background jobs on the in-memory store: enqueued with a command's unit of work (or
//! not at all), run by a worker with retries and backoff on a test clock, progress,
//! cooperative cancellation, leases taken back by the sweeper, tenancy, and the jobs
//! that cannot run.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::jobs::{JobOptions, JobReport, JobSweeper, JobWorker, JobWorkerOptions};
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{Clock, JobOutcome, JobStatus, JobStore, NewJob, swept};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Mediator, MemoryStore, RequestContext};
use tokio::sync::Notify;
use uuid::Uuid;

// ---- jobs and commands -----------------------------------------------------------

/// Counts to `rows`, reporting progress; fails its first `fail_first` attempts.
#[job(name = "export")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    pub rows: u64,
    pub fail_first: u32,
}

impl JobHandler for Export {
    type Output = String;
    async fn run(self, ctx: &mut JobContext) -> Result<String> {
        if ctx.attempt() <= self.fail_first {
            return Err(Error::handler(format!("attempt {} fails", ctx.attempt())));
        }
        for done in 1..=self.rows {
            ctx.check_cancelled()?;
            ctx.progress(self.rows, done).await?;
        }
        Ok(format!("{} rows on attempt {}", self.rows, ctx.attempt()))
    }
}

/// Says in which context it ran.
#[job]
#[derive(Debug, Serialize, Deserialize)]
pub struct WhoAmI;

impl JobHandler for WhoAmI {
    type Output = (Option<String>, Option<String>, Uuid);
    async fn run(self, ctx: &mut JobContext) -> Result<Self::Output> {
        let request = RequestContext::current().expect("a job runs in its request's context");
        assert_eq!(ctx.request(), &request);
        Ok((ctx.tenant().map(str::to_owned), request.principal, request.correlation_id))
    }
}

/// Where a test and a running job meet: the job says it reached its gate and waits to
/// be let through.
#[derive(Default)]
struct Gate {
    reached: Notify,
    open: Notify,
}

/// Reports progress 4 of 10, waits at the gate, then checks for a cancel request.
#[job]
#[derive(Debug, Serialize, Deserialize)]
pub struct Gated;

impl JobHandler for Gated {
    type Output = ();
    async fn run(self, ctx: &mut JobContext) -> Result<()> {
        let gate = ctx.dep::<Gate>()?;
        ctx.progress(10, 4).await?;
        gate.reached.notify_one();
        gate.open.notified().await;
        ctx.heartbeat().await?;
        ctx.check_cancelled()?;
        ctx.progress(10, 10).await
    }
}

/// Panics.
#[job]
#[derive(Debug, Serialize, Deserialize)]
pub struct Panics;

impl JobHandler for Panics {
    type Output = ();
    async fn run(self, _ctx: &mut JobContext) -> Result<()> {
        panic!("a bug in the job")
    }
}

/// Implements `Job` by hand: enqueued only once registered with `AppBuilder::job`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ByHand;

impl cqrs_ddd::jobs::Job for ByHand {
    const NAME: &'static str = "by-hand";
}

impl JobHandler for ByHand {
    type Output = u8;
    async fn run(self, _ctx: &mut JobContext) -> Result<u8> {
        Ok(7)
    }
}

/// Enqueues an export; fails after enqueueing when told to.
#[command(response = Uuid)]
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestExport {
    pub rows: u64,
    pub then_fail: bool,
}

#[command_handler]
async fn request_export(cmd: RequestExport, ctx: &mut CommandContext) -> Result<Uuid> {
    let id = ctx.enqueue(Export { rows: cmd.rows, fail_first: 0 })?;
    if cmd.then_fail {
        return Err(Error::handler("the command fails after enqueueing"));
    }
    Ok(id)
}

/// Enqueues `WhoAmI`.
#[command(response = Uuid)]
#[derive(Debug, Serialize, Deserialize)]
pub struct AskWho;

#[command_handler]
async fn ask_who(_cmd: AskWho, ctx: &mut CommandContext) -> Result<Uuid> {
    ctx.enqueue(WhoAmI)
}

// ---- helpers ---------------------------------------------------------------------

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

struct Fixture {
    app: Mediator,
    store: MemoryStore,
    clock: ManualClock,
    gate: Arc<Gate>,
}

fn fixture() -> Fixture {
    let store = MemoryStore::new();
    let clock = ManualClock::new(start());
    let gate = Arc::new(Gate::default());
    let app = App::builder()
        .event_store(store.clone())
        .clock(clock.clone())
        .provide_arc(gate.clone())
        .job::<ByHand>()
        .job_options(options("w1"))
        .build()
        .unwrap();
    Fixture { app, store, clock, gate }
}

fn options(worker: &str) -> JobWorkerOptions {
    JobWorkerOptions {
        worker: worker.to_owned(),
        concurrency: 8,
        lease: Duration::from_secs(30),
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        ..JobWorkerOptions::default()
    }
}

fn store(app: &Mediator) -> Arc<dyn JobStore> {
    app.job_store().expect("the memory store keeps jobs")
}

async fn status(app: &Mediator, id: Uuid) -> JobStatus {
    app.job(id).await.unwrap().unwrap().status
}

fn report(completed: usize, retried: usize, failed: usize, cancelled: usize) -> JobReport {
    JobReport { completed, retried, failed, cancelled, lost: 0 }
}

// ---- enqueueing ------------------------------------------------------------------

#[tokio::test]
async fn a_job_enqueued_by_a_command_runs_once_and_completes_with_its_result_and_progress() {
    let f = fixture();
    let id = f.app.send(RequestExport { rows: 3, then_fail: false }).await.unwrap();
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt, job.max_attempts, job.run_at), (JobStatus::Pending, 0, 3, start()));

    let worker = JobWorker::new(f.app.clone());
    assert_eq!(worker.run_once().await.unwrap(), report(1, 0, 0, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result.as_deref(), Some("\"3 rows on attempt 1\""));
    assert_eq!((job.progress.total, job.progress.processed, job.attempt), (Some(3), 3, 1));
    assert_eq!((job.lease_owner, job.lease_until), (None, None));
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "a completed job does not run again");
}

#[tokio::test]
async fn a_command_that_fails_after_enqueueing_enqueues_nothing() {
    let f = fixture();
    let err = f.app.send(RequestExport { rows: 3, then_fail: true }).await.unwrap_err();
    assert!(err.to_string().contains("fails after enqueueing"), "{err}");
    assert!(f.store.job_records().is_empty(), "the rolled-back command left a job: {:?}", f.store.job_records());
    assert_eq!(JobWorker::new(f.app.clone()).run_once().await.unwrap(), JobReport::default());
}

#[tokio::test]
async fn enqueueing_outside_a_command_stores_one_pending_job_with_its_options() {
    let f = fixture();
    let later = start() + chrono::Duration::minutes(5);
    let id = f.app.enqueue_with(Export { rows: 1, fail_first: 0 }, JobOptions::attempts(5).at(later)).await.unwrap();
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.max_attempts, job.run_at), (JobStatus::Pending, 5, later));
    let worker = JobWorker::new(f.app.clone());
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "not due before its run_at");
    f.clock.advance(Duration::from_secs(300));
    assert_eq!(worker.run_once().await.unwrap(), report(1, 0, 0, 0));
}

#[tokio::test]
async fn a_job_type_without_registration_cannot_be_enqueued_and_one_registered_by_hand_can() {
    let f = fixture();
    let id = f.app.enqueue(ByHand).await.unwrap();
    JobWorker::new(f.app.clone()).run_once().await.unwrap();
    assert_eq!(f.app.job(id).await.unwrap().unwrap().result.as_deref(), Some("7"));

    let bare = App::builder().build().unwrap();
    let err = bare.enqueue(ByHand).await.unwrap_err();
    assert!(matches!(&err, Error::UnknownMessage { kind: "job", name } if name == "by-hand"), "{err}");
}

// ---- retries ---------------------------------------------------------------------

#[tokio::test]
async fn a_failing_job_is_retried_after_a_doubling_backoff_then_completes() {
    let f = fixture();
    let id = f.app.enqueue(Export { rows: 1, fail_first: 2 }).await.unwrap();
    let worker = JobWorker::new(f.app.clone());

    assert_eq!(worker.run_once().await.unwrap(), report(0, 1, 0, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Pending, 1));
    assert_eq!(job.run_at, start() + chrono::Duration::seconds(1), "due again after the first backoff");
    assert_eq!(job.error.as_deref(), Some("attempt 1 fails"));
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "not before its backoff");

    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_once().await.unwrap(), report(0, 1, 0, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!(job.run_at, start() + chrono::Duration::seconds(3), "the second backoff is twice the first");

    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default());
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_once().await.unwrap(), report(1, 0, 0, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 3));
    assert_eq!(job.result.as_deref(), Some("\"1 rows on attempt 3\""));
}

#[tokio::test]
async fn a_job_failing_its_last_attempt_is_failed_with_the_error() {
    let f = fixture();
    let id = f.app.enqueue_with(Export { rows: 1, fail_first: 9 }, JobOptions::attempts(2)).await.unwrap();
    let worker = JobWorker::new(f.app.clone());
    assert_eq!(worker.run_once().await.unwrap(), report(0, 1, 0, 0));
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_once().await.unwrap(), report(0, 0, 1, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt, job.error.as_deref()), (JobStatus::Failed, 2, Some("attempt 2 fails")));
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "a failed job stays failed");
}

#[tokio::test]
async fn a_panicking_job_is_a_failure_not_a_crash() {
    let f = fixture();
    let id = f.app.enqueue_with(Panics, JobOptions::attempts(1)).await.unwrap();
    assert_eq!(JobWorker::new(f.app.clone()).run_once().await.unwrap(), report(0, 0, 1, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert!(job.error.as_deref().unwrap().contains("a bug in the job"), "{:?}", job.error);
}

// ---- jobs that cannot run ----------------------------------------------------------

fn stored(job_type: &str, payload: &str, max_attempts: u32) -> NewJob {
    NewJob {
        id: cqrs_ddd::new_id(),
        job_type: job_type.to_owned(),
        payload: payload.to_owned(),
        metadata: Metadata::default(),
        max_attempts,
        run_at: start(),
        created_at: start(),
    }
}

#[tokio::test]
async fn a_stored_job_of_an_unknown_type_is_retried_then_fails_naming_the_type() {
    let f = fixture();
    let job = stored("renamed-away", "{}", 2);
    store(&f.app).enqueue_jobs(std::slice::from_ref(&job)).await.unwrap();
    let worker = JobWorker::new(f.app.clone());
    assert_eq!(worker.run_once().await.unwrap(), report(0, 1, 0, 0), "another process may know it");
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_once().await.unwrap(), report(0, 0, 1, 0));
    let record = f.app.job(job.id).await.unwrap().unwrap();
    let error = record.error.unwrap();
    assert!(error.contains("no job named `renamed-away`"), "{error}");
}

#[tokio::test]
async fn a_malformed_payload_fails_at_once_naming_the_field() {
    let f = fixture();
    let job = stored("export", r#"{"rows": "many", "fail_first": 0}"#, 5);
    store(&f.app).enqueue_jobs(std::slice::from_ref(&job)).await.unwrap();
    assert_eq!(JobWorker::new(f.app.clone()).run_once().await.unwrap(), report(0, 0, 1, 0));
    let record = f.app.job(job.id).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempt), (JobStatus::Failed, 1), "retrying cannot heal a payload");
    let error = record.error.unwrap();
    assert!(error.contains("cannot decode job `export`") && error.contains("`rows`"), "{error}");
}

// ---- progress and cancellation ---------------------------------------------------

#[tokio::test]
async fn progress_is_stored_while_the_job_runs() {
    let f = fixture();
    let id = f.app.enqueue(Gated).await.unwrap();
    let worker = JobWorker::new(f.app.clone());
    let running = tokio::spawn(async move { worker.run_once().await });
    f.gate.reached.notified().await;
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!((job.progress.total, job.progress.processed), (Some(10), 4));
    assert_eq!(job.heartbeat_at, Some(start()));
    assert_eq!(job.lease_owner.as_deref(), Some("w1"));
    f.gate.open.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), report(1, 0, 0, 0));
    assert_eq!(f.app.job(id).await.unwrap().unwrap().progress.processed, 10);
}

#[tokio::test]
async fn cancelling_a_pending_job_ends_it_at_once() {
    let f = fixture();
    let id = f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap();
    let outcome = f.app.admin().cancel_jobs(&[id, id]).await.unwrap();
    assert_eq!((outcome.done, outcome.skipped), (1, 0));
    assert_eq!(status(&f.app, id).await, JobStatus::Cancelled);
    assert_eq!(JobWorker::new(f.app.clone()).run_once().await.unwrap(), JobReport::default());
    let again = f.app.admin().cancel_jobs(&[id]).await.unwrap();
    assert_eq!((again.done, again.skipped), (0, 1), "a cancelled job is skipped");
}

#[tokio::test]
async fn a_running_job_stops_at_its_next_check_after_a_cancel_request() {
    let f = fixture();
    let id = f.app.enqueue(Gated).await.unwrap();
    let worker = JobWorker::new(f.app.clone());
    let running = tokio::spawn(async move { worker.run_once().await });
    f.gate.reached.notified().await;
    let outcome = f.app.admin().cancel_jobs(&[id]).await.unwrap();
    assert_eq!((outcome.done, outcome.skipped), (1, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.cancel_requested), (JobStatus::Running, true), "asked, still running");
    f.gate.open.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), report(0, 0, 0, 1));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.progress.processed, 4, "it stopped before its last step");
}

// ---- leases and the sweeper --------------------------------------------------------

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_back_by_the_sweeper_and_runs_again() {
    let f = fixture();
    let id = f.app.enqueue(Export { rows: 2, fail_first: 0 }).await.unwrap();
    let jobs = store(&f.app);
    // A worker claims the job and dies: its lease is never renewed.
    let claimed = jobs.claim_jobs("dead-worker", start(), 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let sweeper = JobSweeper::new(f.app.clone());
    let worker = JobWorker::new(f.app.clone());
    assert_eq!(sweeper.run_once().await.unwrap(), 0, "the lease is still live");
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "nobody else takes a held job");

    f.clock.advance(Duration::from_secs(31));
    assert_eq!(sweeper.run_once().await.unwrap(), 1);
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt, job.error.as_deref()), (JobStatus::Pending, 1, Some(swept::RETRIED)));
    assert_eq!(worker.run_once().await.unwrap(), report(1, 0, 0, 0));
    let job = f.app.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 2));

    // The dead worker's late answer changes nothing.
    let late = jobs.finish_job(id, "dead-worker", &JobOutcome::Failed { error: "late".into() }, f.clock.now()).await;
    assert!(!late.unwrap());
    assert_eq!(status(&f.app, id).await, JobStatus::Completed);
}

#[tokio::test]
async fn a_lost_job_on_its_last_attempt_fails_and_a_cancelled_one_ends_cancelled() {
    let f = fixture();
    let last = f.app.enqueue_with(Export { rows: 1, fail_first: 0 }, JobOptions::attempts(1)).await.unwrap();
    let asked = f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap();
    let jobs = store(&f.app);
    assert_eq!(jobs.claim_jobs("dead-worker", start(), 10, Duration::from_secs(30)).await.unwrap().len(), 2);
    f.app.admin().cancel_jobs(&[asked]).await.unwrap();
    f.clock.advance(Duration::from_secs(31));
    assert_eq!(JobSweeper::new(f.app.clone()).run_once().await.unwrap(), 2);
    let last = f.app.job(last).await.unwrap().unwrap();
    assert_eq!((last.status, last.error.as_deref()), (JobStatus::Failed, Some(swept::FAILED)));
    assert_eq!(status(&f.app, asked).await, JobStatus::Cancelled);
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_from_being_swept() {
    let f = fixture();
    let id = f.app.enqueue(Gated).await.unwrap();
    let worker = JobWorker::new(f.app.clone());
    let running = tokio::spawn(async move { worker.run_once().await });
    f.gate.reached.notified().await;
    // Twenty seconds pass; the job renews its lease (30 s) at its heartbeat.
    f.clock.advance(Duration::from_secs(20));
    store(&f.app).heartbeat_job(id, "w1", f.clock.now(), Duration::from_secs(30), None).await.unwrap();
    f.clock.advance(Duration::from_secs(20));
    assert_eq!(JobSweeper::new(f.app.clone()).run_once().await.unwrap(), 0, "renewed 20 s ago");
    f.gate.open.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), report(1, 0, 0, 0));
}

// ---- tenancy ---------------------------------------------------------------------

#[tokio::test]
async fn a_job_runs_in_the_tenant_principal_and_correlation_of_its_request() {
    let f = fixture();
    let acme = RequestContext::new().with_tenant("acme").with_principal("ada");
    let correlation = acme.correlation_id;
    let id = acme.scope(f.app.send(AskWho)).await.unwrap();
    JobWorker::new(f.app.clone()).run_once().await.unwrap();
    let job = f.store.job_records().into_iter().find(|j| j.id == id).unwrap();
    assert_eq!(job.metadata.tenant_id.as_deref(), Some("acme"));
    let (tenant, principal, ran_in): (Option<String>, Option<String>, Uuid) =
        serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!((tenant.as_deref(), principal.as_deref(), ran_in), (Some("acme"), Some("ada"), correlation));
}

#[tokio::test]
async fn tenant_b_cannot_see_or_touch_tenant_a_jobs() {
    let f = fixture();
    let a = RequestContext::new().with_tenant("a");
    let id = a.clone().scope(f.app.enqueue_with(Export { rows: 1, fail_first: 9 }, JobOptions::attempts(1))).await;
    let id = id.unwrap();
    JobWorker::new(f.app.clone()).run_once().await.unwrap();
    assert_eq!(status(&f.app, id).await, JobStatus::Failed);

    let b = f.app.admin().for_tenant(Some("b".into()));
    assert!(b.jobs(&[], 50, 0).await.unwrap().is_empty());
    assert_eq!(b.job_stats().await.unwrap().total(), 0);
    assert!(matches!(b.job(id).await, Err(Error::Missing { .. })));
    assert_eq!(b.retry_jobs(&[id]).await.unwrap().skipped, 1);
    assert_eq!(b.cancel_jobs(&[id]).await.unwrap().skipped, 1);
    assert_eq!(b.purge_jobs(start() + chrono::Duration::days(1)).await.unwrap(), 0);
    let in_b = RequestContext::new().with_tenant("b").scope(f.app.job(id)).await.unwrap();
    assert!(in_b.is_none(), "a job of tenant a read from tenant b's scope");
    assert_eq!(status(&f.app, id).await, JobStatus::Failed, "untouched");

    let a_admin = f.app.admin().for_tenant(Some("a".into()));
    assert_eq!(a_admin.jobs(&[], 50, 0).await.unwrap().len(), 1);
    assert_eq!(a_admin.retry_jobs(&[id]).await.unwrap().done, 1);
    assert_eq!(a.scope(f.app.job(id)).await.unwrap().unwrap().status, JobStatus::Pending);
}

// ---- operators -------------------------------------------------------------------

#[tokio::test]
async fn operators_list_by_status_with_paging_count_retry_and_purge() {
    let f = fixture();
    let mut ids = Vec::new();
    for i in 0..5 {
        let fail_first = if i % 2 == 0 { 0 } else { 9 };
        ids.push(f.app.enqueue_with(Export { rows: 1, fail_first }, JobOptions::attempts(1)).await.unwrap());
        f.clock.advance(Duration::from_millis(10));
    }
    let pending = f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap();
    let admin = f.app.admin();
    let listed: Vec<Uuid> = admin.jobs(&[JobStatus::Pending], 50, 0).await.unwrap().iter().map(|j| j.id).collect();
    let newest_first: Vec<Uuid> = std::iter::once(pending).chain(ids.iter().rev().copied()).collect();
    assert_eq!(listed, newest_first, "most recently changed first");
    let page: Vec<Uuid> = admin.jobs(&[], 2, 1).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(page, newest_first[1..3]);

    // Run the five (and the sixth): three complete, two fail.
    f.app.admin().cancel_jobs(&[pending]).await.unwrap();
    let done = JobWorker::with_options(f.app.clone(), options("w2")).run_once().await.unwrap();
    assert_eq!(done, report(3, 0, 2, 0));
    let stats = admin.job_stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed, stats.cancelled, stats.pending, stats.total()), (3, 2, 1, 0, 6));
    let failed: Vec<Uuid> = admin.jobs(&[JobStatus::Failed], 50, 0).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(failed.len(), 2);

    // Retry: the failed ones and the cancelled one; a completed one is skipped.
    let retried = admin.retry_jobs(&[failed[0], failed[1], pending, ids[0], Uuid::nil()]).await.unwrap();
    assert_eq!((retried.done, retried.skipped), (3, 2));
    let job = admin.job(failed[0]).await.unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Pending, 0), "attempts reset");

    // Purge: completed jobs changed before the date go; pending ones stay.
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(admin.purge_jobs(start()).await.unwrap(), 0, "nothing changed before the start");
    assert_eq!(admin.purge_jobs(f.clock.now()).await.unwrap(), 3);
    let stats = admin.job_stats().await.unwrap();
    assert_eq!((stats.completed, stats.pending, stats.total()), (0, 3, 3));
}

#[tokio::test]
async fn the_host_runs_the_job_worker_and_sweeper_when_there_are_job_types() {
    let f = fixture();
    let labels = f.app.host().labels();
    assert!(labels.contains(&"job_worker".to_owned()) && labels.contains(&"job_sweeper".to_owned()), "{labels:?}");
    assert!(!f.app.host().jobs(false).labels().contains(&"job_worker".to_owned()));
}

#[tokio::test]
async fn the_hosted_worker_runs_an_enqueued_job() {
    let store = MemoryStore::new();
    let app = App::builder()
        .event_store(store.clone())
        .job_options(JobWorkerOptions { poll_interval: Duration::from_millis(5), ..options("host") })
        .build()
        .unwrap();
    let id = app.send(RequestExport { rows: 2, then_fail: false }).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn({
        let app = app.clone();
        async move { app.run(async move { stopped.await.unwrap_or(()) }).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status(&app, id).await != JobStatus::Completed {
        assert!(std::time::Instant::now() < deadline, "the hosted worker did not run the job");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    host.await.unwrap().unwrap();
    assert_eq!(store.job_records().len(), 1);
}

#[tokio::test]
async fn a_job_enqueued_now_is_due_now_on_the_system_clock() {
    // Stores keep times to the millisecond: a job enqueued a fraction of a millisecond
    // into the current one is still claimed by a round in that millisecond.
    let app = App::builder().build().unwrap();
    for _ in 0..20 {
        let id = app.send(RequestExport { rows: 1, then_fail: false }).await.unwrap();
        assert_eq!(JobWorker::new(app.clone()).run_once().await.unwrap().completed, 1);
        assert_eq!(status(&app, id).await, JobStatus::Completed);
    }
}

/// An event store that keeps no jobs.
struct NoJobs(MemoryStore);

#[cqrs_ddd::ports::async_trait]
impl cqrs_ddd::ports::EventStore for NoJobs {
    async fn commit(&self, batch: cqrs_ddd::ports::CommitBatch) -> Result<cqrs_ddd::ports::CommitReceipt> {
        self.0.commit(batch).await
    }
    async fn read_stream(
        &self,
        stream: &cqrs_ddd::ports::StreamKey,
        after: u64,
    ) -> Result<cqrs_ddd::ports::EventStream<'static>> {
        self.0.read_stream(stream, after).await
    }
    async fn read_all(
        &self,
        after: cqrs_ddd::ports::Cursor,
        limit: usize,
    ) -> Result<Vec<cqrs_ddd::ports::StoredEvent>> {
        self.0.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &cqrs_ddd::ports::StreamKey) -> Result<u64> {
        self.0.stream_version(stream).await
    }
    async fn load_state(&self, stream: &cqrs_ddd::ports::StreamKey) -> Result<Option<cqrs_ddd::ports::StoredState>> {
        self.0.load_state(stream).await
    }
}

#[test]
fn job_types_need_an_event_store_that_keeps_jobs() {
    let Err(Error::Build(err)) = App::builder().event_store(NoJobs(MemoryStore::new())).build() else {
        panic!("an app whose jobs could never be stored was built")
    };
    let problem = err
        .problems
        .iter()
        .find(|p| matches!(p, cqrs_ddd::BuildProblem::JobsWithoutStore { .. }))
        .unwrap_or_else(|| panic!("{err}"));
    let cqrs_ddd::BuildProblem::JobsWithoutStore { jobs } = problem else { unreachable!() };
    assert!(jobs.contains(&"export") && jobs.contains(&"WhoAmI"), "{jobs:?}");
    assert!(problem.to_string().contains("need a job store"), "{problem}");
}

#[tokio::test]
async fn readiness_shows_the_job_worker_with_its_counts() {
    let f = fixture();
    f.app.enqueue_with(Export { rows: 1, fail_first: 9 }, JobOptions::attempts(1)).await.unwrap();
    f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap();
    JobWorker::new(f.app.clone()).run_once().await.unwrap();
    f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn({
        let app = f.app.clone();
        async move { app.host().scheduler(false).run(async move { stopped.await.unwrap_or(()) }).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let check = loop {
        let report = f.app.health().await;
        if let Some(c) = report.checks.iter().find(|c| c.name == "job_worker") {
            break c.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no job_worker check: {report:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(check.detail["failed"], 1, "{check:?}");
    stop.send(()).unwrap();
    host.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_long_job_holds_one_slot_and_the_others_keep_running_jobs() {
    let f = fixture();
    let options = JobWorkerOptions { concurrency: 2, poll_interval: Duration::from_millis(5), ..options("slots") };
    let worker = JobWorker::with_options(f.app.clone(), options);
    let long = f.app.enqueue(Gated).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { worker.run(async move { stopped.await.unwrap_or(()) }).await });
    f.gate.reached.notified().await;
    // Enqueued after the long job was claimed: run in the free slot while it waits.
    let mut quick = Vec::new();
    for _ in 0..3 {
        quick.push(f.app.enqueue(Export { rows: 1, fail_first: 0 }).await.unwrap());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for id in &quick {
        while status(&f.app, *id).await != JobStatus::Completed {
            assert!(std::time::Instant::now() < deadline, "a quick job waited for the long one");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(status(&f.app, long).await, JobStatus::Running);
    f.gate.open.notify_one();
    while status(&f.app, long).await != JobStatus::Completed {
        assert!(std::time::Instant::now() < deadline, "the long job did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

// ---- a job holding a lock the worker's own calls wait for -----------------------------

/// What SQLite's write lock is to a worker: held by a job's open commit, and waited for
/// by the worker's own heartbeats and claims.
#[derive(Default)]
struct WriteLock(tokio::sync::Mutex<()>);

/// Holds the write lock across several heartbeats and claims, like a long commit.
#[job]
#[derive(Debug, Serialize, Deserialize)]
pub struct HoldsTheLock;

impl JobHandler for HoldsTheLock {
    type Output = ();
    async fn run(self, ctx: &mut JobContext) -> Result<()> {
        let lock = ctx.dep::<WriteLock>()?;
        let _held = lock.0.lock().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

/// The memory store, whose job claims and heartbeats wait for the [`WriteLock`].
#[derive(Clone)]
struct Locking {
    inner: MemoryStore,
    lock: Arc<WriteLock>,
}

#[cqrs_ddd::ports::async_trait]
impl cqrs_ddd::ports::EventStore for Locking {
    fn jobs(self: Arc<Self>) -> Option<Arc<dyn JobStore>> {
        Some(self)
    }
    async fn commit(&self, batch: cqrs_ddd::ports::CommitBatch) -> Result<cqrs_ddd::ports::CommitReceipt> {
        self.inner.commit(batch).await
    }
    async fn read_stream(
        &self,
        stream: &cqrs_ddd::ports::StreamKey,
        after: u64,
    ) -> Result<cqrs_ddd::ports::EventStream<'static>> {
        self.inner.read_stream(stream, after).await
    }
    async fn read_all(
        &self,
        after: cqrs_ddd::ports::Cursor,
        limit: usize,
    ) -> Result<Vec<cqrs_ddd::ports::StoredEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &cqrs_ddd::ports::StreamKey) -> Result<u64> {
        self.inner.stream_version(stream).await
    }
    async fn load_state(&self, stream: &cqrs_ddd::ports::StreamKey) -> Result<Option<cqrs_ddd::ports::StoredState>> {
        self.inner.load_state(stream).await
    }
}

#[cqrs_ddd::ports::async_trait]
impl JobStore for Locking {
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        self.inner.enqueue_jobs(jobs).await
    }
    async fn job(
        &self,
        scope: cqrs_ddd::ports::TenantScope<'_>,
        id: Uuid,
    ) -> Result<Option<cqrs_ddd::ports::JobRecord>> {
        self.inner.job(scope, id).await
    }
    async fn claim_jobs(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<cqrs_ddd::ports::JobRecord>> {
        let _held = self.lock.0.lock().await;
        self.inner.claim_jobs(worker, now, limit, lease).await
    }
    async fn heartbeat_job(
        &self,
        id: Uuid,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        progress: Option<cqrs_ddd::ports::JobProgress>,
    ) -> Result<cqrs_ddd::ports::Heartbeat> {
        let _held = self.lock.0.lock().await;
        self.inner.heartbeat_job(id, worker, now, lease, progress).await
    }
    async fn finish_job(&self, id: Uuid, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<bool> {
        self.inner.finish_job(id, worker, outcome, now).await
    }
    async fn sweep_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.inner.sweep_jobs(now, limit).await
    }
    async fn list_jobs(&self, filter: &cqrs_ddd::ports::JobFilter<'_>) -> Result<Vec<cqrs_ddd::ports::JobRecord>> {
        self.inner.list_jobs(filter).await
    }
    async fn job_stats(&self, scope: cqrs_ddd::ports::TenantScope<'_>) -> Result<cqrs_ddd::ports::JobStats> {
        self.inner.job_stats(scope).await
    }
    async fn cancel_jobs(
        &self,
        scope: cqrs_ddd::ports::TenantScope<'_>,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.inner.cancel_jobs(scope, ids, now).await
    }
    async fn retry_jobs(
        &self,
        scope: cqrs_ddd::ports::TenantScope<'_>,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.inner.retry_jobs(scope, ids, now).await
    }
    async fn purge_jobs(&self, scope: cqrs_ddd::ports::TenantScope<'_>, before: DateTime<Utc>) -> Result<u64> {
        self.inner.purge_jobs(scope, before).await
    }
}

/// A heartbeat or a claim waiting for a lock the running job holds must not stop the
/// job from being polled (it would never let go: the worker process hung on SQLite).
#[tokio::test]
async fn a_job_holding_a_lock_its_heartbeats_and_claims_wait_for_runs_to_the_end() {
    let lock = Arc::new(WriteLock::default());
    let store = Locking { inner: MemoryStore::new(), lock: lock.clone() };
    let app = App::builder()
        .event_store(store.clone())
        .provide_arc(lock)
        .job_options(JobWorkerOptions {
            concurrency: 2,
            heartbeat: Duration::from_millis(5),
            poll_interval: Duration::from_millis(5),
            ..options("locked")
        })
        .build()
        .unwrap();
    let id = app.enqueue(HoldsTheLock).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = JobWorker::new(app.clone());
    let running = tokio::spawn(async move { worker.run(async move { stopped.await.unwrap_or(()) }).await });
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while status(&app, id).await != JobStatus::Completed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the job never ended: {:?}", app.job(id).await.unwrap());
    let report = tokio::time::timeout(Duration::from_secs(30), JobWorker::new(app.clone()).run_once()).await;
    assert_eq!(report.expect("run_once ended").unwrap().ended(), 0);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
