//! Crash safety of projections on PostgreSQL: a worker process is killed (SIGKILL) at
//! random points 20 times while events are appended; after the last restart the read
//! model equals a full replay and no event was applied twice.
#![cfg(feature = "postgres")]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ProjectionWorker, WorkerOptions};
use cqrs_ddd_sqlx::{PgOptions, PgStore};
use rand::Rng;
use sqlx::PgConnection;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credited {
    amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Credited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    total: u64,
}

#[aggregate]
impl Wallet {
    #[handle(create_if_missing)]
    fn credit(&self, c: &Credit) -> std::result::Result<Vec<WalletEvent>, Never> {
        Ok(vec![Credited { amount: c.amount }.into()])
    }
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.total += e.amount;
    }
}

#[command(aggregate = Wallet)]
struct Credit {
    #[id]
    id: String,
    amount: u64,
}

/// Totals per wallet in the document store, and one row per applied event in a typed
/// table whose primary key makes a second application of an event fail loudly.
struct Totals {
    schema: String,
}

#[projection(name = "totals")]
impl Totals {
    #[on]
    async fn credited(&self, e: &Envelope<Credited>, tx: &mut ProjectionTx) -> Result<()> {
        let conn = tx.connection::<PgConnection>().ok_or_else(|| Error::handler("not on PostgreSQL"))?;
        sqlx::query(&format!("INSERT INTO \"{}\".applied (event_id) VALUES ($1)", self.schema))
            .bind(e.header.event_id)
            .execute(conn)
            .await
            .map_err(Error::store)?;
        let amount = e.amount;
        tx.docs("totals").update(&e.header.stream_id, |t: &mut u64| *t += amount).await?;
        Ok(())
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

fn worker(store: &PgStore, schema: &str) -> ProjectionWorker<Totals> {
    ProjectionWorker::new(Totals { schema: schema.to_owned() }, Arc::new(store.clone()), Arc::new(store.clone()))
        .with_options(WorkerOptions {
            batch_size: 7,
            lease_ttl: Duration::from_millis(150),
            poll_interval: Duration::from_millis(5),
            ..WorkerOptions::default()
        })
}

/// The worker process the kill test starts and kills; it does nothing when run alone.
#[tokio::test]
#[ignore = "started (and killed) by a_projection_killed_twenty_times_applies_every_event_once"]
async fn projection_worker_process() {
    let Ok(schema) = std::env::var("CQRS_DDD_KILL_TEST_SCHEMA") else { return };
    let store = store(&schema).await;
    worker(&store, &schema).run(std::future::pending()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_twenty_times_applies_every_event_once() {
    let schema = format!("k_{}", cqrs_ddd::new_id().simple());
    let store = store(&schema).await;
    store.migrate().await.unwrap();
    sqlx::query(&format!("CREATE TABLE \"{schema}\".applied (event_id UUID PRIMARY KEY)"))
        .execute(store.pool())
        .await
        .unwrap();
    let app = App::builder().event_store(store.clone()).build().unwrap();

    // Commands keep coming while worker processes are killed.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, writing) = (app.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while writing.load(Ordering::SeqCst) {
                n += 1;
                app.send(Credit { id: format!("w{}", n % 13), amount: n % 7 + 1 }).await.unwrap();
            }
            n
        })
    };
    let exe = std::env::current_exe().unwrap();
    for _ in 0..20 {
        let mut child = std::process::Command::new(&exe)
            .args(["projection_worker_process", "--exact", "--ignored", "--nocapture", "-q"])
            .env("CQRS_DDD_KILL_TEST_SCHEMA", &schema)
            .env("DATABASE_URL", url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let alive = Duration::from_millis(rand::rng().random_range(100..500));
        tokio::time::sleep(alive).await;
        child.kill().unwrap(); // SIGKILL: no cleanup, no lease release
        child.wait().unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let commands = writer.await.unwrap();
    assert!(commands > 100, "the writer kept the workers busy ({commands} commands)");

    // Restart once more and finish.
    let last = worker(&store, &schema);
    let by_killed: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".applied"))
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(by_killed > 0, "the killed workers applied events before dying");
    // A commit becomes visible to readers of all events once no older transaction of
    // this database is open (other tests run alongside): catch up until all are applied.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        last.catch_up().await.unwrap();
        let applied: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".applied"))
            .fetch_one(store.pool())
            .await
            .unwrap();
        if u64::try_from(applied).unwrap() >= commands || std::time::Instant::now() > deadline {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(u64::try_from(applied).unwrap(), commands, "every event applied exactly once");
    assert_eq!(last.status().await.unwrap().lag, 0);
    let replay: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT stream_id, sum((payload->>'amount')::bigint)::bigint FROM \"{schema}\".events GROUP BY stream_id ORDER BY stream_id"
    ))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let model = cqrs_ddd::ports::ProjectionStore::documents(&store, "totals").await.unwrap();
    let model: Vec<(String, i64)> = model.iter().map(|d| (d.id.clone(), d.json.parse().unwrap())).collect();
    assert_eq!(model, replay, "the read model equals a full replay");
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(store.pool()).await.unwrap();
}
