//! Background jobs behave alike on every store: enqueued with the command's commit or
//! not at all, stored and read back whole, claimed by one worker at a time, retried
//! after a backoff, swept back when a lease runs out, and listed, counted, cancelled,
//! retried and purged per tenant.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::jobs::{JobOptions, JobReport, JobSweeper, JobWorker, JobWorkerOptions};
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{
    Clock, CommitBatch, EventStore, Heartbeat, JobFilter, JobOutcome, JobProgress, JobStatus, JobStore, NewJob,
    StreamAppend, StreamKey, TenantScope, swept,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Mediator, RequestContext};
use uuid::Uuid;

use super::{TestDb, new_event};

/// Counts to `rows` with progress; fails while its attempt is at most `fail_first`.
#[job(name = "contract-export")]
#[derive(Debug, Serialize, Deserialize)]
pub struct ContractExport {
    pub rows: u64,
    pub fail_first: u32,
}

impl JobHandler for ContractExport {
    type Output = serde_json::Value;
    async fn run(self, ctx: &mut JobContext) -> Result<serde_json::Value> {
        if ctx.attempt() <= self.fail_first {
            return Err(Error::handler(format!("attempt {} fails", ctx.attempt())));
        }
        for done in 1..=self.rows {
            ctx.progress(self.rows, done).await?;
        }
        Ok(serde_json::json!({ "rows": self.rows, "attempt": ctx.attempt(), "tenant": ctx.tenant() }))
    }
}

/// Enqueues an export, and fails afterwards when told to.
#[command(response = Uuid)]
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportLater {
    pub rows: u64,
    pub then_fail: bool,
}

#[command_handler]
async fn export_later(cmd: ExportLater, ctx: &mut CommandContext) -> Result<Uuid> {
    let id = ctx.enqueue(ContractExport { rows: cmd.rows, fail_first: 0 })?;
    if cmd.then_fail {
        return Err(Error::handler("failed after enqueueing"));
    }
    Ok(id)
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()
}

fn options(worker: &str) -> JobWorkerOptions {
    JobWorkerOptions {
        worker: worker.to_owned(),
        concurrency: 16,
        lease: Duration::from_secs(30),
        backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(60),
        ..JobWorkerOptions::default()
    }
}

/// An app on the store, on a manual clock.
fn jobs_app<S: EventStore + JobStore + cqrs_ddd::ports::SagaStore + cqrs_ddd::ports::ScheduleStore + Clone>(
    store: &S,
    clock: &ManualClock,
) -> Mediator {
    super::app(store.clone()).clock(clock.clone()).job_options(options("w1")).build().unwrap()
}

fn new_job(tenant: Option<&str>, rows: u64, at: DateTime<Utc>) -> NewJob {
    NewJob {
        id: cqrs_ddd::new_id(),
        job_type: "contract-export".to_owned(),
        payload: serde_json::json!({ "rows": rows, "fail_first": 0 }).to_string(),
        metadata: Metadata { tenant_id: tenant.map(str::to_owned), ..Metadata::default() },
        max_attempts: 3,
        run_at: at,
        created_at: at,
    }
}

pub async fn jobs_are_enqueued_with_the_commit_or_not_at_all<D: TestDb>(db: &D) {
    let store = db.store().await;
    let clock = ManualClock::new(start());
    let app = jobs_app(&store, &clock);
    let id = app.send(ExportLater { rows: 2, then_fail: false }).await.unwrap();
    let job = store.job(TenantScope::All, id).await.unwrap().expect("the committed command's job");
    assert_eq!((job.status, job.job_type.as_str(), job.run_at), (JobStatus::Pending, "contract-export", start()));

    let err = app.send(ExportLater { rows: 2, then_fail: true }).await.unwrap_err();
    assert!(err.to_string().contains("failed after enqueueing"), "{err}");
    assert_eq!(store.job_stats(TenantScope::All).await.unwrap().total(), 1, "the failed command enqueued nothing");

    // A batch the store refuses (a version conflict) writes none of its jobs.
    let stream = StreamKey::new("Ledger", "l-1");
    let append = |expected_version| StreamAppend {
        stream: stream.clone(),
        expected_version,
        events: vec![new_event("Noted", 1, serde_json::json!({}))],
    };
    store.commit(CommitBatch { appends: vec![append(0)], ..CommitBatch::default() }).await.unwrap();
    let refused = new_job(None, 1, start());
    let batch = CommitBatch { appends: vec![append(0)], jobs: vec![refused.clone()], ..CommitBatch::default() };
    assert!(store.commit(batch).await.unwrap_err().is_conflict());
    assert!(store.job(TenantScope::All, refused.id).await.unwrap().is_none(), "a refused batch left its job");
    // A batch of jobs alone commits.
    let alone = new_job(None, 1, start());
    store.commit(CommitBatch { jobs: vec![alone.clone()], ..CommitBatch::default() }).await.unwrap();
    assert!(store.job(TenantScope::All, alone.id).await.unwrap().is_some());
}

pub async fn job_records_round_trip<D: TestDb>(db: &D) {
    let store = db.store().await;
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("traceparent".to_owned(), "00-abc-def-01".to_owned());
    let job = NewJob {
        id: cqrs_ddd::new_id(),
        job_type: "contract-export".to_owned(),
        payload: r#"{"rows":3,"fail_first":0}"#.to_owned(),
        metadata: Metadata {
            correlation_id: Some(Uuid::from_u128(7)),
            causation_id: Some(Uuid::from_u128(8)),
            tenant_id: Some("acme".to_owned()),
            principal: Some("ada".to_owned()),
            headers,
        },
        max_attempts: 4,
        run_at: start(),
        created_at: start() - chrono::Duration::seconds(1),
    };
    store.enqueue_jobs(std::slice::from_ref(&job)).await.unwrap();
    let stored = store.job(TenantScope::Only(Some("acme")), job.id).await.unwrap().unwrap();
    let mut expected = cqrs_ddd::ports::JobRecord::pending(&job);
    assert_eq!(stored, expected);

    let claimed = store.claim_jobs("w", start(), 10, Duration::from_secs(30)).await.unwrap();
    let until = start() + chrono::Duration::seconds(30);
    expected.status = JobStatus::Running;
    expected.attempt = 1;
    expected.lease_owner = Some("w".to_owned());
    expected.lease_until = Some(until);
    expected.heartbeat_at = Some(start());
    expected.updated_at = start();
    assert_eq!(claimed, [expected.clone()]);
    let later = start() + chrono::Duration::seconds(5);
    let progress = JobProgress { total: Some(3), processed: 2 };
    let beat = store.heartbeat_job(job.id, "w", later, Duration::from_secs(30), Some(progress)).await.unwrap();
    assert_eq!(beat, Heartbeat::Held { cancel_requested: false });
    let result = r#"{"done":[1,2,3]}"#;
    assert!(store.finish_job(job.id, "w", &JobOutcome::Completed { result: result.into() }, later).await.unwrap());
    let done = store.job(TenantScope::All, job.id).await.unwrap().unwrap();
    expected.status = JobStatus::Completed;
    expected.lease_owner = None;
    expected.lease_until = None;
    expected.heartbeat_at = Some(later);
    expected.updated_at = later;
    expected.progress = progress;
    expected.result = Some(result.to_owned());
    assert_eq!(done, expected);
}

pub async fn jobs_run_retry_after_a_backoff_and_complete<D: TestDb>(db: &D) {
    let store = db.store().await;
    let clock = ManualClock::new(start());
    let app = jobs_app(&store, &clock);
    let id = RequestContext::new()
        .with_tenant("acme")
        .scope(app.enqueue_with(ContractExport { rows: 3, fail_first: 1 }, JobOptions::attempts(2)))
        .await
        .unwrap();
    let worker = JobWorker::new(app.clone());
    let report = |completed, retried| JobReport { completed, retried, ..JobReport::default() };
    assert_eq!(worker.run_once().await.unwrap(), report(0, 1));
    let job = store.job(TenantScope::All, id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt, job.error.as_deref()), (JobStatus::Pending, 1, Some("attempt 1 fails")));
    assert_eq!(job.run_at, start() + chrono::Duration::seconds(2));
    assert_eq!(worker.run_once().await.unwrap(), JobReport::default(), "not due before its backoff");
    clock.advance(Duration::from_secs(2));
    assert_eq!(worker.run_once().await.unwrap(), report(1, 0));
    let job = store.job(TenantScope::Only(Some("acme")), id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 2));
    assert_eq!(job.progress, JobProgress { total: Some(3), processed: 3 });
    let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result, serde_json::json!({ "rows": 3, "attempt": 2, "tenant": "acme" }));
}

pub async fn two_workers_never_claim_one_job<D: TestDb>(db: &D, jobs: usize) {
    let store = db.store().await;
    let batch: Vec<NewJob> = (0..jobs).map(|_| new_job(None, 1, start())).collect();
    store.enqueue_jobs(&batch).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..2 {
        let store = db.store().await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_jobs(&format!("w{w}"), start(), 7, Duration::from_secs(60)).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), jobs, "every job claimed");
    assert_eq!(store.job_stats(TenantScope::All).await.unwrap().running, jobs as u64);
}

pub async fn expired_leases_are_swept_back_and_lost_workers_write_nothing<D: TestDb>(db: &D) {
    let store = db.store().await;
    let clock = ManualClock::new(start());
    let app = jobs_app(&store, &clock);
    let retried = new_job(None, 1, start());
    let last = NewJob { max_attempts: 1, ..new_job(None, 1, start()) };
    let asked = new_job(None, 1, start());
    let renewed = new_job(None, 1, start());
    store.enqueue_jobs(&[retried.clone(), last.clone(), asked.clone(), renewed.clone()]).await.unwrap();
    let lease = Duration::from_secs(10);
    assert_eq!(store.claim_jobs("dead", start(), 10, lease).await.unwrap().len(), 4);
    assert_eq!(store.cancel_jobs(TenantScope::All, &[asked.id], start()).await.unwrap(), 1);
    let later = start() + chrono::Duration::seconds(8);
    let beat = store.heartbeat_job(renewed.id, "dead", later, lease, None).await.unwrap();
    assert_eq!(beat, Heartbeat::Held { cancel_requested: false });
    let beat = store.heartbeat_job(asked.id, "dead", later, lease, None).await.unwrap();
    assert_eq!(beat, Heartbeat::Held { cancel_requested: true }, "a heartbeat hears the cancel request");

    let sweeper = JobSweeper::new(app.clone());
    clock.advance(Duration::from_secs(10));
    assert_eq!(sweeper.run_once().await.unwrap(), 0, "a lease is live until its end");
    clock.advance(Duration::from_millis(1));
    assert_eq!(sweeper.run_once().await.unwrap(), 2, "the two leases not renewed ran out");
    let get = |id| {
        let store = store.clone();
        async move { store.job(TenantScope::All, id).await.unwrap().unwrap() }
    };
    let (r, l, a) = (get(retried.id).await, get(last.id).await, get(asked.id).await);
    assert_eq!((r.status, r.attempt, r.error.as_deref()), (JobStatus::Pending, 1, Some(swept::RETRIED)));
    assert_eq!((r.lease_owner, r.run_at), (None, clock.now()));
    assert_eq!((l.status, l.error.as_deref()), (JobStatus::Failed, Some(swept::FAILED)));
    assert_eq!(a.status, JobStatus::Running, "renewed at its heartbeat");
    clock.advance(Duration::from_secs(8));
    assert_eq!(sweeper.run_once().await.unwrap(), 2);
    assert_eq!(get(asked.id).await.status, JobStatus::Cancelled);
    assert_eq!(get(renewed.id).await.status, JobStatus::Pending);

    // The dead worker's late answers change nothing.
    let now = clock.now();
    assert_eq!(store.heartbeat_job(retried.id, "dead", now, lease, None).await.unwrap(), Heartbeat::Lost);
    let outcome = JobOutcome::Completed { result: "1".into() };
    assert!(!store.finish_job(retried.id, "dead", &outcome, now).await.unwrap());
    assert_eq!(get(retried.id).await.status, JobStatus::Pending);
    // Another worker runs it to the end.
    let report = JobWorker::new(app).run_once().await.unwrap();
    assert_eq!((report.completed, report.lost), (2, 0), "{report:?}");
    assert_eq!(get(retried.id).await.attempt, 2);
}

pub async fn operators_list_count_cancel_retry_and_purge_per_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let mut ids = Vec::new();
    for (i, tenant) in (0..).zip(["a", "a", "a", "b", "b"]) {
        let at = start() + chrono::Duration::seconds(i);
        let job = new_job(Some(tenant), 1, at);
        ids.push(job.id);
        store.enqueue_jobs(&[job]).await.unwrap();
    }
    let a = TenantScope::Only(Some("a"));
    let b = TenantScope::Only(Some("b"));
    let list = |scope, statuses: &'static [JobStatus], limit, offset| {
        let store = store.clone();
        async move {
            let filter = JobFilter { statuses, tenant: scope, limit, offset, ..JobFilter::default() };
            store.list_jobs(&filter).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(a, &[], 10, 0).await, [ids[2], ids[1], ids[0]], "most recently changed first");
    assert_eq!(list(TenantScope::All, &[], 2, 1).await, [ids[3], ids[2]], "paged");
    assert_eq!(list(b, &[JobStatus::Pending], 10, 0).await, [ids[4], ids[3]]);

    // Tenant b cannot cancel, retry or purge tenant a's jobs.
    let now = start() + chrono::Duration::seconds(10);
    assert_eq!(store.cancel_jobs(b, &[ids[0], ids[3]], now).await.unwrap(), 1);
    assert_eq!(store.job(b, ids[0]).await.unwrap(), None, "tenant b reads tenant a's job");
    assert_eq!(store.job(a, ids[0]).await.unwrap().unwrap().status, JobStatus::Pending);
    assert_eq!(store.cancel_jobs(a, &[ids[0], ids[0], ids[1]], now).await.unwrap(), 2);
    let stats = store.job_stats(a).await.unwrap();
    assert_eq!((stats.pending, stats.cancelled, stats.total()), (1, 2, 3));
    let all = store.job_stats(TenantScope::All).await.unwrap();
    assert_eq!((all.pending, all.cancelled, all.total()), (2, 3, 5));
    let mut same_time = vec![ids[0], ids[1], ids[3]];
    same_time.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(list(TenantScope::All, &[JobStatus::Cancelled], 10, 0).await, same_time, "ties by id, descending");

    assert_eq!(store.retry_jobs(b, &[ids[0]], now).await.unwrap(), 0, "another tenant's job");
    assert_eq!(store.retry_jobs(a, &[ids[0], ids[2]], now).await.unwrap(), 1, "a pending job is not retried");
    let again = store.job(a, ids[0]).await.unwrap().unwrap();
    assert_eq!((again.status, again.attempt, again.run_at), (JobStatus::Pending, 0, now));

    assert_eq!(store.purge_jobs(b, now).await.unwrap(), 0, "nothing of b changed before `now`");
    assert_eq!(store.purge_jobs(a, now + chrono::Duration::milliseconds(1)).await.unwrap(), 1);
    assert_eq!(store.purge_jobs(TenantScope::All, now + chrono::Duration::milliseconds(1)).await.unwrap(), 1);
    assert_eq!(store.job_stats(TenantScope::All).await.unwrap().total(), 3);
    let err = store.job_stats(TenantScope::Only(Some(""))).await.unwrap_err();
    assert!(matches!(err, Error::Tenant(_)), "{err}");
}
