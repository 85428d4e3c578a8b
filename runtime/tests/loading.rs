//! Loading: upcaster chains, snapshots (and stale ones), the aggregate cache, unknown events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cqrs_ddd::memory::{MemorySnapshotStore, MemoryStore};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, NewEvent, Snapshot, SnapshotStore, StoredEvent,
    StoredState, StreamAppend, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{SnapshotPolicy, UnknownEventPolicy};
use serde_json::{Value, json};

/// Version 3 of the payload; v1 was `{"cents": n}`, v2 `{"amount": n}`.
#[event(version = 3)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Credited {
    amount: u64,
    currency: String,
}

#[upcaster(event = Credited, from = 1, to = 2)]
fn credited_cents_to_amount(mut v: Value) -> Value {
    let cents = v["cents"].as_u64().unwrap_or(0);
    v["amount"] = json!(cents / 100);
    v
}

#[upcaster(event = Credited, from = 2, to = 3)]
fn credited_add_currency(mut v: Value) -> Result<Value, String> {
    let obj = v.as_object_mut().ok_or("payload is not an object")?;
    obj.insert("currency".into(), json!("EUR"));
    Ok(v)
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Credited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Clone)]
struct Wallet {
    total: u64,
    currencies: Vec<String>,
}

#[aggregate]
impl Wallet {
    #[handle(create_if_missing)]
    fn credit(&self, cmd: &Credit) -> Result<Vec<WalletEvent>, Never> {
        Ok(vec![Credited { amount: cmd.amount, currency: "EUR".into() }.into()])
    }

    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.total += e.amount;
        if !self.currencies.contains(&e.currency) {
            self.currencies.push(e.currency.clone());
        }
    }
}

#[command(aggregate = Wallet)]
struct Credit {
    #[id]
    id: String,
    amount: u64,
}

fn raw(event_type: &'static str, schema_version: u32, payload: Value) -> NewEvent {
    NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type,
        schema_version,
        payload: payload.to_string(),
        metadata: Metadata::default(),
        occurred_at: chrono::Utc::now(),
    }
}

async fn seed(store: &MemoryStore, id: &str, events: Vec<NewEvent>) {
    let stream = StreamKey::new("Wallet", id);
    let expected_version = store.stream_version(&stream).await.unwrap();
    let append = StreamAppend { stream, expected_version, events };
    store.commit(CommitBatch { appends: vec![append], ..CommitBatch::default() }).await.unwrap();
}

#[tokio::test]
async fn upcaster_chain_runs_from_the_stored_version() {
    let store = MemoryStore::new();
    seed(
        &store,
        "w",
        vec![
            raw("Credited", 1, json!({"cents": 500})),
            raw("Credited", 2, json!({"amount": 7})),
            raw("Credited", 3, json!({"amount": 1, "currency": "USD"})),
        ],
    )
    .await;
    let app = App::builder().event_store(store).build().unwrap();
    let w = app.load::<Wallet>(&"w".to_owned()).await.unwrap().state;
    // v1 went through both steps (500 cents = 5, EUR), v2 only through the second.
    assert_eq!(w, Wallet { total: 13, currencies: vec!["EUR".into(), "USD".into()] });
}

#[tokio::test]
async fn a_missing_upcaster_step_names_type_and_versions() {
    let store = MemoryStore::new();
    seed(&store, "w", vec![raw("Credited", 0, json!({}))]).await;
    let app = App::builder().event_store(store).build().unwrap();
    let err = app.load::<Wallet>(&"w".to_owned()).await.unwrap_err();
    let Error::Upcast { event_type, version, reason, .. } = &err else { panic!("{err}") };
    assert_eq!((event_type.as_str(), *version), ("Credited", 1));
    assert!(reason.contains("no upcaster from schema version 0 (stored at 0, current 3)"), "{reason}");
}

#[tokio::test]
async fn a_newer_stored_schema_is_an_error_not_a_guess() {
    let store = MemoryStore::new();
    seed(&store, "w", vec![raw("Credited", 4, json!({"amount": 1, "currency": "EUR"}))]).await;
    let app = App::builder().event_store(store).build().unwrap();
    let err = app.load::<Wallet>(&"w".to_owned()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Upcast { reason, .. } if reason.contains("newer than the current version 3")),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_events_fail_by_default_and_can_be_skipped() {
    let store = MemoryStore::new();
    seed(&store, "w", vec![raw("Credited", 3, json!({"amount": 2, "currency": "EUR"})), raw("Retired", 1, json!({}))])
        .await;
    let strict = App::builder().event_store(store.clone()).build().unwrap();
    assert!(matches!(strict.load::<Wallet>(&"w".to_owned()).await, Err(Error::UnknownEventType { version: 2, .. })));
    let lenient = App::builder().event_store(store).unknown_events(UnknownEventPolicy::Skip).build().unwrap();
    let loaded = lenient.load::<Wallet>(&"w".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (2, 2));
}

#[tokio::test]
async fn snapshot_plus_tail_equals_full_replay() {
    let store = MemoryStore::new();
    let snapshots = MemorySnapshotStore::new();
    let with = App::builder()
        .event_store(store.clone())
        .snapshot_store(snapshots.clone())
        .snapshot::<Wallet>(SnapshotPolicy::every(10))
        .build()
        .unwrap();
    for i in 1..=25 {
        with.send(Credit { id: "w".into(), amount: i }).await.unwrap();
    }
    let snap = snapshots.load(&StreamKey::new("Wallet", "w")).await.unwrap().expect("a snapshot");
    assert_eq!(snap.version, 20);
    let from_snapshot = with.load::<Wallet>(&"w".to_owned()).await.unwrap();
    assert_eq!(from_snapshot.snapshot_version, 20);
    let without = App::builder().event_store(store).build().unwrap();
    let replayed = without.load::<Wallet>(&"w".to_owned()).await.unwrap();
    assert_eq!(replayed.snapshot_version, 0);
    assert_eq!((from_snapshot.version, &from_snapshot.state), (replayed.version, &replayed.state));
    assert_eq!(replayed.state.total, (1..=25).sum::<u64>());
}

#[tokio::test]
async fn a_snapshot_of_an_old_shape_falls_back_to_replay() {
    let store = MemoryStore::new();
    seed(&store, "w", vec![raw("Credited", 3, json!({"amount": 4, "currency": "EUR"}))]).await;
    let snapshots = MemorySnapshotStore::new();
    let old_shape = Snapshot {
        stream: StreamKey::new("Wallet", "w"),
        version: 1,
        state: json!({"balance_in_cents": 400}).to_string(),
        taken_at: chrono::Utc::now(),
    };
    snapshots.save(old_shape).await.unwrap();
    let app = App::builder()
        .event_store(store)
        .snapshot_store(snapshots)
        .snapshot::<Wallet>(SnapshotPolicy::every(100))
        .build()
        .unwrap();
    let loaded = app.load::<Wallet>(&"w".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.snapshot_version, loaded.state.total), (1, 0, 4));
}

#[tokio::test]
async fn snapshot_policies_need_a_snapshot_store() {
    let err = App::builder().snapshot::<Wallet>(SnapshotPolicy::every(5)).build().err().unwrap();
    assert!(err.to_string().contains("no snapshot store"), "{err}");
    let Error::Build(b) = &err else { panic!("expected a build error, got {err}") };
    assert!(
        matches!(b.problems.as_slice(), [cqrs_ddd::BuildProblem::SnapshotPolicyWithoutStore { aggregates }] if aggregates == &[Wallet::TYPE]),
        "{err}"
    );
}

/// Counts stream reads, to see the cache at work.
#[derive(Clone, Default)]
struct CountingReads {
    inner: MemoryStore,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl EventStore for CountingReads {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.inner.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after: u64) -> Result<EventStream<'static>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(stream, after).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.inner.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.inner.load_state(stream).await
    }
}

#[tokio::test]
async fn a_cached_aggregate_is_not_read_again() {
    let store = CountingReads::default();
    let app = App::builder().event_store(store.clone()).aggregate_cache(100).build().unwrap();
    for _ in 0..50 {
        app.send(Credit { id: "hot".into(), amount: 1 }).await.unwrap();
    }
    assert_eq!(store.reads.load(Ordering::SeqCst), 1, "only the first command reads the stream");
    assert_eq!(app.aggregate_cache().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stale_cache_entry_costs_a_reload_not_an_update() {
    let store = MemoryStore::new();
    let cached = App::builder().event_store(store.clone()).aggregate_cache(100).build().unwrap();
    let other_process = App::builder().event_store(store.clone()).build().unwrap();
    cached.send(Credit { id: "w".into(), amount: 1 }).await.unwrap();
    other_process.send(Credit { id: "w".into(), amount: 10 }).await.unwrap();
    // The cache holds version 1; the stream is at 2: the append conflicts, the command
    // reloads and succeeds, nothing is lost.
    cached.send(Credit { id: "w".into(), amount: 100 }).await.unwrap();
    let loaded = other_process.load::<Wallet>(&"w".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (3, 111));
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_capacity() {
    let app = App::builder().aggregate_cache(3).build().unwrap();
    for i in 0..10 {
        app.send(Credit { id: format!("w{i}"), amount: 1 }).await.unwrap();
        app.send(Credit { id: "hot".into(), amount: 1 }).await.unwrap();
    }
    let cache = app.aggregate_cache().unwrap();
    assert_eq!(cache.len(), 3);
    let hot = app.load::<Wallet>(&"hot".to_owned()).await.unwrap();
    assert_eq!(hot.state.total, 10);
}
