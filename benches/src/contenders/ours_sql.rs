//! cqrs-ddd on MariaDB (`MySqlStore`, cargo feature `mysql`) and on SQLite
//! (`SqliteStore`) of `cqrs-ddd-sqlx`, configured as on PostgreSQL (`ours_pg.rs`): the
//! store's own tables, the aggregate cache, snapshots every 100 events, every command
//! through `Mediator::send`. Loads replay the whole stream through `Mediator::load`.
//! The scenarios are written once, over any store of the adapter; the PostgreSQL
//! contender (`ours_pg.rs`) runs them too.

use cqrs_ddd::ports::{EventStore, SnapshotStore};
use cqrs_ddd::{App, Mediator, SnapshotPolicy};
#[cfg(feature = "mysql")]
use cqrs_ddd_sqlx::MySqlStore;
use cqrs_ddd_sqlx::SqliteStore;
use futures::future::BoxFuture;

use crate::db::{Target, load_stream_id};
#[cfg(feature = "mysql")]
use crate::db_mysql;
use crate::db_sqlite;
use crate::domain::ours::{Account, Deposit};
use crate::error::BenchError;
use crate::measure::{Outcome, client_plan, concurrent, median_of, millis, sequential};
use crate::scenarios::{LITE_LOADS, LITE_SEQ, LoadIds, RateIds, SNAPSHOT_EVERY, Workload};
#[cfg(feature = "mysql")]
use crate::scenarios::{MY_CONC16, MY_LOADS, MY_SEQ};

pub(crate) const ME: &str = "cqrs-ddd";

/// The application of the write scenarios: the cache holds every aggregate they write.
pub(crate) fn app<S: EventStore + SnapshotStore + Clone>(store: &S, cache: usize) -> Result<Mediator, BenchError> {
    App::builder()
        .event_store(store.clone())
        .snapshot_store(store.clone())
        .snapshot::<Account>(SnapshotPolicy::every(SNAPSHOT_EVERY as u64))
        .aggregate_cache(cache)
        .build()
        .map_err(|e| BenchError::framework(ME, "App::build", e))
}

pub(crate) async fn deposit(app: &Mediator, account: &str) -> Result<(), BenchError> {
    app.send(Deposit { account: account.to_owned(), amount: 1 }).await.map_err(|e| BenchError::framework(ME, "send", e))
}

pub(crate) async fn check_balance(app: &Mediator, account: &str, expected: usize) -> Result<(), BenchError> {
    let loaded = app.load::<Account>(&account.to_owned()).await.map_err(|e| BenchError::framework(ME, "load", e))?;
    let balance = loaded.state.balance();
    if usize::try_from(balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("{ME}: {account} has balance {balance}, expected {expected}")));
    }
    Ok(())
}

/// One client, commands round robin over the aggregates.
pub(crate) async fn seq<S: EventStore + SnapshotStore + Clone>(
    store: &S,
    w: &Workload,
    rep: usize,
    rows: RateIds,
) -> Result<Outcome, BenchError> {
    let app = app(store, w.pg_aggregates)?;
    let ids: Vec<String> = (0..w.pg_aggregates).map(|a| format!("seq-r{rep}-{a}")).collect();
    let lat = sequential(w.pg_commands, async |k| deposit(&app, &ids[k % ids.len()]).await).await?;
    check_balance(&app, &ids[0], w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(rows, &lat);
    Ok(out)
}

/// One client of the concurrent scenario: the shared application and the ids it writes.
struct Client {
    app: Mediator,
    ids: std::sync::Arc<Vec<String>>,
}

fn conc_command(client: &mut Client, a: usize) -> BoxFuture<'_, Result<(), BenchError>> {
    Box::pin(async move { deposit(&client.app, &client.ids[a]).await })
}

/// `pg_clients` tasks at once on one application, distinct aggregates each.
pub(crate) async fn conc<S: EventStore + SnapshotStore + Clone>(
    store: &S,
    w: &Workload,
    rep: usize,
    rows: RateIds,
) -> Result<Outcome, BenchError> {
    let app = app(store, w.pg_aggregates)?;
    let ids: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new((0..w.pg_aggregates).map(|a| format!("conc-r{rep}-{a}")).collect());
    let clients = (0..w.pg_clients)
        .map(|c| {
            (
                Client { app: app.clone(), ids: ids.clone() },
                client_plan(c, w.pg_clients, w.pg_commands, w.pg_aggregates),
            )
        })
        .collect();
    let lat = concurrent(clients, conc_command).await?;
    check_balance(&app, &ids[0], w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(rows, &lat);
    Ok(out)
}

/// Loads of the seeded streams: a full replay, checked against the event count.
pub(crate) async fn replay_loads<S: EventStore + Clone>(
    store: &S,
    w: &Workload,
    rows: LoadIds,
) -> Result<Outcome, BenchError> {
    let replay =
        App::builder().event_store(store.clone()).build().map_err(|e| BenchError::framework(ME, "App::build", e))?;
    let mut out = Outcome::default();
    for ((n, id), timed) in rows.into_iter().zip(w.loads_timed) {
        let stream = load_stream_id(n);
        let t = median_of(timed, async || check_balance(&replay, &stream, n).await).await?;
        out.figure(id, millis(t));
    }
    Ok(out)
}

// ---- MariaDB ----

#[cfg(feature = "mysql")]
async fn my_store(target: &Target) -> Result<MySqlStore, BenchError> {
    MySqlStore::connect(&db_mysql::database_url(target)?)
        .await
        .map(|store| store.keep_connections(u32::MAX))
        .map_err(|e| BenchError::framework(ME, "MySqlStore::connect", e))
}

/// Creates the store's tables; seeds the load streams when `seed`.
#[cfg(feature = "mysql")]
pub(crate) async fn prepare_mariadb(target: &Target, seed: bool) -> Result<(), BenchError> {
    let store = my_store(target).await?;
    store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
    if seed {
        let mut conn = store.pool().acquire().await.map_err(|e| BenchError::framework(ME, "acquire", e))?;
        db_mysql::seed_streams(&mut conn, "events").await?;
        conn.close().await.ok();
    }
    // Children open the database afresh: nothing of this process stays connected.
    store.pool().close().await;
    Ok(())
}

#[cfg(feature = "mysql")]
pub(crate) async fn my_seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    seq(&my_store(target).await?, w, rep, MY_SEQ).await
}

#[cfg(feature = "mysql")]
pub(crate) async fn my_conc(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    conc(&my_store(target).await?, w, rep, MY_CONC16).await
}

#[cfg(feature = "mysql")]
pub(crate) async fn my_load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    replay_loads(&my_store(target).await?, w, MY_LOADS).await
}

// ---- SQLite ----

async fn lite_store(target: &Target) -> Result<SqliteStore, BenchError> {
    SqliteStore::connect(&db_sqlite::url(target, "ours"))
        .await
        .map(|store| store.keep_connections(u32::MAX))
        .map_err(|e| BenchError::framework(ME, "SqliteStore::connect", e))
}

/// Creates the store's file and tables; seeds the load streams when `seed`.
pub(crate) async fn prepare_sqlite(target: &Target, seed: bool) -> Result<(), BenchError> {
    let store = lite_store(target).await?;
    store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
    if seed {
        let mut conn = store.pool().acquire().await.map_err(|e| BenchError::framework(ME, "acquire", e))?;
        db_sqlite::seed_streams(&mut conn, "events").await?;
        conn.close().await.ok();
    }
    // Children open the database afresh: nothing of this process stays connected.
    store.pool().close().await;
    Ok(())
}

pub(crate) async fn lite_seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    seq(&lite_store(target).await?, w, rep, LITE_SEQ).await
}

pub(crate) async fn lite_load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    replay_loads(&lite_store(target).await?, w, LITE_LOADS).await
}
