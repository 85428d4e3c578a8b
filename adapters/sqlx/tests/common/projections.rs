//! Projections, the document store and the outbox relay on a real database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::outbox::{InProcessPublisher, OutboxRelay, RelayOptions};
use cqrs_ddd::ports::{Cursor, EventStore, Outbox, OutboxMessage, ProjectionStore, Publisher, async_trait};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, ProjectionWorker, StartFrom, WorkerOptions};
use parking_lot::Mutex;

use super::domain::*;
use super::{TestDb, app, db_now_expr, db_uuid_expr, visible};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    pub owner: String,
    pub balance: u64,
}

/// Balances per account in the document store.
#[derive(Default)]
pub struct Balances;

#[projection(name = "balances", prefetch = "balances")]
impl Balances {
    #[on]
    async fn opened(&self, e: &Envelope<Opened>, tx: &mut ProjectionTx) -> Result<()> {
        let owner = e.owner.clone();
        tx.docs("balances").update(&e.header.stream_id, |b: &mut Balance| b.owner = owner).await?;
        Ok(())
    }

    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let amount = e.amount;
        tx.docs("balances").update(&e.header.stream_id, |b: &mut Balance| b.balance += amount).await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("balances").clear().await
    }
}

fn worker<S: EventStore + ProjectionStore + Clone>(store: &S) -> ProjectionWorker<Balances> {
    ProjectionWorker::new(Balances, Arc::new(store.clone()), Arc::new(store.clone()))
}

pub async fn balance(store: &impl ProjectionStore, id: &str) -> Option<Balance> {
    let doc = store.document("balances", id).await.unwrap()?;
    Some(serde_json::from_str(&doc.json).unwrap())
}

async fn history(app: &Mediator, accounts: usize) {
    for i in 0..accounts {
        let id = format!("acc-{i}");
        app.send(Open { account: id.clone(), owner: format!("owner-{i}") }).await.unwrap();
        app.send(Deposit { account: id.clone(), amount: 10 }).await.unwrap();
        app.send(Deposit { account: id, amount: i as u64 }).await.unwrap();
    }
}

pub async fn a_projection_keeps_its_read_model_with_its_checkpoint(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    history(&app, 5).await;
    app.send(Rename { id: "p".into(), name: "not projected".into() }).await.unwrap();
    visible(&store, 16).await;
    let w = worker(&store).with_options(WorkerOptions { batch_size: 4, ..WorkerOptions::default() });
    assert_eq!(w.catch_up().await.unwrap(), 15);
    assert_eq!(balance(&store, "acc-3").await, Some(Balance { owner: "owner-3".into(), balance: 13 }));
    let status = w.status().await.unwrap();
    assert_eq!(status.lag, 0);
    assert_eq!(status.checkpoints[0], Some(status.head));
    assert_eq!(w.catch_up().await.unwrap(), 0, "nothing is applied twice");
    let doc = store.document("balances", "acc-3").await.unwrap().unwrap();
    assert_eq!(doc.version, 1, "acc-3's three events fall in one batch of four: one write");
}

pub async fn rebuild_reproduces_the_read_model(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    history(&app, 4).await;
    visible(&store, 12).await;
    let w = worker(&store);
    w.catch_up().await.unwrap();
    let before = store.documents("balances").await.unwrap();
    db.exec("UPDATE {t}documents SET document = '{\"owner\":\"x\",\"balance\":0}'").await;
    assert_eq!(w.rebuild(|_| {}).await.unwrap(), 12);
    let after = store.documents("balances").await.unwrap();
    assert_eq!(after.iter().map(|d| &d.json).collect::<Vec<_>>(), before.iter().map(|d| &d.json).collect::<Vec<_>>());
}

pub async fn a_new_projection_starts_at_the_beginning_or_at_the_head(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    history(&app, 2).await;
    visible(&store, 6).await;
    let from_head =
        worker(&store).with_options(WorkerOptions { start_from: StartFrom::Head, ..WorkerOptions::default() });
    assert_eq!(from_head.catch_up().await.unwrap(), 0);
    assert_eq!(balance(&store, "acc-1").await, None);
    app.send(Deposit { account: "acc-1".into(), amount: 5 }).await.unwrap();
    visible(&store, 7).await;
    assert_eq!(from_head.catch_up().await.unwrap(), 1);
    assert_eq!(balance(&store, "acc-1").await.unwrap().balance, 5);
}

pub async fn racing_workers_apply_each_event_once(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    history(&app, 20).await;
    visible(&store, 60).await;
    let a = worker(&db.store().await).with_options(WorkerOptions { batch_size: 5, ..WorkerOptions::default() });
    let b = worker(&db.store().await).with_options(WorkerOptions { batch_size: 5, ..WorkerOptions::default() });
    let (ra, rb) = tokio::join!(a.catch_up(), b.catch_up());
    assert_eq!(ra.unwrap() + rb.unwrap(), 60, "each event applied by exactly one worker");
    let docs = store.documents("balances").await.unwrap();
    assert_eq!(docs.len(), 20);
    for d in docs {
        let i: u64 = d.id.trim_start_matches("acc-").parse().unwrap();
        let b: Balance = serde_json::from_str(&d.json).unwrap();
        assert_eq!(b, Balance { owner: format!("owner-{i}"), balance: 10 + i }, "{}: each event applied once", d.id);
    }
}

pub async fn leases_let_one_worker_run_and_another_take_over(db: &impl TestDb) {
    let store = db.store().await;
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease("balances", 0, "a", ttl).await.unwrap());
    assert!(!store.acquire_lease("balances", 0, "b", ttl).await.unwrap(), "b must wait while a's lease lives");
    assert!(store.acquire_lease("balances", 0, "a", ttl).await.unwrap(), "a renews its own lease");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(store.acquire_lease("balances", 0, "b", ttl).await.unwrap(), "b takes over an expired lease");
    assert!(!store.acquire_lease("balances", 0, "a", ttl).await.unwrap());
    store.release_lease("balances", 0, "b").await.unwrap();
    assert!(store.acquire_lease("balances", 0, "a", ttl).await.unwrap(), "a released lease is free at once");
}

/// An event already in the log whose payload holds a `\u0000` escape (`events.payload`
/// keeps JSON as written): the document the projection writes from it is refused by
/// PostgreSQL's `jsonb`, while SQLite may store it. A refused write goes through the
/// error policy like a failing `apply`, naming the event: Stop keeps what came before it
/// and stops there, Skip and RetryThenDeadLetter go on without it.
pub async fn a_write_the_read_model_refuses_goes_through_the_error_policy<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(Open { account: "a".into(), owner: "ann".into() }).await.unwrap();
    app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    db.exec(&format!(
        "INSERT INTO {{t}}events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, \
         occurred_at) VALUES ('Account', 'p', 1, {uuid}, 'Opened', 1, '{{\"owner\":\"nul\\u0000here\"}}', {now})",
        uuid = db_uuid_expr(db),
        now = db_now_expr(db),
    ))
    .await;
    app.send(Deposit { account: "p".into(), amount: 1 }).await.unwrap();
    app.send(Open { account: "b".into(), owner: "bob".into() }).await.unwrap();
    app.send(Deposit { account: "b".into(), amount: 7 }).await.unwrap();
    visible(&store, 6).await;
    let log = store.read_all(Cursor::START, 100).await.unwrap();
    assert_eq!(log.len(), 6);
    let at = log.iter().position(|e| e.stream.stream_id == "p" && e.version == 1).unwrap();
    let poison = &log[at];
    let before = log[at - 1].cursor();
    // Only PostgreSQL's `jsonb` refuses the escape.
    let refuses = !D::SQLITE && !D::MYSQL;

    let fresh = || async {
        db.exec("DELETE FROM {t}checkpoints; DELETE FROM {t}documents; DELETE FROM {t}dead_letters").await;
    };
    let worker = |policy| {
        worker(&store).with_options(WorkerOptions {
            error_policy: policy,
            outage_backoff: cqrs_ddd::Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
            ..WorkerOptions::default()
        })
    };
    let names_it = |stream: &str, version, position, event_type: &str| {
        (stream, version, position, event_type) == ("Account/p", 1, poison.position, "Opened")
    };

    // Stop: the events before it are kept, the checkpoint stays before it.
    let stop = worker(ErrorPolicy::Stop);
    match stop.catch_up().await {
        Err(Error::Projection { stream, version, position, event_type, reason, .. }) => {
            assert!(names_it(&stream, version, position, &event_type), "{stream} v{version} @{position}: {reason}");
            assert_eq!(balance(&store, "a").await, Some(Balance { owner: "ann".into(), balance: 5 }));
            assert_eq!(balance(&store, "b").await, None);
            assert_eq!(stop.status().await.unwrap().checkpoints[0], Some(before));
        }
        Err(other) => panic!("not a projection error naming the event: {other}"),
        Ok(applied) => assert!(!refuses && applied == 6, "the refused write went unnoticed ({applied} applied)"),
    }

    // Skip and RetryThenDeadLetter: later events are applied.
    for policy in [ErrorPolicy::Skip, ErrorPolicy::RetryThenDeadLetter { attempts: 1, backoff: Duration::ZERO }] {
        fresh().await;
        let w = worker(policy);
        let applied = w.catch_up().await.unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        if refuses {
            assert_eq!(applied, 5, "{policy:?}: all but the refused event");
        } else {
            assert!(applied >= 5, "{policy:?}: {applied} applied");
        }
        assert_eq!(balance(&store, "a").await, Some(Balance { owner: "ann".into(), balance: 5 }), "{policy:?}");
        assert_eq!(balance(&store, "b").await, Some(Balance { owner: "bob".into(), balance: 7 }), "{policy:?}");
        assert_eq!(balance(&store, "p").await.map(|b| b.balance), Some(1), "{policy:?}");
        let status = w.status().await.unwrap();
        assert_eq!((status.lag, status.checkpoints[0]), (0, Some(log[5].cursor())), "{policy:?}");
        let letters = store.dead_letters("balances").await.unwrap();
        match policy {
            ErrorPolicy::Skip => assert!(letters.is_empty()),
            _ if refuses || !letters.is_empty() => {
                assert_eq!(letters.len(), 1, "{letters:?}");
                let l = &letters[0];
                assert!(names_it(&l.stream.to_string(), l.version, l.position, &l.event_type), "{l:?}");
                assert_eq!(l.event_id, poison.event_id);
            }
            _ => {}
        }
    }
}

/// Fails on given topics a number of times, records what it published.
#[derive(Default)]
pub struct Flaky {
    pub failures: Mutex<std::collections::HashMap<String, u32>>,
    pub published: Mutex<Vec<String>>,
}

#[async_trait]
impl Publisher for Flaky {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        if let Some(n) = self.failures.lock().get_mut(&message.topic).filter(|n| **n > 0) {
            *n -= 1;
            return Err(Error::handler(format!("broker refused {}", message.topic)));
        }
        self.published.lock().push(message.topic.clone());
        Ok(())
    }
}

/// A relay's publisher that waits, at its first message, until the other relay's gate
/// has a message too: both relays then hold a claimed batch at once, whatever the
/// scheduling (SQLite lets one busy writer take every claim otherwise).
struct Gate {
    inner: Arc<Flaky>,
    both: Arc<tokio::sync::Barrier>,
    first: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Publisher for Gate {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.both.wait().await;
        }
        self.inner.publish(message).await
    }
}

#[command]
pub struct Announce {
    pub topics: Vec<String>,
}

#[command_handler]
async fn announce(cmd: Announce, ctx: &mut CommandContext) -> Result<()> {
    for t in &cmd.topics {
        ctx.outbox(t.clone(), &serde_json::json!({ "topic": t }))?;
    }
    Ok(())
}

pub async fn the_relay_retries_then_buries_a_failing_message(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(Announce { topics: vec!["one".into(), "two".into(), "three".into()] }).await.unwrap();
    let publisher = Arc::new(Flaky::default());
    publisher.failures.lock().insert("two".into(), 1);
    let options = RelayOptions { base_backoff: Duration::from_millis(300), max_attempts: 3, ..RelayOptions::default() };
    let relay = OutboxRelay::new(Arc::new(store.clone()), publisher.clone()).with_options(options.clone());
    let first = relay.run_once().await.unwrap();
    assert_eq!((first.published, first.retried), (2, 1));
    assert_eq!(relay.run_once().await.unwrap().claimed, 0, "the failed message waits for its backoff");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(*publisher.published.lock(), ["one", "three", "two"]);

    app.send(Announce { topics: vec!["doomed".into()] }).await.unwrap();
    publisher.failures.lock().insert("doomed".into(), 100);
    let relay = OutboxRelay::new(Arc::new(store.clone()), publisher.clone())
        .with_options(RelayOptions { base_backoff: Duration::ZERO, ..options });
    let mut dead = 0;
    for _ in 0..3 {
        dead += relay.run_once().await.unwrap().dead;
    }
    assert_eq!(dead, 1);
    let listed = store.dead().await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].attempts, listed[0].last_error.as_deref()),
        (1, 3, Some("broker refused doomed"))
    );
    publisher.failures.lock().clear();
    assert_eq!(store.retry_dead(&[listed[0].message.id]).await.unwrap(), 1);
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert!(store.dead().await.unwrap().is_empty());
}

pub async fn two_relays_publish_each_message_once(db: &impl TestDb, messages: usize) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(500) {
        app.send(Announce { topics: chunk.iter().map(|i| format!("m{i}")).collect() }).await.unwrap();
    }
    let publisher = Arc::new(Flaky::default());
    let both = Arc::new(tokio::sync::Barrier::new(2));
    let relay = |name: &str, store| {
        let gate = Gate { inner: publisher.clone(), both: both.clone(), first: true.into() };
        OutboxRelay::new(Arc::new(store), Arc::new(gate)).with_options(RelayOptions {
            name: name.into(),
            batch_size: 100,
            ..RelayOptions::default()
        })
    };
    let a = relay("a", db.store().await);
    let b = relay("b", db.store().await);
    let drain = |r: OutboxRelay| async move {
        let mut n = 0;
        loop {
            let report = r.run_once().await.unwrap();
            if report.claimed == 0 {
                return n;
            }
            n += report.published;
        }
    };
    let (na, nb) = tokio::join!(drain(a), drain(b));
    assert!(na > 0 && nb > 0, "both relays took part ({na} and {nb})");
    let published = publisher.published.lock().clone();
    assert_eq!(published.len(), messages);
    assert_eq!(published.iter().collect::<HashSet<_>>().len(), messages, "a message was published twice");
    assert!(store.pending(10).await.unwrap().is_empty());
}

#[derive(Default)]
pub struct Seen(pub Mutex<Vec<(String, u64)>>);

#[event_handler(async)]
async fn remember_deposit(e: &Envelope<Deposited>, seen: Dep<Seen>) -> Result<()> {
    seen.0.lock().push((e.header.stream_id.clone(), e.amount));
    Ok(())
}

pub async fn async_handlers_are_fed_by_the_relay(db: &impl TestDb) {
    let store = db.store().await;
    let seen = Arc::new(Seen::default());
    let app = app(store.clone()).provide_arc(seen.clone()).build().unwrap();
    app.send(Open { account: "z".into(), owner: "zoe".into() }).await.unwrap();
    app.send(Deposit { account: "z".into(), amount: 42 }).await.unwrap();
    assert!(seen.0.lock().is_empty());
    let relay = OutboxRelay::new(Arc::new(store.clone()), Arc::new(InProcessPublisher::new(app.clone())));
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(*seen.0.lock(), [("z".to_owned(), 42)]);
}
