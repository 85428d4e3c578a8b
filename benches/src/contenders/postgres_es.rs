//! postgres-es 0.5: `postgres_cqrs` (cqrs-es's `CqrsFramework` on `PersistedEventStore`)
//! over a sqlx pool, tables from its `db/init.sql`. Each command loads the aggregate's
//! events, decides, and inserts the new ones in a transaction.

use std::sync::Arc;

use cqrs_es::EventStore;
use cqrs_es::persist::PersistedEventStore;
use futures::future::BoxFuture;
use postgres_es::{PostgresCqrs, PostgresEventRepository, postgres_cqrs};

use crate::db::{self, Target, load_stream_id};
use crate::domain::cqrs_es::{Account, AccountCommand};
use crate::error::BenchError;
use crate::measure::{Outcome, client_plan, concurrent, median_of, millis, peak_rss_mib, sequential};
use crate::scenarios::{LOAD_RSS, LOAD_SNAP, LOADS, PG_BATCH, PG_CONC16, PG_SEQ, SNAPSHOT_EVERY, Workload};

const ME: &str = "postgres-es";
/// postgres-es's default table names.
const EVENTS: &str = "events";
const SNAPSHOTS: &str = "snapshots";
/// The pool size of postgres-es's own `default_postgress_pool`.
const POOL_SIZE: u32 = 10;

type Store = PersistedEventStore<PostgresEventRepository, Account>;

/// Creates its tables, and seeds the load scenarios' streams when `seed`.
pub(crate) async fn prepare(target: &Target, seed: bool) -> Result<(), BenchError> {
    let mut conn = target.connect().await?;
    db::create_event_tables(&mut conn, EVENTS, SNAPSHOTS).await?;
    if seed {
        db::seed_streams(&mut conn, EVENTS, SNAPSHOTS).await?;
    }
    Ok(())
}

async fn framework(target: &Target, pool_size: u32) -> Result<(PostgresCqrs<Account>, Store), BenchError> {
    let pool = target.pool(pool_size).await?;
    let store = Store::new_event_store(PostgresEventRepository::new(pool.clone()));
    Ok((postgres_cqrs(pool, vec![], ()), store))
}

async fn execute(cqrs: &PostgresCqrs<Account>, account: &str, command: AccountCommand) -> Result<(), BenchError> {
    cqrs.execute(account, command).await.map_err(|e| BenchError::framework(ME, "execute", e))
}

async fn check_balance(store: &Store, account: &str, expected: usize) -> Result<(), BenchError> {
    let ctx = store.load_aggregate(account).await.map_err(|e| BenchError::framework(ME, "load_aggregate", e))?;
    let balance = ctx.aggregate.balance;
    if usize::try_from(balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("{ME}: {account} has balance {balance}, expected {expected}")));
    }
    Ok(())
}

/// Scenario 4: one client, commands round robin over the aggregates.
pub(crate) async fn pg_seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let (cqrs, store) = framework(target, POOL_SIZE).await?;
    let ids: Vec<String> = (0..w.pg_aggregates).map(|a| format!("seq-r{rep}-{a}")).collect();
    let deposit = AccountCommand::Deposit { amount: 1 };
    let lat = sequential(w.pg_commands, async |k| execute(&cqrs, &ids[k % ids.len()], deposit.clone()).await).await?;
    check_balance(&store, &ids[0], w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(PG_SEQ, &lat);
    Ok(out)
}

/// Scenario 5: `pg_clients` tasks at once, each on its own aggregates.
pub(crate) async fn pg_conc(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let pool_size = u32::try_from(w.pg_clients).unwrap_or(u32::MAX).max(POOL_SIZE);
    let (cqrs, store) = framework(target, pool_size).await?;
    let cqrs = Arc::new(cqrs);
    let clients = (0..w.pg_clients)
        .map(|c| ((cqrs.clone(), rep), client_plan(c, w.pg_clients, w.pg_commands, w.pg_aggregates)))
        .collect();
    let lat = concurrent(clients, conc_command).await?;
    check_balance(&store, &conc_id(rep, 0), w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(PG_CONC16, &lat);
    Ok(out)
}

fn conc_id(rep: usize, a: usize) -> String {
    format!("conc-r{rep}-{a}")
}

fn conc_command(client: &mut (Arc<PostgresCqrs<Account>>, usize), a: usize) -> BoxFuture<'_, Result<(), BenchError>> {
    Box::pin(async move { execute(&client.0, &conc_id(client.1, a), AccountCommand::Deposit { amount: 1 }).await })
}

/// Scenario 6: each command creates an aggregate with `batch_events` events.
pub(crate) async fn pg_batch(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let (cqrs, store) = framework(target, POOL_SIZE).await?;
    let many = AccountCommand::DepositMany { amount: 1, count: w.batch_events };
    let id = |k: usize| format!("batch-r{rep}-{k}");
    let lat = sequential(w.batch_commands, async |k| execute(&cqrs, &id(k), many.clone()).await).await?;
    check_balance(&store, &id(0), w.batch_events as usize).await?;
    let mut out = Outcome::default();
    out.figure(PG_BATCH, lat.per_second() * f64::from(w.batch_events));
    Ok(out)
}

/// Scenario 7: `load_aggregate` of the seeded streams, and of the 100k stream through a
/// snapshot store (snapshot every 100 events).
pub(crate) async fn load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    let pool = target.pool(POOL_SIZE).await?;
    let plain = Store::new_event_store(PostgresEventRepository::new(pool.clone()));
    let mut out = Outcome::default();
    for ((n, id), timed) in LOADS.into_iter().zip(w.loads_timed) {
        let t = median_of(timed, async || check_balance(&plain, &load_stream_id(n), n).await).await?;
        out.figure(id, millis(t));
    }
    let snapshots = Store::new_snapshot_store(PostgresEventRepository::new(pool), SNAPSHOT_EVERY);
    let (n, id) = LOAD_SNAP;
    let t = median_of(w.loads_timed[2], async || check_balance(&snapshots, &load_stream_id(n), n).await).await?;
    out.figure(id, millis(t));
    Ok(out)
}

/// Scenario 9: one load of the 100k stream in a fresh process; its peak resident memory.
pub(crate) async fn load_rss(target: &Target) -> Result<Outcome, BenchError> {
    let pool = target.pool(POOL_SIZE).await?;
    let store = Store::new_event_store(PostgresEventRepository::new(pool));
    let before = peak_rss_mib()?;
    let (n, id) = LOAD_RSS;
    check_balance(&store, &load_stream_id(n), n).await?;
    let mut out = Outcome::default();
    out.figure(id, peak_rss_mib()?);
    out.note(id, before, "MiB peak before the load");
    Ok(out)
}
