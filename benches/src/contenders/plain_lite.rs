//! Plain sqlx on SQLite: a table of the same shape as cqrs-ddd's `events`, in a file of
//! its own, set up as the store sets up its files (WAL, `synchronous = FULL`, a busy
//! timeout of 30 s), written and read the fastest straightforward way: one dedicated
//! `SqliteConnection`, one autocommit INSERT per command (the aggregate's version kept in
//! memory, so nothing is read first), and a streamed SELECT decoded with serde for a
//! load. No framework: the physical limit.

use futures::TryStreamExt;
use sqlx::{Connection, SqliteConnection};

use crate::db::{Target, load_stream_id};
use crate::db_sqlite;
use crate::domain::plain::{Account, AccountEvent, Deposited};
use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::measure::{Outcome, median_of, millis, sequential};
use crate::scenarios::{Backend, LITE_LOADS, LITE_SEQ, Workload};

const DB: Backend = Backend::Sqlite;
const EVENTS: &str = "plain_events";
/// The store's `events` table, under another name.
const DDL: &str = "CREATE TABLE plain_events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL DEFAULT '',
    stream_type     TEXT NOT NULL,
    stream_id       TEXT NOT NULL,
    version         INTEGER NOT NULL,
    event_id        BLOB NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    correlation_id  BLOB,
    causation_id    BLOB,
    principal       TEXT,
    headers         TEXT CHECK (headers IS NULL OR json_valid(headers)),
    occurred_at     TEXT NOT NULL,
    CONSTRAINT plain_events_stream_version UNIQUE (tenant_id, stream_type, stream_id, version)
)";
const INSERT: &str = "INSERT INTO plain_events \
    (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
    VALUES (?, ?, ?, ?, ?, 1, ?, ?)";
const SELECT: &str = "SELECT event_type, payload FROM plain_events \
    WHERE tenant_id = '' AND stream_type = ? AND stream_id = ? ORDER BY version";

async fn connect(target: &Target) -> Result<SqliteConnection, BenchError> {
    db_sqlite::connect(&db_sqlite::file(target, "plain")).await
}

/// Creates its file and table, and seeds the load streams when `seed`.
pub(crate) async fn prepare(target: &Target, seed: bool) -> Result<(), BenchError> {
    let mut conn = connect(target).await?;
    sqlx::raw_sql(DDL).execute(&mut conn).await.sql_on(DB, "CREATE TABLE plain_events")?;
    if seed {
        db_sqlite::seed_streams(&mut conn, EVENTS).await?;
    }
    conn.close().await.ok();
    Ok(())
}

/// Folds the stream's events, streaming the rows.
async fn load_events(conn: &mut SqliteConnection, id: &str) -> Result<Account, BenchError> {
    let mut account = Account::default();
    let mut rows = sqlx::query_as::<_, (String, String)>(SELECT).bind(AGGREGATE_TYPE).bind(id).fetch(conn);
    while let Some((event_type, payload)) = rows.try_next().await.sql_on(DB, "SELECT FROM plain_events")? {
        account.apply(
            &AccountEvent::from_row(&event_type, &payload).map_err(|e| BenchError::Check(format!("sqlx: {e}")))?,
        );
    }
    Ok(account)
}

async fn check(conn: &mut SqliteConnection, id: &str, expected: usize) -> Result<(), BenchError> {
    let account = load_events(conn, id).await?;
    if usize::try_from(account.balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("sqlx: {id} has balance {}, expected {expected}", account.balance)));
    }
    Ok(())
}

/// Scenario 13: one client, commands round robin over the aggregates.
pub(crate) async fn seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let mut conn = connect(target).await?;
    let ids: Vec<String> = (0..w.pg_aggregates).map(|a| format!("seq-r{rep}-{a}")).collect();
    let mut versions = vec![0i64; w.pg_aggregates];
    let lat = sequential(w.pg_commands, async |k| {
        let a = k % w.pg_aggregates;
        versions[a] += 1;
        let event_id = sqlx::types::Uuid::now_v7();
        let payload =
            serde_json::to_string(&Deposited { amount: 1 }).map_err(|e| BenchError::Check(format!("sqlx: {e}")))?;
        sqlx::query(INSERT)
            .bind(AGGREGATE_TYPE)
            .bind(&ids[a])
            .bind(versions[a])
            .bind(event_id.as_bytes().as_slice())
            .bind(DEPOSITED)
            .bind(payload)
            .bind(chrono::Utc::now())
            .execute(&mut conn)
            .await
            .sql_on(DB, "INSERT INTO plain_events")?;
        Ok(())
    })
    .await?;
    check(&mut conn, &ids[0], w.pg_commands / w.pg_aggregates).await?;
    conn.close().await.ok();
    let mut out = Outcome::default();
    out.rates(LITE_SEQ, &lat);
    Ok(out)
}

/// Scenario 14: SELECT + decode + fold of the seeded streams.
pub(crate) async fn load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    let mut conn = connect(target).await?;
    let mut out = Outcome::default();
    for ((n, id), timed) in LITE_LOADS.into_iter().zip(w.loads_timed) {
        let stream = load_stream_id(n);
        let t = median_of(timed, async || check(&mut conn, &stream, n).await).await?;
        out.figure(id, millis(t));
    }
    conn.close().await.ok();
    Ok(out)
}
