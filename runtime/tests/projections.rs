//! Projections and the outbox relay on the in-memory adapters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use std::time::Duration;

use cqrs_ddd::memory::{MemoryProjectionStore, MemoryStore};
use cqrs_ddd::outbox::{InProcessPublisher, OutboxRelay, RelayOptions};
use cqrs_ddd::ports::{EventStore, Outbox, OutboxMessage, ProjectionStore, Publisher, async_trait};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, ProjectionWorker, StartFrom, WorkerOptions};
use parking_lot::Mutex;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened {
    owner: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noted {
    text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Opened, Deposited, Noted), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, c: &Open) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Opened { owner: c.owner.clone() }.into()])
    }
    #[handle]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Deposited { amount: c.amount }.into()])
    }
    #[handle]
    fn note(&self, c: &Note) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Noted { text: c.text.clone() }.into()])
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
    #[apply]
    fn noted(&mut self, _: &Noted) {}
}

#[command(aggregate = Account)]
struct Open {
    #[id]
    id: String,
    owner: String,
}

#[command(aggregate = Account)]
struct Deposit {
    #[id]
    id: String,
    amount: u64,
}

#[command(aggregate = Account)]
struct Note {
    #[id]
    id: String,
    text: String,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Balance {
    owner: String,
    balance: u64,
    deposits: u32,
}

/// Balances per account; fails on deposits of `fail_on` while `failures_left` > 0.
#[derive(Default)]
struct Balances {
    fail_on: Option<u64>,
    failures_left: AtomicU32,
    calls: AtomicUsize,
}

#[projection(name = "balances", prefetch = "balances")]
impl Balances {
    #[on]
    async fn opened(&self, e: &Envelope<Opened>, tx: &mut ProjectionTx) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let owner = e.owner.clone();
        tx.docs("balances").update(&e.header.stream_id, |b: &mut Balance| b.owner = owner).await?;
        Ok(())
    }

    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_on == Some(e.amount) && self.failures_left.load(Ordering::SeqCst) > 0 {
            self.failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::handler(format!("cannot project a deposit of {}", e.amount)));
        }
        let amount = e.amount;
        tx.docs("balances")
            .update(&e.header.stream_id, |b: &mut Balance| {
                b.balance += amount;
                b.deposits += 1;
            })
            .await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("balances").clear().await
    }
}

struct Fixture {
    app: Mediator,
    events: Arc<dyn EventStore>,
    store: MemoryProjectionStore,
}

fn fixture() -> Fixture {
    let events = MemoryStore::new();
    Fixture {
        app: App::builder().event_store(events.clone()).provide(Seen::default()).build().unwrap(),
        events: Arc::new(events),
        store: MemoryProjectionStore::new(),
    }
}

impl Fixture {
    fn worker(&self, projection: Balances) -> ProjectionWorker<Balances> {
        ProjectionWorker::new(projection, self.events.clone(), Arc::new(self.store.clone()))
    }

    async fn balance(&self, id: &str) -> Option<Balance> {
        let doc = self.store.document("balances", id).await.unwrap()?;
        Some(serde_json::from_str(&doc.json).unwrap())
    }

    async fn history(&self) {
        self.app.send(Open { id: "a".into(), owner: "ann".into() }).await.unwrap();
        self.app.send(Deposit { id: "a".into(), amount: 10 }).await.unwrap();
        self.app.send(Note { id: "a".into(), text: "ignored by the projection".into() }).await.unwrap();
        self.app.send(Deposit { id: "a".into(), amount: 5 }).await.unwrap();
        self.app.send(Open { id: "b".into(), owner: "bob".into() }).await.unwrap();
    }
}

#[tokio::test]
async fn a_projection_builds_its_read_model_and_passes_over_other_events() {
    let f = fixture();
    f.history().await;
    let worker = f.worker(Balances::default());
    assert_eq!(worker.catch_up().await.unwrap(), 4, "the Noted event is not applied");
    assert_eq!(f.balance("a").await, Some(Balance { owner: "ann".into(), balance: 15, deposits: 2 }));
    assert_eq!(f.balance("b").await.unwrap().owner, "bob");
    let status = worker.status().await.unwrap();
    assert_eq!((status.lag, status.checkpoints[0].unwrap().position), (0, 5));
    // Nothing new: nothing applied again.
    assert_eq!(worker.catch_up().await.unwrap(), 0);
    f.app.send(Deposit { id: "b".into(), amount: 7 }).await.unwrap();
    assert_eq!(worker.lag().await.unwrap(), 1);
    assert_eq!(worker.catch_up().await.unwrap(), 1);
    assert_eq!(f.balance("b").await.unwrap().balance, 7);
}

#[tokio::test]
async fn without_a_checkpoint_it_starts_at_the_beginning_or_at_the_head() {
    let f = fixture();
    f.history().await;
    let from_head = f
        .worker(Balances::default())
        .with_options(WorkerOptions { start_from: StartFrom::Head, ..WorkerOptions::default() });
    assert_eq!(from_head.catch_up().await.unwrap(), 0);
    assert_eq!(f.balance("a").await, None, "history before the first run is not projected");
    f.app.send(Deposit { id: "a".into(), amount: 1 }).await.unwrap();
    assert_eq!(from_head.catch_up().await.unwrap(), 1);
    assert_eq!(f.balance("a").await.unwrap().balance, 1);
}

#[tokio::test]
async fn rebuild_reproduces_the_read_model_from_scratch() {
    let f = fixture();
    f.history().await;
    let worker = f.worker(Balances::default());
    worker.catch_up().await.unwrap();
    let before = f.balance("a").await;
    // Corrupt the read model, then rebuild it.
    let mut tx = f.store.begin().await.unwrap();
    tx.put_doc(None, "balances", "a", r#"{"owner":"x","balance":999,"deposits":0}"#.into()).await.unwrap();
    tx.put_doc(None, "balances", "ghost", "{}".into()).await.unwrap();
    tx.commit().await.unwrap();
    let mut progress = Vec::new();
    assert_eq!(worker.rebuild(|n| progress.push(n)).await.unwrap(), 4);
    assert_eq!(progress.last(), Some(&4));
    assert_eq!(f.balance("a").await, before);
    assert_eq!(f.store.document("balances", "ghost").await.unwrap(), None);
}

#[tokio::test]
async fn stop_policy_keeps_the_checkpoint_before_the_failing_event() {
    let f = fixture();
    f.history().await;
    let worker = f.worker(Balances { fail_on: Some(5), failures_left: AtomicU32::new(1), ..Balances::default() });
    let err = worker.catch_up().await.unwrap_err();
    assert!(
        matches!(&err, Error::Projection { projection: "balances", version: 4, event_type, .. } if event_type == "Deposited"),
        "{err}"
    );
    assert_eq!(worker.status().await.unwrap().checkpoints[0], None, "the batch rolled back whole");
    assert_eq!(f.balance("a").await, None);
    // The failure was transient: the next run applies everything exactly once.
    assert_eq!(worker.catch_up().await.unwrap(), 4);
    assert_eq!(f.balance("a").await.unwrap(), Balance { owner: "ann".into(), balance: 15, deposits: 2 });
}

#[tokio::test]
async fn retry_policy_rides_over_a_transient_failure() {
    let f = fixture();
    f.history().await;
    let worker = f
        .worker(Balances { fail_on: Some(5), failures_left: AtomicU32::new(2), ..Balances::default() })
        .with_options(WorkerOptions {
            error_policy: ErrorPolicy::Retry { attempts: 3, backoff: Duration::from_millis(1) },
            ..WorkerOptions::default()
        });
    assert_eq!(worker.catch_up().await.unwrap(), 4);
    assert_eq!(f.balance("a").await.unwrap().balance, 15);
}

#[tokio::test]
async fn dead_letter_policy_records_the_event_and_goes_on() {
    let f = fixture();
    f.history().await;
    // Fails three times (the first try and both retries): the event is dead-lettered.
    let worker = f
        .worker(Balances { fail_on: Some(5), failures_left: AtomicU32::new(3), ..Balances::default() })
        .with_options(WorkerOptions {
            error_policy: ErrorPolicy::RetryThenDeadLetter { attempts: 2, backoff: Duration::from_millis(1) },
            ..WorkerOptions::default()
        });
    assert_eq!(worker.catch_up().await.unwrap(), 3);
    assert_eq!(f.balance("a").await.unwrap().balance, 10, "the failing deposit is skipped");
    let letters = f.store.dead_letters("balances").await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].version, letters[0].event_type.as_str()), (4, "Deposited"));
    assert!(letters[0].error.contains("cannot project a deposit of 5"));
    assert_eq!(worker.status().await.unwrap().dead_letters, 1);
    // The cause is gone: an operator retries the letter.
    worker.retry_dead_letter(letters[0].event_id).await.unwrap();
    assert_eq!(f.balance("a").await.unwrap().balance, 15);
    assert!(f.store.dead_letters("balances").await.unwrap().is_empty());
    assert!(worker.retry_dead_letter(letters[0].event_id).await.is_err(), "a letter is retried once");
}

#[tokio::test]
async fn skip_policy_goes_on_without_the_event() {
    let f = fixture();
    f.history().await;
    let worker = f
        .worker(Balances { fail_on: Some(10), failures_left: AtomicU32::new(100), ..Balances::default() })
        .with_options(WorkerOptions { error_policy: ErrorPolicy::Skip, ..WorkerOptions::default() });
    assert_eq!(worker.catch_up().await.unwrap(), 3);
    assert_eq!(f.balance("a").await.unwrap().balance, 5);
    assert!(f.store.dead_letters("balances").await.unwrap().is_empty());
}

#[tokio::test]
async fn partitions_split_the_work_and_each_event_is_applied_once() {
    let f = fixture();
    for i in 0..40 {
        let id = format!("acc-{i}");
        f.app.send(Open { id: id.clone(), owner: "o".into() }).await.unwrap();
        f.app.send(Deposit { id, amount: 1 }).await.unwrap();
    }
    let projection = Balances::default();
    let worker =
        f.worker(projection).with_options(WorkerOptions { partitions: 4, batch_size: 7, ..WorkerOptions::default() });
    assert_eq!(worker.catch_up().await.unwrap(), 80);
    let status = worker.status().await.unwrap();
    assert_eq!(status.checkpoints.len(), 4);
    assert_eq!(status.lag, 0);
    let docs = f.store.documents("balances").await.unwrap();
    assert_eq!(docs.len(), 40);
    for d in docs {
        let b: Balance = serde_json::from_str(&d.json).unwrap();
        assert_eq!(b, Balance { owner: "o".into(), balance: 1, deposits: 1 }, "{}: each event once", d.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_workers_apply_every_event_once() {
    let f = fixture();
    for i in 0..30 {
        f.app.send(Open { id: format!("r{i}"), owner: "o".into() }).await.unwrap();
    }
    // Both workers share the projection store; each uses its own projection instance.
    let wa = f.worker(Balances::default()).with_options(WorkerOptions { batch_size: 3, ..WorkerOptions::default() });
    let wb = f.worker(Balances::default()).with_options(WorkerOptions { batch_size: 3, ..WorkerOptions::default() });
    let (ra, rb) = tokio::join!(wa.catch_up(), wb.catch_up());
    assert_eq!(ra.unwrap() + rb.unwrap(), 30, "each event applied by exactly one of them");
    let docs = f.store.documents("balances").await.unwrap();
    assert_eq!(docs.len(), 30);
    assert!(docs.iter().all(|d| d.version == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_tails_new_events_and_takes_over_an_expired_lease() {
    let f = fixture();
    let opts = |owner: &str| {
        WorkerOptions {
            owner: owner.into(),
            lease_ttl: Duration::from_millis(300),
            poll_interval: Duration::from_millis(20),
            ..WorkerOptions::default()
        }
        .wake_on(&f.app)
    };
    // A worker that holds the lease and then dies without releasing it.
    assert!(f.store.acquire_lease("balances", 0, "dead-worker", Duration::from_millis(300)).await.unwrap());
    let worker = f.worker(Balances::default()).with_options(opts("live"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    f.app.send(Open { id: "t".into(), owner: "tom".into() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.balance("t").await, None, "the dead worker's lease still holds");
    let started = std::time::Instant::now();
    while f.balance("t").await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(3), "the live worker never took over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.app.send(Deposit { id: "t".into(), amount: 3 }).await.unwrap();
    let started = std::time::Instant::now();
    while f.balance("t").await.unwrap().balance != 3 {
        assert!(started.elapsed() < Duration::from_secs(3), "the worker does not tail new events");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert!(
        f.store.acquire_lease("balances", 0, "next", Duration::from_secs(1)).await.unwrap(),
        "leases are released on stop"
    );
}

/// A publisher that fails on given topics a number of times.
#[derive(Default)]
struct Flaky {
    failures: Mutex<std::collections::HashMap<String, u32>>,
    published: Mutex<Vec<String>>,
}

#[async_trait]
impl Publisher for Flaky {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        let mut failures = self.failures.lock();
        if let Some(n) = failures.get_mut(&message.topic).filter(|n| **n > 0) {
            *n -= 1;
            return Err(Error::handler(format!("broker refused {}", message.topic)));
        }
        self.published.lock().push(message.topic.clone());
        Ok(())
    }
}

#[command]
struct Announce {
    topics: Vec<String>,
}

#[command_handler]
async fn announce(cmd: Announce, ctx: &mut CommandContext) -> Result<()> {
    for t in &cmd.topics {
        ctx.outbox(t.clone(), &serde_json::json!({ "topic": t }))?;
    }
    Ok(())
}

#[tokio::test]
async fn the_relay_retries_a_failed_message_and_declares_it_dead_past_the_maximum() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).provide(Seen::default()).build().unwrap();
    app.send(Announce { topics: vec!["one".into(), "two".into(), "three".into()] }).await.unwrap();
    let publisher = Arc::new(Flaky::default());
    publisher.failures.lock().insert("two".into(), 1);
    let relay = OutboxRelay::new(Arc::new(store.clone()), publisher.clone()).with_options(RelayOptions {
        base_backoff: Duration::from_millis(30),
        max_attempts: 3,
        ..RelayOptions::default()
    });
    let first = relay.run_once().await.unwrap();
    assert_eq!((first.published, first.retried), (2, 1));
    assert_eq!(*publisher.published.lock(), ["one", "three"]);
    // Not due yet: the backoff holds it back.
    assert_eq!(relay.run_once().await.unwrap().claimed, 0);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(*publisher.published.lock(), ["one", "three", "two"]);

    app.send(Announce { topics: vec!["doomed".into()] }).await.unwrap();
    publisher.failures.lock().insert("doomed".into(), 100);
    let relay = OutboxRelay::new(Arc::new(store.clone()), publisher.clone()).with_options(RelayOptions {
        base_backoff: Duration::ZERO,
        max_attempts: 3,
        ..RelayOptions::default()
    });
    let mut dead = 0;
    for _ in 0..3 {
        dead += relay.run_once().await.unwrap().dead;
    }
    assert_eq!(dead, 1);
    let listed = store.dead().await.unwrap();
    assert_eq!((listed.len(), listed[0].attempts), (1, 3));
    assert_eq!(listed[0].last_error.as_deref(), Some("broker refused doomed"));
    // An operator puts it back once the broker is fixed.
    publisher.failures.lock().clear();
    assert_eq!(store.retry_dead(&[listed[0].message.id]).await.unwrap(), 1);
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert!(store.dead().await.unwrap().is_empty());
}

#[tokio::test]
async fn two_relays_never_hold_the_same_message() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).provide(Seen::default()).build().unwrap();
    let topics: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    app.send(Announce { topics }).await.unwrap();
    let publisher = Arc::new(Flaky::default());
    let relay = |name: &str| {
        OutboxRelay::new(Arc::new(store.clone()), publisher.clone()).with_options(RelayOptions {
            name: name.into(),
            batch_size: 13,
            ..RelayOptions::default()
        })
    };
    let (a, b) = (relay("a"), relay("b"));
    loop {
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        if ra.unwrap().claimed + rb.unwrap().claimed == 0 {
            break;
        }
    }
    let mut published = publisher.published.lock().clone();
    assert_eq!(published.len(), 200);
    published.sort();
    published.dedup();
    assert_eq!(published.len(), 200, "a message was published twice");
}

/// Async handlers record what they saw.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, u64)>>);

#[event_handler(async)]
async fn remember_deposit(e: &Envelope<Deposited>, seen: Dep<Seen>) -> Result<()> {
    seen.0.lock().push((e.header.stream_id.clone(), e.amount));
    Ok(())
}

#[tokio::test]
async fn async_event_handlers_are_fed_by_the_outbox() {
    let store = MemoryStore::new();
    let seen = Arc::new(Seen::default());
    let app = App::builder().event_store(store.clone()).provide_arc(seen.clone()).build().unwrap();
    app.send(Open { id: "z".into(), owner: "zoe".into() }).await.unwrap();
    app.send(Deposit { id: "z".into(), amount: 42 }).await.unwrap();
    assert!(seen.0.lock().is_empty(), "async handlers do not run inside the command");
    assert_eq!(store.outbox_records().len(), 1, "only events with async handlers go to the outbox");
    let relay = OutboxRelay::new(Arc::new(store.clone()), Arc::new(InProcessPublisher::new(app.clone())));
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(*seen.0.lock(), [("z".to_owned(), 42)]);
}
