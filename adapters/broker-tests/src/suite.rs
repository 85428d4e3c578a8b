//! The tests, generic over the broker (see the crate docs).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_ddd::broker::{Bus, ConsumerOptions};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Backoff, Error, Mediator, OutboxRelay, RelayOptions, RequestContext};
use cqrs_ddd_sqlx::{PgOptions, PgStore};
use tokio::sync::oneshot;

use crate::TestBus;
use crate::domain::{Faults, Ledger, Tick};
use crate::proxy::Proxy;

/// The environment variable that makes `broker_consumer_process` a consumer:
/// `schema|prefix|address`.
const CHILD: &str = "CQRS_DDD_BROKER_CHILD";

/// The consumer group of every test.
const GROUP: &str = "workers";

/// How long a test waits for the work to be done before it fails (a bound, not a
/// measurement: the work takes seconds).
const PATIENCE: Duration = Duration::from_secs(240);

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn store_in(schema: &str, connections: u32) -> PgStore {
    PgStore::connect_with(PgOptions::new(database_url()).schema(schema).max_connections(connections))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed (DATABASE_URL; `scripts/services.sh` starts it): {e}"))
}

fn consumer_options() -> ConsumerOptions {
    ConsumerOptions {
        group: GROUP.to_owned(),
        max_deliveries: 3,
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(500)),
        ack_wait: Duration::from_secs(3),
        outage_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
    }
}

fn app(store: &PgStore, bus: impl Bus, faults: Arc<Faults>) -> Mediator {
    App::builder().event_store(store.clone()).sagas_on(store.clone()).provide_arc(faults).bus(bus).build().unwrap()
}

/// The consumer process: consumes until the test kills it.
pub async fn child<B: TestBus>() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [schema, prefix, address] = parts[..] else { panic!("bad {CHILD}: {spec}") };
    let store = store_in(schema, 8).await;
    let bus = B::connect(address, prefix).await.expect("the broker answers");
    let app = app(&store, bus, Arc::default());
    app.consume(consumer_options(), std::future::pending()).await.expect("the consumer runs until killed");
}

/// A consumer process, SIGKILLed when dropped.
struct Process(Child);

impl Process {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One test's database schema, broker names and producing application.
struct World<B: TestBus> {
    schema: String,
    prefix: String,
    store: PgStore,
    bus: B::Bus,
    app: Mediator,
    faults: Arc<Faults>,
}

impl<B: TestBus> World<B> {
    /// A world whose producer reaches the broker at `address`.
    async fn new(address: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let schema = format!("b_{id}");
        let prefix = format!("t{}", &id[id.len() - 12..]);
        let store = store_in(&schema, 8).await;
        store.migrate().await.unwrap();
        let bus = B::connect(address, &prefix).await.unwrap_or_else(|e| panic!("the broker answers: {e}"));
        let faults = Arc::new(Faults::default());
        let app = app(&store, bus.clone(), faults.clone());
        World { schema, prefix, store, bus, app, faults }
    }

    /// A consumer process reaching the broker at `address`.
    fn spawn(&self, address: &str) -> Process {
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args(["--exact", "broker_consumer_process", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}|{}|{address}", self.schema, self.prefix))
            .stdout(Stdio::null())
            .spawn()
            .expect("the test binary starts again as a consumer");
        Process(child)
    }

    /// The outbox relay of the producer, until the returned sender is dropped or used.
    fn relay(&self) -> (oneshot::Sender<()>, tokio::task::JoinHandle<cqrs_ddd::Result<()>>) {
        let options = RelayOptions {
            batch_size: 200,
            max_attempts: 1000,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            poll_interval: Duration::from_millis(20),
            outage_backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
            ..RelayOptions::default()
        }
        .wake_on(&self.app);
        let relay = OutboxRelay::for_app(Arc::new(self.store.clone()), &self.app).with_options(options);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        });
        (stop, task)
    }

    /// Ticks every clock `ticks` times, `per_command` ticks per command, clocks
    /// interleaved.
    async fn produce(&self, clocks: &[String], ticks: u64, per_command: u64) {
        for _ in 0..ticks / per_command {
            for clock in clocks {
                self.app.send(Tick { clock: clock.clone(), count: per_command }).await.unwrap();
            }
        }
    }

    async fn ledger(&self, clock: &str, tenant: Option<&str>) -> Vec<(u64, u32)> {
        let mut request = RequestContext::new();
        request.tenant_id = tenant.map(str::to_owned);
        match request.scope(self.app.load::<Ledger>(&clock.to_owned())).await {
            Ok(loaded) => loaded.state.seen,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => panic!("cannot read the ledger of {clock}: {e}"),
        }
    }

    /// How many ticks the ledgers of `clocks` hold.
    async fn recorded(&self, clocks: &[String]) -> usize {
        let mut total = 0;
        for clock in clocks {
            total += self.ledger(clock, None).await.len();
        }
        total
    }

    /// Waits (bounded) until the ledgers of `clocks` hold `at_least` ticks in all.
    async fn wait_for(&self, clocks: &[String], at_least: usize) {
        let start = Instant::now();
        loop {
            let done = self.recorded(clocks).await;
            if done >= at_least {
                return;
            }
            if start.elapsed() >= PATIENCE {
                use cqrs_ddd::ports::Outbox;
                let pending = self.store.pending(100_000).await.unwrap_or_default();
                let dead = self.store.dead().await.map(|d| d.len());
                let errors: BTreeSet<String> = pending
                    .iter()
                    .filter_map(|r| r.last_error.as_ref().map(|e| format!("{} attempts: {e}", r.attempts)))
                    .take(3)
                    .collect();
                panic!(
                    "only {done} of {at_least} ticks were recorded within {PATIENCE:?} (outbox: {} pending, {dead:?} \
                     dead; last errors: {errors:?})",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every ledger reads `1..=ticks` (each tick once, in order); returns the processes
    /// that recorded them.
    async fn check(&self, clocks: &[String], ticks: u64) -> BTreeSet<u32> {
        let mut by = BTreeSet::new();
        for clock in clocks {
            let seen = self.ledger(clock, None).await;
            let ns: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
            assert_eq!(ns, (1..=ticks).collect::<Vec<_>>(), "ledger of {clock}: ticks lost, repeated or out of order");
            by.extend(seen.iter().map(|(_, p)| *p));
        }
        by
    }

    async fn finish(self) {
        B::clean(&self.bus).await;
        let _ = sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema)).execute(self.store.pool()).await;
    }
}

fn clocks(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// 10,000 events, two consumer processes.
pub async fn ten_thousand_events<B: TestBus>() {
    let address = B::address();
    let world = World::<B>::new(&address).await;
    let clocks = clocks("c", 100);
    let consumers = [world.spawn(&address), world.spawn(&address)];
    let (stop, relay) = world.relay();
    world.produce(&clocks, 100, 25).await;
    world.wait_for(&clocks, 10_000).await;
    let by = world.check(&clocks, 100).await;
    let pids: BTreeSet<u32> = consumers.iter().map(Process::id).collect();
    assert_eq!(by, pids, "both consumer processes took part, and only they");
    let _ = stop.send(());
    relay.await.unwrap().unwrap();
    drop(consumers);
    world.finish().await;
}

/// A consumer SIGKILLed after a fifth of the work; another takes its place.
pub async fn killed_consumer<B: TestBus>() {
    let address = B::address();
    let world = World::<B>::new(&address).await;
    let clocks = clocks("k", 40);
    let mut first = world.spawn(&address);
    let second = world.spawn(&address);
    let (stop, relay) = world.relay();
    world.produce(&clocks, 100, 10).await;
    world.wait_for(&clocks, 800).await;
    first.kill();
    let third = world.spawn(&address);
    world.wait_for(&clocks, 4_000).await;
    world.check(&clocks, 100).await;
    let _ = stop.send(());
    relay.await.unwrap().unwrap();
    // Killed before the cleaning, so that none of them declares its queues again.
    drop((second, third));
    world.finish().await;
}

/// Publisher and consumers reach the broker through a proxy that cuts every connection
/// for two seconds after a quarter of the work.
pub async fn cut_connections<B: TestBus>() {
    let proxy = Proxy::start(&B::address()).await;
    let world = World::<B>::new(&proxy.address()).await;
    let clocks = clocks("x", 40);
    let consumers = [world.spawn(&proxy.address()), world.spawn(&proxy.address())];
    let (stop, relay) = world.relay();
    world.produce(&clocks, 50, 10).await;
    world.wait_for(&clocks, 500).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    world.wait_for(&clocks, 2_000).await;
    world.check(&clocks, 50).await;
    let _ = stop.send(());
    relay.await.unwrap().unwrap();
    drop(consumers);
    world.finish().await;
}

/// In-process consumer until the returned sender is used.
fn consume(world: &World<impl TestBus>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<cqrs_ddd::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = world.app.clone();
    let task = tokio::spawn(async move {
        app.consume(consumer_options(), async move {
            let _ = stopped.await;
        })
        .await
    });
    (stop, task)
}

/// A poison clock's ticks die after three deliveries; the other clocks keep flowing;
/// replayed after the fix, they are handled once, in order.
pub async fn poison<B: TestBus>() {
    let world = World::<B>::new(&B::address()).await;
    let clocks = clocks("p", 5);
    let poison = vec!["poison-1".to_owned()];
    let (stop_consumer, consumer) = consume(&world);
    let (stop_relay, relay) = world.relay();
    world.produce(&poison, 3, 3).await;
    world.produce(&clocks, 20, 5).await;
    world.wait_for(&clocks, 100).await;
    world.check(&clocks, 20).await;

    let start = Instant::now();
    let dead = loop {
        let dead = world.bus.dead_letters(GROUP, 10).await.unwrap();
        if dead.len() >= 3 {
            break dead;
        }
        assert!(start.elapsed() < PATIENCE, "{} dead letters within {PATIENCE:?}", dead.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert!(d.error.contains("poisoned tick"), "the last error is kept: {}", d.error);
        assert_eq!(d.deliveries, 3);
        assert_eq!(d.message.headers["event-type"], "Ticked");
    }
    assert!(world.ledger("poison-1", None).await.is_empty());
    assert!(world.bus.dead_letters("another-group", 10).await.unwrap().is_empty());

    world.faults.heal();
    let ids: Vec<uuid::Uuid> = dead.iter().map(|d| d.message.id).collect();
    assert_eq!(world.bus.replay_dead(GROUP, &ids).await.unwrap(), 3);
    world.wait_for(&poison, 3).await;
    world.check(&poison, 3).await;
    assert!(world.bus.dead_letters(GROUP, 10).await.unwrap().is_empty(), "replayed letters leave the dead letters");

    let _ = stop_consumer.send(());
    consumer.await.unwrap().unwrap();
    let _ = stop_relay.send(());
    relay.await.unwrap().unwrap();
    world.finish().await;
}

/// One clock id in two tenants: each tenant's ticks are recorded in its own ledger.
pub async fn tenants<B: TestBus>() {
    let world = World::<B>::new(&B::address()).await;
    let (stop_consumer, consumer) = consume(&world);
    let (stop_relay, relay) = world.relay();
    for (tenant, count) in [("acme", 2), ("globex", 3)] {
        RequestContext::new()
            .with_tenant(tenant)
            .scope(world.app.send(Tick { clock: "c".into(), count }))
            .await
            .unwrap();
    }
    let start = Instant::now();
    loop {
        let acme = world.ledger("c", Some("acme")).await.len();
        let globex = world.ledger("c", Some("globex")).await.len();
        if acme == 2 && globex == 3 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "acme {acme}/2, globex {globex}/3 within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(world.ledger("c", None).await.is_empty(), "nothing was recorded outside the tenants");
    let _ = stop_consumer.send(());
    consumer.await.unwrap().unwrap();
    let _ = stop_relay.send(());
    relay.await.unwrap().unwrap();
    world.finish().await;
}
