//! Events delivered through the outbox (`Mediator::deliver`, used by the in-process relay
//! and by broker consumers): context restored from the headers, every async handler's
//! effect exactly once however often a message is delivered, typed errors for messages
//! this program cannot take.

use std::sync::Arc;

use cqrs_ddd::broker::headers;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{EventStore, OutboxMessage, StreamKey};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Error, RequestContext};
use parking_lot::Mutex;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    order: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noted {
    order: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Placed), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Order {}

#[aggregate]
impl Order {
    #[handle(create)]
    fn place(&self, c: &Place) -> Result<Vec<OrderEvent>, Never> {
        Ok(vec![Placed { order: c.order.clone() }.into()])
    }
    #[apply]
    fn placed(&mut self, _: &Placed) {}
}

#[command(aggregate = Order)]
struct Place {
    #[id]
    order: String,
}

#[aggregate(id = String, events(Noted), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {}

#[aggregate]
impl Journal {
    #[handle(create_if_missing)]
    fn note(&self, c: &Note) -> Result<Vec<JournalEvent>, Never> {
        Ok(vec![Noted { order: c.order.clone() }.into()])
    }
    #[apply]
    fn noted(&mut self, _: &Noted) {}
}

#[command(aggregate = Journal)]
struct Note {
    #[id]
    journal: String,
    order: String,
}

/// The contexts the async handler ran in.
#[derive(Default)]
struct Seen(Mutex<Vec<RequestContext>>);

/// Two commands to one journal, joined in the handler's unit of work.
#[event_handler(async)]
async fn journal_placed(e: &Placed, ctx: &EventContext, seen: Dep<Seen>) -> Result<()> {
    seen.0.lock().push(RequestContext::current().expect("a context"));
    ctx.send(Note { journal: "j".into(), order: e.order.clone() }).await?;
    ctx.send(Note { journal: "j".into(), order: format!("{}-again", e.order) }).await?;
    Ok(())
}

fn app_on(store: &MemoryStore, seen: &Arc<Seen>) -> Mediator {
    App::builder().event_store(store.clone()).provide_arc(seen.clone()).build().unwrap()
}

async fn journal_len(store: &MemoryStore, tenant: Option<&str>) -> u64 {
    let key = StreamKey::new("Journal", "j").with_tenant(tenant.map(str::to_owned));
    store.stream_version(&key).await.unwrap()
}

fn staged(store: &MemoryStore) -> Vec<OutboxMessage> {
    store.outbox_records().into_iter().map(|r| r.message).collect()
}

#[tokio::test]
async fn a_message_delivered_many_times_changes_things_once() {
    let store = MemoryStore::new();
    let seen = Arc::new(Seen::default());
    let app = app_on(&store, &seen);
    app.send(Place { order: "o1".into() }).await.unwrap();
    let message = staged(&store).pop().expect("the event went to the outbox");
    for _ in 0..3 {
        app.deliver(&message).await.unwrap();
    }
    // Another process (another application on the same store) gets it again.
    let other = app_on(&store, &seen);
    other.deliver(&message).await.unwrap();
    assert_eq!(journal_len(&store, None).await, 2, "both notes, once");
    assert_eq!(seen.0.lock().len(), 4, "the handler ran each time; its unit of work committed once");
}

#[tokio::test]
async fn the_headers_restore_the_context_the_handlers_run_in() {
    let store = MemoryStore::new();
    let seen = Arc::new(Seen::default());
    let app = app_on(&store, &seen);
    let request = RequestContext::new().with_tenant("acme").with_principal("ann");
    let correlation = request.correlation_id;
    request.scope(app.send(Place { order: "o2".into() })).await.unwrap();
    let message = staged(&store).pop().unwrap();
    assert_eq!(message.headers[headers::TENANT], "acme");
    assert_eq!(message.headers[headers::STREAM], "acme/Order/o2");
    assert!(message.headers[headers::TRACEPARENT].contains(&correlation.simple().to_string()));
    app.deliver(&message).await.unwrap();
    let ctx = seen.0.lock()[0].clone();
    assert_eq!(ctx.correlation_id, correlation);
    assert_eq!(ctx.causation_id, Some(message.id));
    assert_eq!((ctx.tenant_id.as_deref(), ctx.principal.as_deref()), (Some("acme"), Some("ann")));
    assert_eq!(ctx.headers.get(headers::TRACEPARENT), Some(&message.headers[headers::TRACEPARENT]));
    // The handler's commands ran in the tenant of the event.
    assert_eq!(journal_len(&store, Some("acme")).await, 2);
    assert_eq!(journal_len(&store, None).await, 0);
}

#[tokio::test]
async fn messages_this_program_cannot_take_are_typed_errors() {
    let store = MemoryStore::new();
    let seen = Arc::new(Seen::default());
    let app = app_on(&store, &seen);
    app.send(Place { order: "o3".into() }).await.unwrap();
    let good = staged(&store).pop().unwrap();

    let mut unknown = good.clone();
    unknown.headers.insert(headers::EVENT_TYPE.into(), "Renamed".into());
    assert!(matches!(app.deliver(&unknown).await, Err(Error::UnknownMessage { kind: "event", .. })));

    let mut garbled = good.clone();
    garbled.payload = r#"{"event_id": 3}"#.into();
    assert!(matches!(app.deliver(&garbled).await, Err(Error::Serialization { .. })));

    let mut not_an_event = good.clone();
    not_an_event.headers.insert(headers::KIND.into(), "message".into());
    assert!(app.deliver(&not_an_event).await.is_err());

    let mut empty_tenant = good.clone();
    empty_tenant.headers.insert(headers::TENANT.into(), String::new());
    assert!(matches!(app.deliver(&empty_tenant).await, Err(Error::Tenant(_))));

    assert!(seen.0.lock().is_empty(), "no handler ran");
    assert_eq!(journal_len(&store, None).await, 0);
}

/// Publishes in order, failing the first attempt at the messages it is told to.
#[derive(Default)]
struct Flaky {
    fail_once: Mutex<Vec<uuid::Uuid>>,
    published: Mutex<Vec<String>>,
}

#[cqrs_ddd::ports::async_trait]
impl cqrs_ddd::ports::Publisher for Flaky {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        let mut fail = self.fail_once.lock();
        if let Some(i) = fail.iter().position(|id| *id == message.id) {
            fail.remove(i);
            return Err(Error::handler("broker hiccup"));
        }
        self.published.lock().push(message.payload.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_relay_keeps_each_streams_order_across_a_failed_publish() {
    use cqrs_ddd::ports::CommitBatch;
    use cqrs_ddd::{OutboxRelay, RelayOptions};

    let store = MemoryStore::new();
    let message = |stream: &str, n: u32| OutboxMessage {
        id: uuid::Uuid::now_v7(),
        topic: "Ticked".into(),
        payload: format!("{stream}{n}"),
        headers: [(headers::STREAM.to_owned(), stream.to_owned())].into(),
        created_at: chrono::Utc::now(),
    };
    let outbox: Vec<OutboxMessage> = (1..=3).flat_map(|n| [message("a", n), message("b", n)]).collect();
    let flaky = Arc::new(Flaky::default());
    flaky.fail_once.lock().push(outbox[0].id); // a1
    store.commit(CommitBatch { outbox, ..CommitBatch::default() }).await.unwrap();
    let options = RelayOptions { base_backoff: std::time::Duration::ZERO, ..RelayOptions::default() };
    let relay = OutboxRelay::new(Arc::new(store.clone()), flaky.clone()).with_options(options);

    let first = relay.run_once().await.unwrap();
    assert_eq!((first.claimed, first.published, first.retried), (6, 3, 1));
    assert_eq!(*flaky.published.lock(), ["b1", "b2", "b3"], "a2 and a3 wait for a1");
    let second = relay.run_once().await.unwrap();
    assert_eq!(second.published, 3);
    assert_eq!(*flaky.published.lock(), ["b1", "b2", "b3", "a1", "a2", "a3"]);
}

/// A relay running its pipeline (the next batch claimed while one is published) keeps a
/// stream's order across a failure: the batch claimed ahead, holding later rows of the
/// stream, must not let them pass the rows given back untried.
#[tokio::test]
async fn a_pipelined_relay_keeps_a_streams_order_across_a_failed_publish() {
    use cqrs_ddd::ports::{CommitBatch, Outbox};
    use cqrs_ddd::{OutboxRelay, RelayOptions};

    let store = MemoryStore::new();
    let outbox: Vec<OutboxMessage> = (1..=8)
        .map(|n| OutboxMessage {
            id: uuid::Uuid::now_v7(),
            topic: "Ticked".into(),
            payload: format!("x{n}"),
            headers: [(headers::STREAM.to_owned(), "x".to_owned())].into(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    let flaky = Arc::new(Flaky::default());
    flaky.fail_once.lock().push(outbox[0].id);
    store.commit(CommitBatch { outbox, ..CommitBatch::default() }).await.unwrap();
    let options = RelayOptions { batch_size: 2, base_backoff: std::time::Duration::ZERO, ..RelayOptions::default() };
    let relay = OutboxRelay::new(Arc::new(store.clone()), flaky.clone()).with_options(options);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = relay.run(async move {
        let _ = stopped.await;
    });
    let watch = async {
        for _ in 0..2_000 {
            if store.pending(10).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let _ = stop.send(());
    };
    let (ran, ()) = tokio::join!(run, watch);
    ran.unwrap();
    assert_eq!(*flaky.published.lock(), ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]);
}

/// Publishes after a short random pause, counting how many publishes overlap.
#[derive(Default)]
struct Slow {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    published: Mutex<Vec<String>>,
}

#[cqrs_ddd::ports::async_trait]
impl cqrs_ddd::ports::Publisher for Slow {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_micros(u64::from(rand_micros(&message.payload)))).await;
        self.published.lock().push(message.payload.clone());
        self.now.fetch_sub(1, SeqCst);
        Ok(())
    }
}

/// A pause from 0 to 2 ms, fixed per message.
fn rand_micros(s: &str) -> u32 {
    s.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 2000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_publishing_many_at_once_keeps_each_streams_order() {
    use cqrs_ddd::ports::CommitBatch;
    use cqrs_ddd::{OutboxRelay, RelayOptions};

    let store = MemoryStore::new();
    let outbox: Vec<OutboxMessage> = (0..30)
        .map(|k| OutboxMessage {
            id: uuid::Uuid::now_v7(),
            topic: "Ticked".into(),
            payload: format!("s{}-{:02}", k % 3, k / 3),
            headers: [(headers::STREAM.to_owned(), format!("s{}", k % 3))].into(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    store.commit(CommitBatch { outbox, ..CommitBatch::default() }).await.unwrap();
    let slow = Arc::new(Slow::default());
    let options = RelayOptions { in_flight: 8, ..RelayOptions::default() };
    let relay = OutboxRelay::new(Arc::new(store.clone()), slow.clone()).with_options(options);
    assert_eq!(relay.run_once().await.unwrap().published, 30);
    let published = slow.published.lock().clone();
    for s in ["s0", "s1", "s2"] {
        let of: Vec<&String> = published.iter().filter(|p| p.starts_with(s)).collect();
        let mut sorted = of.clone();
        sorted.sort();
        assert_eq!(of, sorted, "stream {s} left in order");
    }
    let most = slow.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&most), "streams went out side by side, one message each at most: {most}");
}

/// Refuses every message while `down`, then publishes in order.
#[derive(Default)]
struct Outage {
    down: std::sync::atomic::AtomicBool,
    published: Mutex<Vec<String>>,
}

#[cqrs_ddd::ports::async_trait]
impl cqrs_ddd::ports::Publisher for Outage {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::handler("broker unreachable"));
        }
        self.published.lock().push(message.payload.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_relay_publishes_everything_in_order_after_an_outage() {
    use cqrs_ddd::ports::CommitBatch;
    use cqrs_ddd::{OutboxRelay, RelayOptions};
    use std::time::Duration;

    let store = MemoryStore::new();
    let outbox: Vec<OutboxMessage> = (0..300)
        .map(|k| OutboxMessage {
            id: uuid::Uuid::now_v7(),
            topic: "Ticked".into(),
            payload: format!("s{}-{:03}", k % 3, k / 3),
            headers: [(headers::STREAM.to_owned(), format!("s{}", k % 3))].into(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    store.commit(CommitBatch { outbox, ..CommitBatch::default() }).await.unwrap();
    let outage = Arc::new(Outage::default());
    outage.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let options = RelayOptions {
        batch_size: 10,
        in_flight: 4,
        max_attempts: 1000,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        poll_interval: Duration::from_millis(5),
        ..RelayOptions::default()
    };
    let relay = Arc::new(OutboxRelay::new(Arc::new(store.clone()), outage.clone()).with_options(options));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let relay = relay.clone();
        async move {
            relay
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    // Full batches (more rows than a batch holds) fail for a while, then the broker is
    // back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    outage.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let start = std::time::Instant::now();
    while outage.published.lock().len() < 300 {
        assert!(start.elapsed() < Duration::from_secs(30), "published {} of 300", outage.published.lock().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let published = outage.published.lock().clone();
    assert_eq!(published.len(), 300, "each message once");
    for s in ["s0", "s1", "s2"] {
        let of: Vec<&String> = published.iter().filter(|p| p.starts_with(s)).collect();
        let mut sorted = of.clone();
        sorted.sort();
        assert_eq!(of, sorted, "stream {s} left in order");
    }
    assert!(store.outbox_records().iter().all(|r| r.status == cqrs_ddd::ports::OutboxStatus::Published));
}
