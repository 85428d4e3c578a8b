//! Crash safety of sagas on PostgreSQL: processes that store a saga's commands and send
//! them are killed (an abort right after a save, and SIGKILL at random points); after
//! a restart every command has been applied exactly once and every saga completed.
#![cfg(feature = "postgres")]
#![allow(missing_docs)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::Mediator;
use cqrs_ddd::ports::{SagaKey, SagaRecord, SagaStatus, SagaStore, async_trait};
use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::{Saga, SagaCommand, SagaHandles, SagaOptions, SagaRecovery, Step};
use cqrs_ddd_sqlx::{PgOptions, PgStore};
use futures::future::BoxFuture;
use rand::Rng;

const SAGAS: u128 = 150;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPaid {
    order: u128,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Shipped), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Parcel;

#[aggregate]
impl Parcel {
    /// Ships every time it is asked: only the idempotency key stops a second shipment.
    #[handle(create_if_missing)]
    fn ship(&self, _c: &Ship) -> std::result::Result<Vec<ParcelEvent>, Never> {
        Ok(vec![Shipped.into()])
    }
    #[apply]
    fn shipped(&mut self, _e: &Shipped) {}
}

#[command(aggregate = Parcel)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ship {
    #[id]
    parcel: String,
}

/// Ships three parcels one after the other, then completes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Shipping;

impl Saga for Shipping {
    const NAME: &'static str = "shipping";
    fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
        cqrs_ddd::saga::send_command::<Ship>(m, c, meta)
    }
}

impl SagaHandles<OrderPaid> for Shipping {
    const STARTS: bool = true;
    fn associate(e: &Envelope<OrderPaid>) -> Option<String> {
        Some(e.order.to_string())
    }
    fn on_event(&mut self, e: &Envelope<OrderPaid>) -> Step {
        let ship = |part: &str| Ship { parcel: format!("{}-{part}", e.order) };
        Step::new("paid").send(&ship("a")).send(&ship("b")).send(&ship("c")).complete()
    }
}

/// A saga store that aborts the process right after its n-th successful save: the
/// saga's commands are stored, not (all) sent.
#[derive(Clone)]
struct AbortAfter {
    inner: PgStore,
    saves: Arc<AtomicU64>,
    abort_at: u64,
}

#[async_trait]
impl SagaStore for AbortAfter {
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
    async fn list(&self, t: Option<&str>, s: &[SagaStatus], limit: usize) -> Result<Vec<SagaRecord>> {
        self.inner.list(t, s, limit).await
    }
}

fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn store(schema: &str) -> PgStore {
    PgStore::connect_with(PgOptions::new(url()).schema(schema).max_connections(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn app(store: &PgStore, abort_at: u64) -> Mediator {
    let sagas = AbortAfter { inner: store.clone(), saves: Arc::default(), abort_at };
    App::builder()
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
fn paid(order: u128) -> Envelope<OrderPaid> {
    let mut envelope = cqrs_ddd::testing::envelope(OrderPaid { order });
    envelope.header.event_id = uuid::Uuid::from_u128(order + 1);
    envelope
}

/// The process the kill test starts and kills; it does nothing when run alone.
#[tokio::test]
#[ignore = "started (and killed) by a_saga_process_killed_between_storing_and_sending_sends_each_command_once"]
async fn saga_process() {
    let Ok(schema) = std::env::var("CQRS_DDD_KILL_TEST_SCHEMA") else { return };
    let abort_at = std::env::var("CQRS_DDD_ABORT_AT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let store = store(&schema).await;
    let app = app(&store, abort_at);
    for order in 0..SAGAS {
        app.sagas().handle::<Shipping, _>(&paid(order)).await.unwrap();
    }
}

fn child(schema: &str, abort_at: u64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["saga_process", "--exact", "--ignored", "--nocapture", "-q"])
        .env("CQRS_DDD_KILL_TEST_SCHEMA", schema)
        .env("CQRS_DDD_ABORT_AT", abort_at.to_string())
        .env("DATABASE_URL", url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_process_killed_between_storing_and_sending_sends_each_command_once() {
    let schema = format!("k_{}", cqrs_ddd::new_id().simple());
    let store = store(&schema).await;
    store.migrate().await.unwrap();

    // Aborted right after a save: the first save of an instance stores its three
    // commands, later saves mark one dispatched each.
    let mut aborted = 0;
    for abort_at in [1, 2, 3, 9, 14, 30, 47] {
        let status = child(&schema, abort_at).wait().unwrap();
        aborted += u32::from(!status.success());
    }
    assert!(aborted >= 6, "the processes aborted after their save ({aborted} of 7)");
    // Killed at random points.
    for _ in 0..10 {
        let mut c = child(&schema, 0);
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..400))).await;
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let stored: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".sagas")).fetch_one(store.pool()).await.unwrap();
    assert!(stored > 0, "the killed processes started sagas");

    // Restart: the events are delivered again (as a relay would) and recovery sends
    // whatever was stored and not sent.
    let app = app(&store, 0);
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
    let done = app.sagas().list(Some("shipping"), &[SagaStatus::Completed], 1000).await.unwrap();
    assert_eq!(done.len() as u128, SAGAS, "every saga completed");

    let shipments: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT stream_id, count(*) FROM \"{schema}\".events GROUP BY stream_id HAVING count(*) <> 1"
    ))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(shipments.is_empty(), "parcels shipped other than once: {shipments:?}");
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".events")).fetch_one(store.pool()).await.unwrap();
    assert_eq!(u128::try_from(total).unwrap(), SAGAS * 3, "each of the three commands of each saga applied once");
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(store.pool()).await.unwrap();
}
