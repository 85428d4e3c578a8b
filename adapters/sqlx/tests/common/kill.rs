//! Crash safety, on every SQL store: processes are killed (SIGKILL, or an abort right
//! after a save) while they work, and what they leave behind is checked after a restart.
//!
//! - A projection worker process killed twenty times at random points while events are
//!   appended: after the last restart the read model equals a full replay and no event
//!   was applied twice (a typed table of the application, written on the projection's
//!   own connection, has the event id as its primary key).
//! - Processes that store a saga's commands and send them, aborted right after a save or
//!   killed at random points: after a restart every command was applied exactly once and
//!   every saga completed.
//! - A job worker process SIGKILLed in the middle of a job: once its lease runs out the
//!   sweeper puts the job back, another worker runs it again, and it completes once,
//!   each of its steps applied once.
//!
//! A backend test file runs them with `kill_tests!(Backend)`: the child processes are
//! that test binary itself, started on the `#[ignore]`d process tests it defines.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::Mediator;
use cqrs_ddd::ports::{Cursor, EventStore, SagaFilter, SagaKey, SagaRecord, SagaStatus, SagaStore, async_trait};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ProjectionWorker, WorkerOptions};
use cqrs_ddd::saga::{Saga, SagaCommand, SagaHandles, SagaOptions, SagaRecovery, Step};
use futures::future::BoxFuture;
use rand::Rng;

use super::TestDb;

/// The environment variable that names the database of a child process.
const PLACE: &str = "CQRS_DDD_KILL_TEST_PLACE";

/// Writes a row of the application's table `applied` (event id, its primary key) on the
/// projection transaction's own connection; `place` names the database.
pub type Record = for<'a> fn(&'a mut ProjectionTx, &'a str, uuid::Uuid) -> BoxFuture<'a, Result<()>>;

/// A database a child process opens again by name.
#[async_trait]
pub trait Reopen: TestDb<Store: 'static> + Sized {
    /// The `CREATE TABLE` of `applied` (`{t}` is the table prefix).
    const APPLIED: &'static str;
    /// Writes a row of `applied`.
    const RECORD: Record;
    /// A new database of its own, migrated.
    async fn create() -> Self;
    /// The name another process opens it by.
    fn place(&self) -> String;
    /// Opens the database named `place`, created and migrated by another process.
    async fn reopen(place: &str) -> Self;
    /// Drops the database.
    async fn destroy(self);
}

/// Runs the crash tests on `$db` (a [`Reopen`]).
#[allow(unused_macros)] // not on the memory store
macro_rules! kill_tests {
    ($db:ty) => {
        /// The worker process the kill test starts and kills; it does nothing alone.
        #[tokio::test]
        #[ignore = "started (and killed) by a_projection_killed_twenty_times_applies_every_event_once"]
        async fn projection_worker_process() {
            common::kill::projection_worker_process::<$db>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_projection_killed_twenty_times_applies_every_event_once() {
            common::kill::a_projection_killed_twenty_times_applies_every_event_once::<$db>("projection_worker_process")
                .await;
        }

        /// The saga process the kill test starts and kills; it does nothing alone.
        #[tokio::test]
        #[ignore = "started (and killed) by a_saga_process_killed_between_storing_and_sending_sends_each_command_once"]
        async fn saga_process() {
            common::kill::saga_process::<$db>().await;
        }

        /// The job worker process the kill test starts and kills; it does nothing alone.
        #[tokio::test]
        #[ignore = "started (and killed) by a_job_worker_killed_mid_job_leaves_the_job_to_another_that_completes_it_once"]
        async fn job_worker_process() {
            common::kill::job_worker_process::<$db>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_job_worker_killed_mid_job_leaves_the_job_to_another_that_completes_it_once() {
            common::kill::a_job_worker_killed_mid_job_leaves_the_job_to_another_that_completes_it_once::<$db>(
                "job_worker_process",
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_saga_process_killed_between_storing_and_sending_sends_each_command_once() {
            common::kill::a_saga_process_killed_between_storing_and_sending_sends_each_command_once::<$db>(
                "saga_process",
            )
            .await;
        }
    };
}

fn child(test: &str, place: &str, abort_at: u64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--ignored", "--nocapture", "-q"])
        .env(PLACE, place)
        .env("CQRS_DDD_ABORT_AT", abort_at.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every event, read to the end (after waiting for `n` to be visible).
async fn all_events(store: &impl EventStore, n: usize) -> Vec<cqrs_ddd::ports::StoredEvent> {
    super::visible(store, n).await;
    let (mut all, mut at) = (Vec::new(), Cursor::START);
    loop {
        let page = store.read_all(at, 1000).await.unwrap();
        let Some(last) = page.last() else { return all };
        at = last.cursor();
        all.extend(page);
    }
}

// ---- projections -----------------------------------------------------------------

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WalletCredited {
    amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(WalletCredited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    total: u64,
}

#[aggregate]
impl Wallet {
    #[handle(create_if_missing)]
    fn credit(&self, c: &CreditWallet) -> std::result::Result<Vec<WalletEvent>, Never> {
        Ok(vec![WalletCredited { amount: c.amount }.into()])
    }
    #[apply]
    fn wallet_credited(&mut self, e: &WalletCredited) {
        self.total += e.amount;
    }
}

#[command(aggregate = Wallet)]
struct CreditWallet {
    #[id]
    id: String,
    amount: u64,
}

/// Totals per wallet in the document store, and one row per applied event in a typed
/// table whose primary key makes a second application of an event fail loudly.
struct Totals {
    place: String,
    record: Record,
}

#[projection(name = "totals")]
impl Totals {
    #[on]
    async fn wallet_credited(&self, e: &Envelope<WalletCredited>, tx: &mut ProjectionTx) -> Result<()> {
        (self.record)(tx, &self.place, e.header.event_id).await?;
        let amount = e.amount;
        tx.docs("totals").update(&e.header.stream_id, |t: &mut u64| *t += amount).await?;
        Ok(())
    }
}

fn worker<D: Reopen>(store: &D::Store, place: &str) -> ProjectionWorker<Totals> {
    let totals = Totals { place: place.to_owned(), record: D::RECORD };
    ProjectionWorker::new(totals, Arc::new(store.clone()), Arc::new(store.clone())).with_options(WorkerOptions {
        batch_size: 7,
        lease_ttl: Duration::from_millis(150),
        poll_interval: Duration::from_millis(5),
        ..WorkerOptions::default()
    })
}

/// The body of the worker process: runs until killed.
pub async fn projection_worker_process<D: Reopen>() {
    let Ok(place) = std::env::var(PLACE) else { return };
    let db = D::reopen(&place).await;
    worker::<D>(&db.store().await, &place).run(std::future::pending()).await.unwrap();
}

pub async fn a_projection_killed_twenty_times_applies_every_event_once<D: Reopen>(process: &str) {
    let db = D::create().await;
    let place = db.place();
    db.exec(D::APPLIED).await;
    let store = db.store().await;
    let app = super::app(store.clone()).build().unwrap();

    // Commands keep coming while worker processes are killed.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, writing) = (app.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while writing.load(Ordering::SeqCst) {
                n += 1;
                app.send(CreditWallet { id: format!("w{}", n % 13), amount: n % 7 + 1 }).await.unwrap();
            }
            n
        })
    };
    for _ in 0..20 {
        let mut c = child(process, &place, 0);
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(100..500))).await;
        c.kill().unwrap(); // SIGKILL: no cleanup, no lease release
        c.wait().unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let commands = writer.await.unwrap();
    assert!(commands > 100, "the writer kept the workers busy ({commands} commands)");
    assert!(db.count("applied").await > 0, "the killed workers applied events before dying");

    // Restart once more and finish: catch up until every event is applied (a commit
    // is visible to readers of all events once no older writer is open).
    let last = worker::<D>(&store, &place);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        last.catch_up().await.unwrap();
        let applied = u64::try_from(db.count("applied").await).unwrap();
        if applied >= commands || std::time::Instant::now() > deadline {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(applied, commands, "every event applied exactly once");
    assert_eq!(last.status().await.unwrap().lag, 0);

    let mut replay: BTreeMap<String, u64> = BTreeMap::new();
    for e in all_events(&store, usize::try_from(commands).unwrap()).await {
        let amount: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        *replay.entry(e.stream.stream_id).or_default() += amount["amount"].as_u64().unwrap();
    }
    let model = cqrs_ddd::ports::ProjectionStore::documents(&store, "totals").await.unwrap();
    let model: BTreeMap<String, u64> = model.iter().map(|d| (d.id.clone(), d.json.parse().unwrap())).collect();
    assert_eq!(model, replay, "the read model equals a full replay");
    db.destroy().await;
}

// ---- sagas -----------------------------------------------------------------------

const SAGAS: u128 = 150;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ParcelShipped;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ParcelOrderPaid {
    order: u128,
}

#[aggregate(id = String, events(ParcelShipped), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Parcel;

#[aggregate]
impl Parcel {
    /// Ships every time it is asked: only the idempotency key stops a second shipment.
    #[handle(create_if_missing)]
    fn ship(&self, _c: &ShipParcel) -> std::result::Result<Vec<ParcelEvent>, Never> {
        Ok(vec![ParcelShipped.into()])
    }
    #[apply]
    fn parcel_shipped(&mut self, _e: &ParcelShipped) {}
}

#[command(aggregate = Parcel)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShipParcel {
    #[id]
    parcel: String,
}

/// Ships three parcels one after the other, then completes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Shipping;

impl Saga for Shipping {
    const NAME: &'static str = "shipping";
    fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
        cqrs_ddd::saga::send_command::<ShipParcel>(m, c, meta)
    }
}

impl SagaHandles<ParcelOrderPaid> for Shipping {
    const STARTS: bool = true;
    fn associate(e: &Envelope<ParcelOrderPaid>) -> Option<String> {
        Some(e.order.to_string())
    }
    fn on_event(&mut self, e: &Envelope<ParcelOrderPaid>) -> Step {
        let ship = |part: &str| ShipParcel { parcel: format!("{}-{part}", e.order) };
        Step::new("paid").send(&ship("a")).send(&ship("b")).send(&ship("c")).complete()
    }
}

/// A saga store that aborts the process right after its n-th successful save: the
/// saga's commands are stored, not (all) sent.
#[derive(Clone)]
struct AbortAfter<S> {
    inner: S,
    saves: Arc<AtomicU64>,
    abort_at: u64,
}

#[async_trait]
impl<S: SagaStore + Clone> SagaStore for AbortAfter<S> {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        self.inner.load(key).await
    }
    async fn save(&self, record: &SagaRecord, expected: u64) -> Result<()> {
        self.inner.save(record, expected).await?;
        if self.saves.fetch_add(1, Ordering::SeqCst) + 1 == self.abort_at {
            std::process::abort();
        }
        Ok(())
    }
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaKey>> {
        self.inner.due(now, limit).await
    }
    async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaRecord>> {
        self.inner.list(filter).await
    }
}

fn saga_app<S>(store: &S, abort_at: u64) -> Mediator
where
    S: EventStore + SagaStore + cqrs_ddd::ports::ScheduleStore + Clone + 'static,
{
    let sagas = AbortAfter { inner: store.clone(), saves: Arc::default(), abort_at };
    App::builder()
        .provide(super::projections::Seen::default())
        .provide(super::saga_engine::Faults::default())
        .event_store(store.clone())
        .saga_store(sagas)
        .schedule_store(store.clone())
        .saga::<Shipping>()
        .saga_options(SagaOptions {
            grace: Duration::ZERO,
            backoff: Duration::from_millis(10),
            ..SagaOptions::default()
        })
        .build()
        .unwrap()
}

/// The same event every time for one order, as a relay redelivers it.
fn paid(order: u128) -> Envelope<ParcelOrderPaid> {
    let mut envelope = cqrs_ddd::testing::envelope(ParcelOrderPaid { order });
    envelope.header.event_id = uuid::Uuid::from_u128(order + 1);
    envelope
}

/// The body of the saga process: handles every order, aborting after a save when told.
pub async fn saga_process<D: Reopen>() {
    let Ok(place) = std::env::var(PLACE) else { return };
    let abort_at = std::env::var("CQRS_DDD_ABORT_AT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let db = D::reopen(&place).await;
    let app = saga_app(&db.store().await, abort_at);
    for order in 0..SAGAS {
        app.sagas().handle::<Shipping, _>(&paid(order)).await.unwrap();
    }
}

pub async fn a_saga_process_killed_between_storing_and_sending_sends_each_command_once<D: Reopen>(process: &str) {
    let db = D::create().await;
    let place = db.place();

    // Aborted right after a save: the first save of an instance stores its three
    // commands, later saves mark one dispatched each.
    let mut aborted = 0;
    for abort_at in [1, 2, 3, 9, 14, 30, 47] {
        let status = child(process, &place, abort_at).wait().unwrap();
        aborted += u32::from(!status.success());
    }
    assert!(aborted >= 6, "the processes aborted after their save ({aborted} of 7)");
    // Killed at random points.
    for _ in 0..10 {
        let mut c = child(process, &place, 0);
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..400))).await;
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert!(db.count("sagas").await > 0, "the killed processes started sagas");

    // Restart: the events are delivered again (as a relay would) and recovery sends
    // whatever was stored and not sent.
    let store = db.store().await;
    let app = saga_app(&store, 0);
    for order in 0..SAGAS {
        app.sagas().handle::<Shipping, _>(&paid(order)).await.unwrap();
    }
    let recovery = SagaRecovery::new(app.clone());
    for _ in 0..50 {
        recovery.run_once().await.unwrap();
        if app.sagas().list_active(None, 1).await.unwrap().is_empty() {
            break;
        }
    }
    let done = app
        .sagas()
        .list(&SagaFilter {
            saga_type: Some("shipping"),
            statuses: &[SagaStatus::Completed],
            limit: 1000,
            ..SagaFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len() as u128, SAGAS, "every saga completed");

    let total = usize::try_from(SAGAS * 3).unwrap();
    let mut shipped: BTreeMap<String, usize> = BTreeMap::new();
    for e in all_events(&store, total).await {
        *shipped.entry(e.stream.stream_id).or_default() += 1;
    }
    let twice: Vec<_> = shipped.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "parcels shipped other than once: {twice:?}");
    assert_eq!(shipped.len(), total, "each of the three commands of each saga applied once");
    db.destroy().await;
}

// ---- jobs ------------------------------------------------------------------------

/// Steps of the job; the worker process stops answering after the step it is told
/// (`CQRS_DDD_ABORT_AT`) and is killed there.
const JOB_STEPS: u64 = 12;
/// The step after which the killed worker hangs.
const HANG_AT: u64 = 5;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TallyTicked {
    step: u64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TallyFinished;

#[aggregate(id = String, events(TallyTicked, TallyFinished), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally;

#[aggregate]
impl Tally {
    /// Ticks every time it is asked: only the idempotency key stops a second tick.
    #[handle(create_if_missing)]
    fn tick(&self, c: &TickTally) -> std::result::Result<Vec<TallyEvent>, Never> {
        Ok(vec![TallyTicked { step: c.step }.into()])
    }
    #[handle(create_if_missing)]
    fn finish(&self, _c: &FinishTally) -> std::result::Result<Vec<TallyEvent>, Never> {
        Ok(vec![TallyFinished.into()])
    }
    #[apply]
    fn tally_ticked(&mut self, _e: &TallyTicked) {}
    #[apply]
    fn tally_finished(&mut self, _e: &TallyFinished) {}
}

#[command(aggregate = Tally)]
struct TickTally {
    #[id]
    tally: String,
    step: u64,
}

#[command(aggregate = Tally)]
struct FinishTally {
    #[id]
    tally: String,
}

/// Ticks its tally once per step, each step under an idempotency key of the job and the
/// step (a second attempt skips the steps the first committed), reporting progress.
#[job(name = "kill-count-steps")]
#[derive(Debug, Serialize, Deserialize)]
struct CountSteps {
    tally: String,
}

/// `Ok` for a send that went through now or before (its key is recorded).
fn once<T>(sent: Result<T>) -> Result<()> {
    match sent {
        Ok(_) | Err(Error::AlreadyProcessed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

impl JobHandler for CountSteps {
    type Output = u64;
    async fn run(self, ctx: &mut JobContext) -> Result<u64> {
        let hang_at: u64 = std::env::var("CQRS_DDD_ABORT_AT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let key = |n: u64| uuid::Uuid::from_u128(ctx.id().as_u128() ^ u128::from(n));
        for step in 1..=JOB_STEPS {
            let tick = TickTally { tally: self.tally.clone(), step };
            once(ctx.mediator().send_idempotent(tick, key(step), None).await)?;
            ctx.progress(JOB_STEPS, step).await?;
            if step == hang_at {
                // The worker process is killed here, its heartbeats still running.
                std::future::pending::<()>().await;
            }
        }
        let finish = FinishTally { tally: self.tally.clone() };
        once(ctx.mediator().send_idempotent(finish, key(JOB_STEPS + 1), None).await)?;
        Ok(JOB_STEPS)
    }
}

fn job_app<S>(store: &S, worker: &str) -> Mediator
where
    S: EventStore + SagaStore + cqrs_ddd::ports::ScheduleStore + Clone + 'static,
{
    super::app(store.clone())
        .job_options(cqrs_ddd::jobs::JobWorkerOptions {
            worker: worker.to_owned(),
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            poll_interval: Duration::from_millis(20),
            ..cqrs_ddd::jobs::JobWorkerOptions::default()
        })
        .build()
        .unwrap()
}

/// The body of the job worker process: runs jobs until killed.
pub async fn job_worker_process<D: Reopen>() {
    let Ok(place) = std::env::var(PLACE) else { return };
    let db = D::reopen(&place).await;
    let app = job_app(&db.store().await, "killed-worker");
    cqrs_ddd::jobs::JobWorker::new(app).run(std::future::pending()).await.unwrap();
}

pub async fn a_job_worker_killed_mid_job_leaves_the_job_to_another_that_completes_it_once<D: Reopen>(process: &str) {
    use cqrs_ddd::ports::{JobStatus, JobStore, StreamKey, TenantScope};
    let db = D::create().await;
    let place = db.place();
    let store = db.store().await;
    let app = job_app(&store, "second-worker");
    let id = app.enqueue(CountSteps { tally: "t-1".into() }).await.unwrap();

    // The worker process runs the job to its HANG_AT-th step and is killed there.
    let mut c = child(process, &place, HANG_AT);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let held = loop {
        let job = store.job(TenantScope::All, id).await.unwrap().unwrap();
        if job.status == JobStatus::Running && job.progress.processed == HANG_AT {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "the worker process did not reach step {HANG_AT}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    c.kill().unwrap(); // SIGKILL: no cleanup, no last word
    c.wait().unwrap();
    assert_eq!((held.lease_owner.as_deref(), held.attempt), (Some("killed-worker"), 1));
    let tally = StreamKey::new("Tally", "t-1");
    assert_eq!(store.stream_version(&tally).await.unwrap(), HANG_AT, "the killed worker's steps are committed");

    // Nobody takes a job whose lease is live; the sweeper takes it back once it ran out.
    let worker = cqrs_ddd::jobs::JobWorker::new(app.clone());
    let sweeper = cqrs_ddd::jobs::JobSweeper::new(app.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sweeper.run_once().await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "the dead worker's lease never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let swept = store.job(TenantScope::All, id).await.unwrap().unwrap();
    assert_eq!((swept.status, swept.lease_owner), (JobStatus::Pending, None));

    let report = worker.run_once().await.unwrap();
    assert_eq!((report.completed, report.ended()), (1, 1), "{report:?}");
    let job = store.job(TenantScope::All, id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt, job.result.as_deref()), (JobStatus::Completed, 2, Some("12")));
    assert_eq!((job.progress.total, job.progress.processed), (Some(JOB_STEPS), JOB_STEPS));
    assert_eq!(
        store.stream_version(&tally).await.unwrap(),
        JOB_STEPS + 1,
        "each step ticked once and the job finished once"
    );
    assert_eq!(worker.run_once().await.unwrap().ended(), 0, "a completed job does not run again");
    db.destroy().await;
}
