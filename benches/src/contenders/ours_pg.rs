//! cqrs-ddd on PostgreSQL: `cqrs-ddd-sqlx`'s `PgStore` (its own tables, in schema
//! `cqrs_ddd`), every command through `Mediator::send`, configured as an application on
//! a hot path is: the store's pool (no ping on acquire; it serves the store alone, which
//! keeps every connection between its statements) and the aggregate cache, so a command
//! on an aggregate this process already holds reads nothing and its events go in with
//! one statement. Loads read the stream (and, for `load_snap_100k`, the snapshot).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_ddd::ports::{ProjectionStore, Snapshot, SnapshotStore, StreamKey};
use cqrs_ddd::projection::{ProjectionWorker, WorkerOptions};
use cqrs_ddd::{Aggregate, App};
use cqrs_ddd_sqlx::PgStore;
use sqlx::postgres::PgPoolOptions;

use super::ours_sql::{ME, app, check_balance, conc, replay_loads, seq};
use crate::db::{SEEDED_AMOUNT, Target, load_stream_id};
use crate::domain::ours::{Account, BenchBalances, DepositMany};
use crate::error::{BenchError, SqlContext};
use crate::measure::{Outcome, median_of, millis, peak_rss_mib, sequential};
use crate::scenarios::{
    LOAD_REDIS_SNAP, LOAD_RSS, LOAD_SNAP, LOADS, PG_BATCH, PG_CONC16, PG_SCALE, PG_SEQ, PROJECTION,
    PROJECTION_ACCOUNTS, PROJECTION_BATCH, PROJECTION_EVENTS, SCALE_COMMANDS, SNAPSHOT_EVERY, Workload,
};
use crate::stats::count_f64;

const SCHEMA: &str = "cqrs_ddd";

pub(crate) async fn store(target: &Target, connections: u32) -> Result<PgStore, BenchError> {
    store_in(target, connections, SCHEMA).await
}

/// The schema of the scale row of `n` aggregates.
fn scale_schema(n: usize) -> String {
    format!("{SCHEMA}_scale_{n}")
}

async fn store_in(target: &Target, connections: u32, schema: &str) -> Result<PgStore, BenchError> {
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(target.options()?)
        .await
        .map_err(|source| BenchError::connecting(target.shown(), source))?;
    // The pool serves the store alone: it keeps every connection between statements.
    let store = PgStore::from_pool(pool, schema).map_err(|e| BenchError::framework(ME, "PgStore::from_pool", e))?;
    Ok(store.keep_connections(connections))
}

/// Scenario 20's schemas: one per size, migrated, holding `n` accounts of one deposit.
pub(crate) async fn prepare_scale(target: &Target) -> Result<(), BenchError> {
    for (n, _) in PG_SCALE {
        let schema = scale_schema(n);
        let store = store_in(target, 2, &schema).await?;
        store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
        let insert = format!(
            "INSERT INTO {schema}.events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
             SELECT $1, 'scale-' || s, 1, gen_random_uuid(), 'Deposited', 1, '{{\"amount\":{SEEDED_AMOUNT}}}'::jsonb, now() \
             FROM generate_series(0, $2::bigint - 1) s"
        );
        sqlx::query(&insert)
            .bind(Account::TYPE)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(store.pool())
            .await
            .sql(&format!("seeding {schema}.events with {n} accounts"))?;
        sqlx::query(&format!("ANALYZE {schema}.events"))
            .execute(store.pool())
            .await
            .sql("analyzing the scale table")?;
    }
    Ok(())
}

/// Scenario 20: per size, [`SCALE_COMMANDS`] commands, each on an account this
/// application has not touched yet (repetition `rep` moves every one to the next
/// account), so every size does the same work: load one event, decide, commit.
pub(crate) async fn scale(target: &Target, rep: usize) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    for (n, id) in PG_SCALE {
        let schema = scale_schema(n);
        let store = store_in(target, 2, &schema).await?;
        let app = app(&store, SCALE_COMMANDS)?;
        let stride = (n / SCALE_COMMANDS).max(1);
        let plan: Vec<String> = (0..SCALE_COMMANDS).map(|k| format!("scale-{}", (k * stride + rep) % n)).collect();
        let lat = sequential(plan.len(), async |k| super::ours_sql::deposit(&app, &plan[k]).await).await?;
        let written: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.events WHERE version > 1"))
            .fetch_one(store.pool())
            .await
            .sql("counting the scale row's commands")?;
        let expected = (rep + 1) * SCALE_COMMANDS;
        if usize::try_from(written).ok() != Some(expected) {
            return Err(BenchError::Check(format!("{ME}: {schema} holds {written} deposits, expected {expected}")));
        }
        out.figure(id, 1e6 / lat.per_second());
    }
    Ok(out)
}

/// Creates its tables; seeds the load streams (and the 100k stream's snapshot) when `seed`.
pub(crate) async fn prepare(target: &Target, seed: bool) -> Result<Option<()>, BenchError> {
    let store = store(target, 2).await?;
    store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
    if !seed {
        return Ok(Some(()));
    }
    let insert = format!(
        "INSERT INTO {SCHEMA}.events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
         SELECT $1, $2, s, gen_random_uuid(), 'Deposited', 1, '{{\"amount\":{SEEDED_AMOUNT}}}'::jsonb, now() \
         FROM generate_series(1, $3::bigint) s"
    );
    for (n, _) in LOADS {
        sqlx::query(&insert)
            .bind(Account::TYPE)
            .bind(load_stream_id(n))
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(store.pool())
            .await
            .sql(&format!("seeding {SCHEMA}.events with {n} events"))?;
    }
    let (n, _) = LOAD_SNAP;
    let at = n - SNAPSHOT_EVERY;
    let snapshot = Snapshot {
        stream: StreamKey::new(Account::TYPE, load_stream_id(n)),
        version: at as u64,
        state: format!("{{\"balance\":{}}}", at as u64 * SEEDED_AMOUNT),
        taken_at: chrono::Utc::now(),
    };
    store.save(snapshot).await.map_err(|e| BenchError::framework(ME, "saving the seed snapshot", e))?;
    let projection_events = format!(
        "INSERT INTO {SCHEMA}.events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
         SELECT $1, 'proj-' || (s % $2), s / $2 + 1, gen_random_uuid(), 'Deposited', 1, '{{\"amount\":{SEEDED_AMOUNT}}}'::json, now() \
         FROM generate_series(0, $3::bigint - 1) s"
    );
    sqlx::query(&projection_events)
        .bind(Account::TYPE)
        .bind(i64::try_from(PROJECTION_ACCOUNTS).unwrap_or(i64::MAX))
        .bind(i64::try_from(PROJECTION_EVENTS).unwrap_or(i64::MAX))
        .execute(store.pool())
        .await
        .sql("seeding the projection events")?;
    for table in ["events", "snapshots"] {
        let vacuum = format!("VACUUM ANALYZE {SCHEMA}.{table}");
        sqlx::raw_sql(&vacuum).execute(store.pool()).await.sql(&vacuum)?;
    }
    Ok(Some(()))
}

/// Scenario 4: one client, commands round robin over the aggregates.
pub(crate) async fn pg_seq(target: &Target, w: &Workload, rep: usize) -> Result<Option<Outcome>, BenchError> {
    seq(&store(target, 2).await?, w, rep, PG_SEQ).await.map(Some)
}

/// Scenario 5: `pg_clients` tasks at once on one application, distinct aggregates each.
pub(crate) async fn pg_conc(target: &Target, w: &Workload, rep: usize) -> Result<Option<Outcome>, BenchError> {
    let clients = u32::try_from(w.pg_clients).unwrap_or(16);
    conc(&store(target, clients).await?, w, rep, PG_CONC16).await.map(Some)
}

/// Scenario 6: each command decides `batch_events` events.
pub(crate) async fn pg_batch(target: &Target, w: &Workload, rep: usize) -> Result<Option<Outcome>, BenchError> {
    let store = store(target, 2).await?;
    let app = app(&store, 16)?;
    let id = |k: usize| format!("batch-r{rep}-{k}");
    let lat = sequential(w.batch_commands, async |k| {
        app.send(DepositMany { account: id(k), amount: 1, count: w.batch_events })
            .await
            .map_err(|e| BenchError::framework(ME, "send", e))
    })
    .await?;
    check_balance(&app, &id(0), w.batch_events as usize).await?;
    let mut out = Outcome::default();
    out.figure(PG_BATCH, lat.per_second() * f64::from(w.batch_events));
    Ok(Some(out))
}

/// Scenario 7: load of the seeded streams (a full replay), and from the snapshot.
pub(crate) async fn load(target: &Target, w: &Workload) -> Result<Option<Outcome>, BenchError> {
    let store = store(target, 2).await?;
    let mut out = replay_loads(&store, w, LOADS).await?;
    let with_snapshots = app(&store, 16)?;
    let (n, id) = LOAD_SNAP;
    let stream = load_stream_id(n);
    let t = median_of(w.loads_timed[2], async || check_balance(&with_snapshots, &stream, n).await).await?;
    out.figure(id, millis(t));
    // The same snapshot, kept in Redis: the aggregate state every process shares.
    let (n, id) = LOAD_REDIS_SNAP;
    let redis = cqrs_ddd_redis::RedisSnapshots::new(&crate::contenders::redis_lock::url())
        .map_err(|e| BenchError::framework(ME, "RedisSnapshots::new", e))?
        .with_prefix(format!("bench:{}:snapshot:", std::process::id()));
    let at = n - SNAPSHOT_EVERY;
    let snapshot = Snapshot {
        stream: StreamKey::new(Account::TYPE, load_stream_id(n)),
        version: at as u64,
        state: format!("{{\"balance\":{}}}", at as u64 * SEEDED_AMOUNT),
        taken_at: chrono::Utc::now(),
    };
    redis.save(snapshot).await.map_err(|e| BenchError::framework(ME, "saving the snapshot in Redis", e))?;
    let from_redis = App::builder()
        .event_store(store.clone())
        .snapshot_store(redis)
        .snapshot::<Account>(cqrs_ddd::SnapshotPolicy::every(SNAPSHOT_EVERY as u64))
        .build()
        .map_err(|e| BenchError::framework(ME, "App::build", e))?;
    let t = median_of(w.loads_timed[2], async || check_balance(&from_redis, &stream, n).await).await?;
    out.figure(id, millis(t));
    Ok(Some(out))
}

/// Scenario 8: a projection rebuilt from scratch over every event of the table, in
/// batches of `PROJECTION_BATCH`, into the document store.
pub(crate) async fn projection(target: &Target) -> Result<Outcome, BenchError> {
    let store = store(target, 2).await?;
    let events: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {SCHEMA}.events"))
        .fetch_one(store.pool())
        .await
        .sql("counting events")?;
    let worker = ProjectionWorker::new(BenchBalances, Arc::new(store.clone()), Arc::new(store.clone()))
        .with_options(WorkerOptions { batch_size: PROJECTION_BATCH, ..WorkerOptions::default() });
    let started = Instant::now();
    let applied = worker.rebuild(|_| {}).await.map_err(|e| BenchError::framework(ME, "rebuild", e))?;
    let elapsed = started.elapsed();
    if i64::try_from(applied).ok() != Some(events) {
        return Err(BenchError::Check(format!("{ME}: the projection applied {applied} of {events} events")));
    }
    let doc = ProjectionStore::document(&store, "bench_balances", "proj-0")
        .await
        .map_err(|e| BenchError::framework(ME, "document", e))?;
    let expected = (PROJECTION_EVENTS / PROJECTION_ACCOUNTS).to_string();
    if doc.map(|d| d.json) != Some(expected.clone()) {
        return Err(BenchError::Check(format!("{ME}: proj-0 should have balance {expected}")));
    }
    let mut out = Outcome::default();
    out.figure(PROJECTION, count_f64(usize::try_from(applied).unwrap_or(usize::MAX)) / elapsed.as_secs_f64());
    Ok(out)
}

/// Scenario 9: one load of the 100k stream in a fresh process; its peak resident memory.
pub(crate) async fn load_rss(target: &Target) -> Result<Option<Outcome>, BenchError> {
    let store = store(target, 1).await?;
    let replay = App::builder().event_store(store).build().map_err(|e| BenchError::framework(ME, "App::build", e))?;
    let before = peak_rss_mib()?;
    let (n, id) = LOAD_RSS;
    check_balance(&replay, &load_stream_id(n), n).await?;
    let mut out = Outcome::default();
    out.figure(id, peak_rss_mib()?);
    out.note(id, before, "MiB peak before the load");
    Ok(Some(out))
}
