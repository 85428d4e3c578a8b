//! Scenario 17: the outbox relay to NATS JetStream.
//!
//! - Throughput: `relay_messages` outbox rows (100 streams, interleaved) relayed from
//!   PostgreSQL to NATS by `OutboxRelay` with `cqrs-ddd-nats` (each publish confirmed by
//!   the stream, up to 64 awaiting their confirmation, never two of one stream, the
//!   batch marked published), against async-nats publishing the same messages with the
//!   same headers and message ids, up to 64 awaiting their confirmation.
//! - End to end: a command at a time, from `send` to the event's `#[event_handler(async)]`
//!   in a consumer of the bus in the same process (commit, relay woken by the commit,
//!   publish, consumer, delivery in its unit of work).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use cqrs_ddd::broker::{ConsumerOptions, headers};
use cqrs_ddd::ports::Publisher;
use cqrs_ddd::ports::{CommitBatch, OutboxMessage};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{OutboxRelay, RelayOptions};
use cqrs_ddd_nats::Nats;
use cqrs_ddd_rabbitmq::{RabbitMq, lapin};
use cqrs_ddd_sqlx::PgStore;
use std::sync::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::db::Target;
use crate::error::BenchError;
use crate::measure::{Outcome, sequential};
use crate::scenarios::{E2E_NATS, E2E_RABBIT, RELAY_NATS, RELAY_RABBIT, Workload};

const ME: &str = "cqrs-ddd";
const DIRECT: &str = "async-nats";
const LAPIN: &str = "lapin";

/// Publishes awaiting their confirmation at once, for both contenders.
const IN_FLIGHT: usize = 64;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Names of this cell's streams on the server.
fn prefix(who: &str, rep: usize) -> String {
    format!("bench_{who}_{}_{rep}", std::process::id())
}

/// The rows of one run: 100 streams, interleaved, a payload like a small event's.
fn messages(n: usize) -> Vec<OutboxMessage> {
    (0..n)
        .map(|k| {
            let stream = format!("Account/{}", k % 100);
            let headers = [
                (headers::KIND, "event".to_owned()),
                (headers::EVENT_TYPE, "Deposited".to_owned()),
                (headers::STREAM, stream),
                (headers::CORRELATION_ID, cqrs_ddd::new_id().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            OutboxMessage {
                id: cqrs_ddd::new_id(),
                topic: "Deposited".into(),
                payload: format!(r#"{{"event_id":"{k}","payload":{{"amount":{k}}}}}"#),
                headers,
                created_at: chrono::Utc::now(),
            }
        })
        .collect()
}

async fn connect(who: &'static str, rep: usize) -> Result<Nats, BenchError> {
    Ok(Nats::connect(&nats_url())
        .await
        .map_err(|e| BenchError::framework(who, "connect", e))?
        .prefix(&prefix(who, rep)))
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The bus on RabbitMQ, with the queues of the consumer group `bench` (a message must
/// reach a queue to be confirmed).
async fn rabbit(who: &'static str, rep: usize) -> Result<RabbitMq, BenchError> {
    let bus = RabbitMq::connect(&amqp_url())
        .await
        .map_err(|e| BenchError::framework(who, "connect", e))?
        .prefix(prefix(who, rep))
        .groups(["bench"]);
    bus.declare().await.map_err(|e| BenchError::framework(who, "declare", e))?;
    Ok(bus)
}

/// lapin: the same messages on one confirming channel, up to 64 awaiting their confirm,
/// mandatory and persistent, to the same exchange and partitions.
pub(crate) async fn direct_rabbit(w: &Workload, rep: usize) -> Result<f64, BenchError> {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let bus = rabbit(LAPIN, rep).await?;
    let err = |what: &'static str| move |e: lapin::Error| BenchError::framework(LAPIN, what, e);
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.map_err(err("connect"))?;
    let channel = conn.create_channel().await.map_err(err("channel"))?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(err("confirm_select"))?;
    let exchange = format!("{}.events", prefix(LAPIN, rep));
    let all = messages(w.relay_messages);
    let start = Instant::now();
    let mut confirms: std::collections::VecDeque<futures::future::BoxFuture<'static, lapin::Result<()>>> =
        std::collections::VecDeque::with_capacity(IN_FLIGHT);
    for m in &all {
        if confirms.len() == IN_FLIGHT
            && let Some(confirm) = confirms.pop_front()
        {
            confirm.await.map_err(err("confirm"))?;
        }
        let mut headers = FieldTable::default();
        for (k, v) in &m.headers {
            headers.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(m.id.to_string().into())
            .with_headers(headers);
        let partition = cqrs_ddd::broker::partition_of(&m.headers[headers::STREAM], 16).to_string();
        let options = BasicPublishOptions { mandatory: true, immediate: false };
        let confirm = channel
            .basic_publish(exchange.as_str().into(), partition.as_str().into(), options, m.payload.as_bytes(), props)
            .await
            .map_err(err("publish"))?;
        confirms.push_back(Box::pin(async move { confirm.await.map(drop) }));
    }
    for confirm in confirms {
        confirm.await.map_err(err("confirm"))?;
    }
    let rate = crate::stats::count_f64(all.len()) / start.elapsed().as_secs_f64();
    let _ = conn.close(200, "OK".into()).await;
    bus.delete_topology(&[]).await.map_err(|e| BenchError::framework(LAPIN, "delete_topology", e))?;
    Ok(rate)
}

/// A store of its own schema, emptied.
async fn relay_store(target: &Target) -> Result<PgStore, BenchError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(target.options()?)
        .await
        .map_err(|source| BenchError::connecting(target.shown(), source))?;
    let store = PgStore::from_pool(pool, "bench_relay")
        .map_err(|e| BenchError::framework(ME, "from_pool", e))?
        .keep_connections(4);
    store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
    sqlx::query("TRUNCATE bench_relay.outbox")
        .execute(store.pool())
        .await
        .map_err(|e| BenchError::framework(ME, "truncate", e))?;
    Ok(store)
}

/// cqrs-ddd: the relay to NATS, then a command at a time end to end.
pub(crate) async fn ours(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let store = relay_store(target).await?;
    let nats = connect(ME, rep).await?;
    let mut out = Outcome::default();
    out.figure(RELAY_NATS, relay_rate(&store, nats.clone(), w.relay_messages).await?);
    let lat = end_to_end(&store, nats.clone(), w.e2e_samples).await?;
    out.figure(E2E_NATS[0], lat.percentile_us(50.0));
    out.figure(E2E_NATS[1], lat.percentile_us(99.0));
    nats.delete_streams().await;

    let rabbit = rabbit(ME, rep).await?;
    out.figure(RELAY_RABBIT, relay_rate(&store, rabbit.clone(), w.relay_messages).await?);
    let lat = end_to_end(&store, rabbit.clone(), w.e2e_samples).await?;
    out.figure(E2E_RABBIT[0], lat.percentile_us(50.0));
    out.figure(E2E_RABBIT[1], lat.percentile_us(99.0));
    rabbit.delete_topology(&[]).await.map_err(|e| BenchError::framework(ME, "delete_topology", e))?;
    Ok(out)
}

/// Messages per second of the relay from the outbox to `bus`, from the first claim to
/// the last confirm.
async fn relay_rate(store: &PgStore, bus: impl Publisher + Clone, n: usize) -> Result<f64, BenchError> {
    // The broker's names exist before timing (the first publish declares them).
    bus.publish(&messages(1)[0]).await.map_err(|e| BenchError::framework(ME, "publish", e))?;
    for chunk in messages(n).chunks(500) {
        let batch = CommitBatch { outbox: chunk.to_vec(), ..CommitBatch::default() };
        cqrs_ddd::ports::EventStore::commit(store, batch).await.map_err(|e| BenchError::framework(ME, "commit", e))?;
    }
    let counted = Arc::new(Counted { inner: bus, left: AtomicUsize::new(n), done: Notify::new() });
    let relay = OutboxRelay::new(Arc::new(store.clone()), counted.clone()).with_options(RelayOptions {
        batch_size: 1000,
        in_flight: IN_FLIGHT,
        ..RelayOptions::default()
    });
    let start = Instant::now();
    let all_published = counted.done.notified();
    tokio::time::timeout(Duration::from_secs(120), relay.run(all_published))
        .await
        .map_err(|_| BenchError::Check(format!("{ME}: the relay did not publish every row within 120 s")))?
        .map_err(|e| BenchError::framework(ME, "run", e))?;
    Ok(crate::stats::count_f64(n) / start.elapsed().as_secs_f64())
}

/// async-nats: the same messages, published one at a time, each confirmed.
pub(crate) async fn direct(w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let nats = connect(DIRECT, rep).await?;
    // The same streams as the relay's, made the same way.
    let warm = messages(1);
    nats.publish(&warm[0]).await.map_err(|e| BenchError::framework(DIRECT, "publish", e))?;
    let js = async_nats::jetstream::new(nats.client().clone());
    let all = messages(w.relay_messages);
    let prefix = nats.subject_prefix().to_owned();
    let start = Instant::now();
    let mut acks = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    for m in &all {
        if acks.len() == IN_FLIGHT
            && let Some(ack) = acks.pop_front()
        {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            ack.await.map_err(|e| BenchError::framework(DIRECT, "ack", e))?;
        }
        let mut h = HeaderMap::new();
        for (k, v) in &m.headers {
            h.insert(k.as_str(), v.as_str());
        }
        h.insert("Nats-Msg-Id", m.id.to_string().as_str());
        let partition = cqrs_ddd::broker::partition_of(&m.headers[headers::STREAM], 16);
        let subject = format!("{prefix}.events.{partition}.Deposited");
        let ack = js
            .publish_with_headers(subject, h, Bytes::from(m.payload.clone()))
            .await
            .map_err(|e| BenchError::framework(DIRECT, "publish", e))?;
        acks.push_back(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| BenchError::framework(DIRECT, "ack", e))?;
    }
    let elapsed = start.elapsed();
    nats.delete_streams().await;
    let mut out = Outcome::default();
    out.figure(RELAY_NATS, crate::stats::count_f64(all.len()) / elapsed.as_secs_f64());
    out.figure(RELAY_RABBIT, direct_rabbit(w, rep).await?);
    Ok(out)
}

/// The relay's publisher, counting down the messages still to publish.
struct Counted<P> {
    inner: P,
    left: AtomicUsize,
    done: Notify,
}

#[cqrs_ddd::ports::async_trait]
impl<P: Publisher> Publisher for Counted<P> {
    async fn publish(&self, message: &OutboxMessage) -> cqrs_ddd::Result<()> {
        self.inner.publish(message).await?;
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.done.notify_one();
        }
        Ok(())
    }
}

/// Where the async handler reports each delivery.
static DELIVERED: Mutex<Option<mpsc::UnboundedSender<()>>> = Mutex::new(None);

/// The end-to-end probe's event.
#[event(name = "BenchPinged")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pinged {
    k: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Pinged), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pinger {}

#[aggregate]
impl Pinger {
    #[handle(create_if_missing)]
    fn ping(&self, c: &Ping) -> Result<Vec<PingerEvent>, Never> {
        Ok(vec![Pinged { k: c.k }.into()])
    }

    #[apply]
    fn pinged(&mut self, _: &Pinged) {}
}

#[command(aggregate = Pinger)]
struct Ping {
    #[id]
    pinger: String,
    k: u64,
}

#[event_handler(async)]
async fn on_pinged(_e: &Pinged) -> Result<()> {
    if let Some(tx) = DELIVERED.lock().ok().as_deref().and_then(Option::as_ref) {
        let _ = tx.send(());
    }
    Ok(())
}

async fn end_to_end(
    store: &PgStore,
    bus: impl cqrs_ddd::broker::Bus,
    samples: usize,
) -> Result<crate::stats::Latencies, BenchError> {
    let app = App::builder()
        .event_store(store.clone())
        .bus(bus)
        .build()
        .map_err(|e| BenchError::framework(ME, "App::build", e))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Ok(mut d) = DELIVERED.lock() {
        *d = Some(tx);
    }
    let relay = OutboxRelay::for_app(Arc::new(store.clone()), &app)
        .with_options(RelayOptions { poll_interval: Duration::from_secs(1), ..RelayOptions::default() }.wake_on(&app));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let relay = tokio::spawn({
        let until = until(stopped.clone());
        async move { relay.run(until).await }
    });
    let consumer = tokio::spawn({
        let (app, until) = (app.clone(), until(stopped.clone()));
        async move { app.consume(ConsumerOptions::group("bench"), until).await }
    });
    let mut one = async |k: usize| -> Result<(), BenchError> {
        let k = u64::try_from(k).unwrap_or(u64::MAX);
        app.send(Ping { pinger: format!("p{}", k % 16), k }).await.map_err(|e| BenchError::framework(ME, "send", e))?;
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .map_err(|_| BenchError::Check(format!("{ME}: no delivery within 30 s")))?
            .ok_or_else(|| BenchError::Check(format!("{ME}: the probe closed")))
    };
    one(usize::MAX).await?;
    let lat = sequential(samples, async |k| one(k).await).await?;
    let _ = stop.send(true);
    relay
        .await
        .map_err(|e| BenchError::framework(ME, "relay", e))?
        .map_err(|e| BenchError::framework(ME, "relay", e))?;
    consumer
        .await
        .map_err(|e| BenchError::framework(ME, "consumer", e))?
        .map_err(|e| BenchError::framework(ME, "consumer", e))?;
    if let Ok(mut d) = DELIVERED.lock() {
        *d = None;
    }
    Ok(lat)
}
