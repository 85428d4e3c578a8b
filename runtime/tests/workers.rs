//! Long-running workers on the in-memory adapters, with stores that fail on command: they
//! ride out outages and say so in their health, hand an event whose writes the store
//! refuses to the error policy, and report a held read horizon.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Deposit, Open};
use cqrs_ddd::memory::{MemoryProjectionStore, MemoryStore};
use cqrs_ddd::outbox::{OutboxRelay, RelayOptions};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, DeadLetter, Document, EventStore, EventStream, ProjectionStore, ProjectionTxn,
    Publisher, ReadStall, StoredEvent, StoredState, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, ProjectionWorker, WorkerOptions};
use cqrs_ddd::{Backoff, WorkerState};
use parking_lot::Mutex;
use uuid::Uuid;

// ---- a projection of owners and balances ----

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Owner {
    owner: String,
    balance: u64,
}

struct Owners;

#[projection(name = "owners")]
impl Owners {
    #[on]
    async fn opened(&self, e: &Envelope<common::Opened>, tx: &mut ProjectionTx) -> Result<()> {
        let owner = e.owner.clone();
        tx.docs("owners").update(&e.header.stream_id, |o: &mut Owner| o.owner = owner).await?;
        Ok(())
    }

    #[on]
    async fn deposited(&self, e: &Envelope<common::Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let amount = e.amount;
        tx.docs("owners").update(&e.header.stream_id, |o: &mut Owner| o.balance += amount).await?;
        Ok(())
    }
}

// ---- stores that fail on command ----

fn refused() -> Error {
    Error::Connect { backend: "memory", target: "test".into(), reason: "connection refused".into() }
}

/// An event store that fails while `down`, reports `stall` as what holds its horizon,
/// and records what it was asked.
#[derive(Clone)]
struct Events {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    stall: Arc<Mutex<Option<ReadStall>>>,
    asked: Arc<Mutex<Vec<Asked>>>,
}

#[derive(Debug, Clone, Copy)]
enum Asked {
    /// `read_all` with this limit returned this many events.
    Read { limit: usize, returned: usize },
    /// `read_stall`, at this instant.
    Stall(Instant),
}

impl Events {
    fn new(inner: MemoryStore) -> Self {
        Events { inner, down: Arc::default(), stall: Arc::default(), asked: Arc::default() }
    }

    fn up(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) { Err(refused()) } else { Ok(()) }
    }
}

#[async_trait]
impl EventStore for Events {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.up()?;
        self.inner.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        self.up()?;
        self.inner.read_stream(stream, after_version).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.up()?;
        let events = self.inner.read_all(after, limit).await?;
        self.asked.lock().push(Asked::Read { limit, returned: events.len() });
        Ok(events)
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.up()?;
        self.inner.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.up()?;
        self.inner.load_state(stream).await
    }
    async fn read_stall(&self) -> Result<Option<ReadStall>> {
        self.up()?;
        self.asked.lock().push(Asked::Stall(Instant::now()));
        Ok(self.stall.lock().clone())
    }
    async fn head(&self) -> Result<Cursor> {
        self.up()?;
        self.inner.head().await
    }
}

/// A projection store that fails while `down`, and refuses documents holding a `\u0000`
/// escape with `refusal` (as PostgreSQL's `jsonb` does).
#[derive(Clone)]
struct Projections {
    inner: MemoryProjectionStore,
    down: Arc<AtomicBool>,
    refusal: Option<fn() -> Error>,
}

impl Projections {
    fn up(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) { Err(refused()) } else { Ok(()) }
    }
}

#[async_trait]
impl ProjectionStore for Projections {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        self.up()?;
        Ok(Box::new(Txn { inner: self.inner.begin().await?, store: self.clone() }))
    }
    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>> {
        self.up()?;
        self.inner.checkpoint(projection, partition).await
    }
    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool> {
        self.up()?;
        self.inner.acquire_lease(projection, partition, owner, ttl).await
    }
    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()> {
        self.up()?;
        self.inner.release_lease(projection, partition, owner).await
    }
    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        self.up()?;
        self.inner.dead_letters(projection).await
    }
    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()> {
        self.up()?;
        self.inner.remove_dead_letter(projection, event_id).await
    }
    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.inner.document_of(tenant, collection, id).await
    }
    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        self.inner.documents_of(tenant, collection).await
    }
}

struct Txn {
    inner: Box<dyn ProjectionTxn>,
    store: Projections,
}

#[async_trait]
impl ProjectionTxn for Txn {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.store.up()?;
        self.inner.get_doc(tenant, collection, id).await
    }
    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        self.store.up()?;
        if let Some(refusal) = self.store.refusal.filter(|_| json.contains("\\u0000")) {
            return Err(refusal());
        }
        self.inner.put_doc(tenant, collection, id, json).await
    }
    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        self.store.up()?;
        self.inner.delete_doc(tenant, collection, id).await
    }
    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        self.store.up()?;
        self.inner.clear_docs(collection).await
    }
    async fn save_checkpoint(
        &mut self,
        projection: &str,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()> {
        self.store.up()?;
        self.inner.save_checkpoint(projection, partition, expected, to).await
    }
    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        self.store.up()?;
        self.inner.reset_checkpoints(projection).await
    }
    async fn dead_letter(&mut self, letter: DeadLetter) -> Result<()> {
        self.store.up()?;
        self.inner.dead_letter(letter).await
    }
    async fn commit(self: Box<Self>) -> Result<()> {
        self.store.up()?;
        self.inner.commit().await
    }
    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
    fn connection(&mut self) -> &mut (dyn std::any::Any + Send) {
        self.inner.connection()
    }
}

struct Fixture {
    app: Mediator,
    events: Events,
    projections: Projections,
}

fn fixture(refusal: Option<fn() -> Error>) -> Fixture {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).build().unwrap();
    let down = Arc::new(AtomicBool::new(false));
    let mut events = Events::new(store);
    events.down = down.clone();
    let projections = Projections { inner: MemoryProjectionStore::new(), down, refusal };
    Fixture { app, events, projections }
}

impl Fixture {
    fn worker(&self, options: WorkerOptions) -> ProjectionWorker<Owners> {
        ProjectionWorker::new(Owners, Arc::new(self.events.clone()), Arc::new(self.projections.clone()))
            .with_options(options)
    }

    async fn owner(&self, id: &str) -> Option<Owner> {
        let doc = self.projections.document("owners", id).await.unwrap()?;
        Some(serde_json::from_str(&doc.json).unwrap())
    }

    fn set_down(&self, down: bool) {
        self.events.down.store(down, Ordering::SeqCst);
    }
}

/// Polls `check` every 5 ms until it holds; fails with `what` after 5 s.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(5), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn quick() -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(10),
        outage_backoff: Backoff::new(Duration::from_millis(2), Duration::from_millis(20)),
        ..WorkerOptions::default()
    }
}

// ---- outages ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_worker_rides_out_an_outage_and_says_it_is_retrying() {
    let f = fixture(None);
    f.app.send(Open { account: "a".into(), owner: "ann".into() }).await.unwrap();
    let worker = Arc::new(f.worker(quick()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(async { stopped.await.unwrap_or(()) }).await }
    });
    eventually("the worker projects", || async { f.owner("a").await.is_some() }).await;
    assert_eq!(worker.health().state, WorkerState::Running);

    f.set_down(true);
    f.app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    eventually("the worker reports retrying", || async { worker.health().consecutive_failures >= 3 }).await;
    let health = worker.health();
    assert!(health.retrying_since().is_some(), "{health:?}");
    assert!(health.last_error.as_deref().unwrap_or_default().contains("connection refused"), "{health:?}");
    assert!(!run.is_finished(), "an outage does not end the run");

    f.set_down(false);
    eventually("the worker catches up", || async { f.owner("a").await.is_some_and(|o| o.balance == 5) }).await;
    eventually("the worker is running again", || async { worker.health().state == WorkerState::Running }).await;
    assert!(worker.health().retries >= 3);
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(worker.health().state, WorkerState::Stopped);
}

#[tokio::test]
async fn a_projection_error_under_stop_ends_the_run_with_the_event_named() {
    let f = fixture(Some(|| Error::Unstorable { what: "document".into(), reason: "NUL".into() }));
    f.app.send(Open { account: "z".into(), owner: "nul\u{0}here".into() }).await.unwrap();
    let worker = f.worker(quick());
    let err = worker.run(std::future::pending()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Projection { stream, version: 1, position: 1, event_type, .. } if stream == "Account/z" && event_type == "Opened"),
        "{err}"
    );
    assert_eq!(worker.health().state, WorkerState::Failed);
}

// ---- an event whose writes the store refuses ----

/// History: `a` and `b` are fine, `p`'s owner holds a NUL, which the store refuses.
async fn poisoned_history(f: &Fixture) {
    f.app.send(Open { account: "a".into(), owner: "ann".into() }).await.unwrap();
    f.app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    f.app.send(Open { account: "p".into(), owner: "nul\u{0}here".into() }).await.unwrap();
    f.app.send(Deposit { account: "p".into(), amount: 1 }).await.unwrap();
    f.app.send(Open { account: "b".into(), owner: "bob".into() }).await.unwrap();
    f.app.send(Deposit { account: "b".into(), amount: 7 }).await.unwrap();
}

/// The refusals a store may give: typed and final, or a plain store error (which
/// could have been an outage, so the worker makes sure it repeats).
const REFUSALS: [fn() -> Error; 2] = [
    || Error::Unstorable { what: "document".into(), reason: "unsupported Unicode escape sequence".into() },
    || Error::store("unsupported Unicode escape sequence"),
];

#[tokio::test]
async fn a_refused_write_under_stop_names_the_event_and_keeps_what_came_before() {
    for refusal in REFUSALS {
        let f = fixture(Some(refusal));
        poisoned_history(&f).await;
        let worker = f.worker(quick());
        let err = worker.catch_up().await.unwrap_err();
        assert!(
            matches!(&err, Error::Projection { projection: "owners", stream, version: 1, position: 3, event_type, reason }
                if stream == "Account/p" && event_type == "Opened" && reason.contains("unsupported Unicode")),
            "{err}"
        );
        assert_eq!(f.owner("a").await, Some(Owner { owner: "ann".into(), balance: 5 }), "events before it are kept");
        assert_eq!(f.owner("b").await, None);
        let status = worker.status().await.unwrap();
        assert_eq!(status.checkpoints[0].map(|c| c.position), Some(2), "the checkpoint stays before the event");
    }
}

#[tokio::test]
async fn a_refused_write_under_skip_or_dead_letter_goes_on_without_the_event() {
    let policies =
        [ErrorPolicy::Skip, ErrorPolicy::RetryThenDeadLetter { attempts: 1, backoff: Duration::from_millis(1) }];
    for refusal in REFUSALS {
        for policy in policies {
            let f = fixture(Some(refusal));
            poisoned_history(&f).await;
            let worker = f.worker(WorkerOptions { error_policy: policy, ..quick() });
            assert_eq!(worker.catch_up().await.unwrap(), 5, "{policy:?}: all but the refused event");
            assert_eq!(f.owner("a").await, Some(Owner { owner: "ann".into(), balance: 5 }));
            assert_eq!(f.owner("p").await, Some(Owner { owner: String::new(), balance: 1 }), "{policy:?}");
            assert_eq!(f.owner("b").await, Some(Owner { owner: "bob".into(), balance: 7 }), "{policy:?}");
            let status = worker.status().await.unwrap();
            assert_eq!((status.lag, status.checkpoints[0].map(|c| c.position)), (0, Some(6)));
            let letters = f.projections.dead_letters("owners").await.unwrap();
            if policy == ErrorPolicy::Skip {
                assert!(letters.is_empty());
            } else {
                assert_eq!(letters.len(), 1, "{letters:?}");
                let l = &letters[0];
                assert_eq!(
                    (l.stream.to_string().as_str(), l.version, l.position, l.event_type.as_str()),
                    ("Account/p", 1, 3, "Opened")
                );
                assert!(l.error.contains("unsupported Unicode"), "{}", l.error);
            }
        }
    }
}

// ---- a held read horizon ----

fn stall(held: Duration) -> ReadStall {
    ReadStall {
        xid: 731,
        xid_age: Some(17),
        pid: Some(4242),
        application_name: Some("nightly-report".into()),
        since: Some(Utc::now() - chrono::Duration::from_std(held).unwrap()),
    }
}

/// Captures `warn` and `error` events as text, and gauges by name and labels.
#[derive(Default, Clone)]
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    gauges: Arc<Mutex<std::collections::HashMap<String, f64>>>,
}

impl Capture {
    fn warnings(&self) -> Vec<String> {
        self.lines.lock().clone()
    }
    fn gauge(&self, key: &str) -> Option<f64> {
        self.gauges.lock().get(key).copied()
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line<'a>(&'a mut String);
        impl tracing::field::Visit for Line<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.lines.lock().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Gauge(String, Arc<Mutex<std::collections::HashMap<String, f64>>>);

impl metrics::GaugeFn for Gauge {
    fn increment(&self, value: f64) {
        *self.1.lock().entry(self.0.clone()).or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self.1.lock().entry(self.0.clone()).or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.1.lock().insert(self.0.clone(), value);
    }
}

impl metrics::Recorder for Capture {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Gauge::from_arc(Arc::new(Gauge(name, self.gauges.clone())))
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

const HELD: &str = "cqrs_ddd_read_horizon_held_seconds{projection=owners}";

// The subscriber and the recorder are per thread: these tests run on one.
#[tokio::test]
async fn a_held_read_horizon_shows_in_the_status_the_gauge_and_a_warning() {
    let capture = Capture::default();
    let _log = tracing::subscriber::set_default(capture.clone());
    let _metrics = metrics::set_default_local_recorder(&capture);
    let f = fixture(None);
    f.app.send(Open { account: "a".into(), owner: "ann".into() }).await.unwrap();
    let short = stall(Duration::from_secs(5));
    *f.events.stall.lock() = Some(short.clone());
    let options = WorkerOptions { stall_warning: Duration::from_secs(60), ..quick() };
    let worker = f.worker(options.clone());
    assert_eq!(worker.status().await.unwrap().read_stall, Some(short));

    // Held for less than the threshold: a gauge, no warning.
    let run = worker.run(std::future::pending());
    let watched = async {
        eventually("the gauge is set", || async { capture.gauge(HELD).is_some() }).await;
    };
    tokio::select! { r = run => panic!("run returned {r:?}"), () = watched => {} }
    assert!((5.0..10.0).contains(&capture.gauge(HELD).unwrap()), "{:?}", capture.gauge(HELD));
    assert!(capture.warnings().iter().all(|w| !w.contains("read horizon")), "{:?}", capture.warnings());

    // Held past it: a warning naming what holds it.
    *f.events.stall.lock() = Some(stall(Duration::from_secs(90)));
    let worker = f.worker(options);
    let run = worker.run(std::future::pending());
    let warned = async {
        eventually("a warning", || async { capture.warnings().iter().any(|w| w.contains("read horizon")) }).await;
    };
    tokio::select! { r = run => panic!("run returned {r:?}"), () = warned => {} }
    let warnings = capture.warnings();
    let warning = warnings.iter().find(|w| w.contains("read horizon")).unwrap();
    for field in ["pid=4242", "xid_age=17", "application_name=\"nightly-report\"", "name=\"owners\""] {
        assert!(warning.contains(field), "{field} missing from {warning}");
    }
    assert!(capture.gauge(HELD).unwrap() >= 90.0);
    let status = worker.status().await.unwrap();
    assert_eq!(status.read_stall.map(|s| (s.pid, s.xid)), Some((Some(4242), 731)));
}

#[tokio::test]
async fn the_read_horizon_is_checked_only_when_a_read_comes_back_short_and_once_per_poll() {
    let f = fixture(None);
    for i in 0..12 {
        f.app.send(Open { account: format!("a{i}"), owner: "o".into() }).await.unwrap();
    }
    *f.events.stall.lock() = Some(stall(Duration::from_secs(1)));
    let poll = Duration::from_millis(20);
    let worker = f.worker(WorkerOptions { batch_size: 4, poll_interval: poll, ..quick() });
    let run = worker.run(std::future::pending());
    let checked = async {
        let stalls = || f.events.asked.lock().iter().filter(|a| matches!(a, Asked::Stall(_))).count();
        eventually("five checks", || async { stalls() >= 5 }).await;
    };
    tokio::select! { r = run => panic!("run returned {r:?}"), () = checked => {} }
    let asked = f.events.asked.lock().clone();
    let mut last_read = None;
    let mut last_check: Option<Instant> = None;
    for a in &asked {
        match *a {
            Asked::Read { limit, returned } => last_read = Some(returned < limit),
            Asked::Stall(at) => {
                assert_eq!(last_read, Some(true), "checked after a full batch: {asked:?}");
                if let Some(before) = last_check {
                    let gap = at.duration_since(before) + Duration::from_millis(2);
                    assert!(gap >= poll, "checked twice in a poll: {asked:?}");
                }
                last_check = Some(at);
            }
        }
    }
    assert_eq!(f.projections.documents("owners").await.unwrap().len(), 12);
}

#[tokio::test]
async fn a_relay_watching_the_read_horizon_reports_it() {
    struct Nowhere;
    #[async_trait]
    impl Publisher for Nowhere {
        async fn publish(&self, _: &cqrs_ddd::ports::OutboxMessage) -> Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let _log = tracing::subscriber::set_default(capture.clone());
    let _metrics = metrics::set_default_local_recorder(&capture);
    let f = fixture(None);
    *f.events.stall.lock() = Some(stall(Duration::from_secs(120)));
    let options = RelayOptions {
        name: "watching".into(),
        poll_interval: Duration::from_millis(10),
        stall_warning: Duration::from_secs(60),
        ..RelayOptions::default()
    };
    let relay = OutboxRelay::new(Arc::new(f.events.inner.clone()), Arc::new(Nowhere)).with_options(options.clone());
    assert_eq!(relay.status().await.unwrap().read_stall, None, "a relay that does not watch reports nothing");
    let relay = relay.watch_read_horizon(Arc::new(f.events.clone()));
    assert_eq!(relay.status().await.unwrap().read_stall.and_then(|s| s.pid), Some(4242));
    let run = relay.run(std::future::pending());
    let warned = async {
        eventually("a warning", || async { capture.warnings().iter().any(|w| w.contains("read horizon")) }).await;
    };
    tokio::select! { r = run => panic!("run returned {r:?}"), () = warned => {} }
    assert!(capture.gauge("cqrs_ddd_read_horizon_held_seconds{relay=watching}").unwrap() >= 120.0);
    assert_eq!(relay.health().state, WorkerState::Running);
}

// ---- a race lost to another worker is not the event's fault ----

/// Fails its first event the way a typed table does when another worker committed the
/// same batch meanwhile: that worker moved the checkpoint, this one trips a unique key.
struct Racing {
    store: MemoryProjectionStore,
    raced: AtomicBool,
}

#[projection(name = "racing")]
impl Racing {
    #[on]
    async fn opened(&self, e: &Envelope<common::Opened>, _tx: &mut ProjectionTx) -> Result<()> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let mut other = self.store.begin().await?;
            other.save_checkpoint("racing", 0, None, Cursor { commit: 2, position: 2 }).await?;
            other.commit().await?;
        }
        // The other worker's rows are there for good: every retry trips the key again.
        if e.header.position <= 2 {
            return Err(Error::store("duplicate key value violates unique constraint \"applied_pkey\""));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_another_worker_applied_meanwhile_is_a_lost_race_not_a_failed_event() {
    let events = MemoryStore::new();
    let app = App::builder().event_store(events.clone()).build().unwrap();
    for account in ["a", "b", "c"] {
        app.send(Open { account: account.into(), owner: "o".into() }).await.unwrap();
    }
    let store = MemoryProjectionStore::new();
    let projection = Racing { store: store.clone(), raced: AtomicBool::new(false) };
    let worker = ProjectionWorker::new(projection, Arc::new(events), Arc::new(store.clone()))
        .with_options(WorkerOptions { error_policy: ErrorPolicy::Stop, ..WorkerOptions::default() });
    assert_eq!(worker.catch_up().await.unwrap(), 1, "the worker reads on from where the other one left");
    assert_eq!(store.checkpoint("racing", 0).await.unwrap(), Some(Cursor { commit: 3, position: 3 }));
}
