//! Shared by the integration tests: the broker URL, unique prefixes whose exchanges and
//! queues are deleted at the end, a TCP proxy that can cut connections, a small domain
//! whose async handler sends commands, and a bounded wait.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::Backoff;
use cqrs_ddd::RequestContext;
use cqrs_ddd::broker::ConsumerOptions;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{EventStore, OutboxMessage, StreamKey};
use cqrs_ddd::prelude::*;
use cqrs_ddd_rabbitmq::RabbitMq;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `host:port` of the broker.
pub fn broker_addr() -> String {
    let url = url();
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5672") }
}

/// `url()` going through `127.0.0.1:port` instead.
pub fn url_via(port: u16) -> String {
    url().replacen(&broker_addr(), &format!("127.0.0.1:{port}"), 1)
}

/// A prefix no other test (or run) uses.
pub fn prefix(test: &str) -> String {
    format!("cqrs-ddd-test.{test}.{:x}", rand::random::<u64>())
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Deletes the exchanges and queues of a prefix when dropped, also when the test failed
/// (best effort, on a thread of its own).
pub struct Cleanup {
    prefix: String,
    partitions: u32,
    groups: Vec<String>,
}

impl Cleanup {
    pub fn new(prefix: &str, partitions: u32, groups: &[&str]) -> Cleanup {
        Cleanup { prefix: prefix.to_owned(), partitions, groups: groups.iter().map(|g| (*g).to_owned()).collect() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (prefix, partitions, groups) = (self.prefix.clone(), self.partitions, self.groups.clone());
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(bus) = RabbitMq::connect(&url()).await {
                    let bus = bus.prefix(prefix).partitions(partitions);
                    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                    if let Err(e) = bus.delete_topology(&groups).await {
                        eprintln!("cleanup: {e}");
                    }
                    let _ = bus.close().await;
                }
            });
        });
        let _ = done.join();
    }
}

/// A proxy to a TCP address; [`Proxy::cut`] closes every connection and refuses new
/// ones until [`Proxy::restore`].
pub struct Proxy(cqrs_ddd::testing::TcpProxy);

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        Proxy(cqrs_ddd::testing::TcpProxy::start_to(upstream).await.expect("a proxy on a loopback port"))
    }

    pub fn url(&self) -> String {
        url_via(self.0.addr().port())
    }

    pub fn cut(&self) {
        self.0.cut();
    }

    pub fn restore(&self) {
        self.0.restore();
    }
}

/// Waits for `check` to hold, polling every 20 ms, for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {secs} s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- A small domain: placing an order notes it twice in the order's journal, from an
// async handler (so through the broker when the application has one).

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placed {
    pub order: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noted {
    pub order: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(id = String, events(Placed), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Order {}

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
pub struct Place {
    #[id]
    pub order: String,
}

#[aggregate(id = String, events(Noted), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Journal {}

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
pub struct Note {
    #[id]
    pub journal: String,
    pub order: String,
}

/// What the async handler saw, and which orders it refuses.
#[derive(Default)]
pub struct Probe {
    /// The order and the context of every run of the handler.
    pub runs: Mutex<Vec<(String, RequestContext)>>,
    /// Orders whose handling fails.
    pub poison: Mutex<HashSet<String>>,
    /// How long each run takes, at least.
    pub pace: Mutex<Option<Duration>>,
}

impl Probe {
    pub fn runs_of(&self, order: &str) -> usize {
        self.runs.lock().iter().filter(|(o, _)| o == order).count()
    }
}

/// Two notes in the order's journal, joined in the handler's unit of work.
#[event_handler(async)]
async fn note_placed(e: &Placed, ctx: &EventContext, probe: Dep<Probe>) -> Result<()> {
    probe.runs.lock().push((e.order.clone(), RequestContext::current().expect("a context")));
    let pace = *probe.pace.lock();
    if let Some(pace) = pace {
        tokio::time::sleep(pace).await;
    }
    if probe.poison.lock().contains(&e.order) {
        return Err(Error::handler(format!("order {} is poison", e.order)));
    }
    ctx.send(Note { journal: e.order.clone(), order: e.order.clone() }).await?;
    ctx.send(Note { journal: e.order.clone(), order: format!("{}-again", e.order) }).await?;
    Ok(())
}

pub fn app(store: &MemoryStore, probe: &Arc<Probe>, bus: &RabbitMq) -> Mediator {
    App::builder().event_store(store.clone()).provide_arc(probe.clone()).bus(bus.clone()).build().unwrap()
}

/// The notes in `order`'s journal (of `tenant`).
pub async fn notes(store: &MemoryStore, tenant: Option<&str>, order: &str) -> u64 {
    let key = StreamKey::new("Journal", order).with_tenant(tenant.map(str::to_owned));
    store.stream_version(&key).await.unwrap()
}

/// The outbox message of the `Placed` event of `order`.
pub fn placed(store: &MemoryStore, order: &str) -> OutboxMessage {
    store
        .outbox_records()
        .into_iter()
        .map(|r| r.message)
        .find(|m| m.topic == "Placed" && m.payload.contains(&format!("\"order\":\"{order}\"")))
        .expect("the Placed event is in the outbox")
}

/// Options that retry and reconnect quickly.
pub fn options(group: &str) -> ConsumerOptions {
    ConsumerOptions {
        max_deliveries: 3,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        outage_backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        ..ConsumerOptions::group(group)
    }
}

/// A consumer running in the background until [`Consumer::stop`].
pub struct Consumer {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<cqrs_ddd::Result<()>>,
}

impl Consumer {
    pub fn start(app: &Mediator, options: ConsumerOptions) -> Consumer {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = app.clone();
        let task = tokio::spawn(async move {
            app.consume(options, async {
                let _ = stopped.await;
            })
            .await
        });
        Consumer { stop: Some(stop), task }
    }

    /// Stops it and returns what `consume` returned.
    pub async fn stop(mut self) -> cqrs_ddd::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the consumer stops within 30 s")
            .expect("the consumer task did not panic")
    }
}
