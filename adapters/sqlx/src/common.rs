//! What every dialect shares: error mapping, transactions, tenant, number and time
//! conversions, migrations, conflict reporting.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{CommitBatch, Cursor, OutboxStatus, SagaKey, StateWrite, StreamKey};
use cqrs_ddd::{Error, Metadata};
use std::sync::Arc;

use sqlx::{Database, TransactionManager};
use uuid::Uuid;

use crate::conns::{Conns, Lease};
use crate::dialect::{Dialect, instant};
use crate::exec::{SqlConn, Stmt};
use crate::rows::Cols;
use crate::store::SqlStore;

/// Maps a sqlx error to the framework's store error ([`Error::Unstorable`] when the
/// database refused a value; the callers that know which value use
/// [`crate::storable::write_err`]).
pub(crate) fn store_err(e: sqlx::Error) -> Error {
    crate::storable::write_err(e, || "a value".to_owned())
}

/// A pooled connection inside a transaction this crate opened, safe to drop at any await
/// point.
///
/// sqlx's own `Transaction` rolls back on drop only once it exists: a future dropped
/// while `BEGIN` is on the wire (or between `BEGIN` and its bookkeeping) returns the
/// connection to the pool inside a transaction nobody will end, and every later user of
/// that connection fails ("non-zero transaction depth", "database is locked") or, on
/// PostgreSQL, writes into a transaction that never commits. This guard marks its
/// connection to be closed instead of reused unless the transaction was seen to end
/// (committed or rolled back): closing ends the transaction on the server, so the pool
/// only ever holds clean connections. The cost is one new connection after a cancelled or
/// failed transaction.
pub(crate) struct Txn<DB: Database> {
    conn: Lease<DB>,
    ended: bool,
}

impl<DB: Database> Txn<DB> {
    /// Takes one of the store's connections and begins a transaction on it (`statement`,
    /// like `BEGIN IMMEDIATE`, or the database's plain `BEGIN`).
    pub(crate) async fn begin(conns: &Arc<Conns<DB>>, statement: Option<&'static str>) -> Result<Self, Error> {
        let conn = conns.lease().await.map_err(store_err)?;
        let mut txn = Txn { conn, ended: false };
        DB::TransactionManager::begin(&mut txn.conn, statement.map(Cow::Borrowed)).await.map_err(store_err)?;
        Ok(txn)
    }

    /// Commits; the store keeps the connection.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        DB::TransactionManager::commit(&mut self.conn).await?;
        self.ended = true;
        self.conn.done();
        Ok(())
    }

    /// Rolls back; the store keeps the connection.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        DB::TransactionManager::rollback(&mut self.conn).await?;
        self.ended = true;
        self.conn.done();
        Ok(())
    }

    /// Rolls back, then returns `e` (the error that made the transaction fail).
    pub(crate) async fn fail<T>(self, e: Error) -> Result<T, Error> {
        // A rollback that fails leaves the connection to be closed on drop.
        let _ = self.rollback().await;
        Err(e)
    }
}

impl<DB: Database> Deref for Txn<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

/// Statements in the transaction; the connection is kept by the store when the
/// transaction is seen to end (see [`Lease`]).
impl<DB: Database> DerefMut for Txn<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> Drop for Txn<DB> {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.close_on_drop();
        }
    }
}

/// Whether a transaction failed because the database chose it as a deadlock victim or
/// could not serialize it (SQLSTATE 40001, 40P01): the database rolled all of it back,
/// and running it again can succeed.
pub(crate) fn is_deadlock(e: &Error) -> bool {
    let Error::Store(inner) = e else { return false };
    matches!(inner.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// Runs a transaction of the store's own up to four times while it fails as a deadlock
/// victim ([`is_deadlock`]), after a short random pause; any other outcome is returned.
pub(crate) async fn retry_deadlocks<T, F, Fut>(mut run: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 0u64;
    loop {
        match run().await {
            Err(e) if is_deadlock(&e) && attempt < 3 => {
                attempt += 1;
                let pause = Duration::from_millis(attempt * 5 + u64::from(Uuid::now_v7().as_bytes()[15] % 10));
                tracing::debug!(error = %e, attempt, "a deadlocked transaction runs again");
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Whether a database error is a unique-key violation (a version already taken).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// The primary key of `processed_commands` (named in the PostgreSQL migration), which
/// tells a repeated idempotency key from a version conflict.
pub(crate) const PROCESSED_KEY: &str = "processed_commands_key";

/// Whether a database error is a violation of the constraint `name`.
pub(crate) fn violates(e: &sqlx::Error, name: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some(name))
}

/// The tenant column: `''` stands for "no tenant" so the unique key holds for it too.
pub(crate) fn tenant(key: &StreamKey) -> &str {
    key.tenant_id.as_deref().unwrap_or("")
}

/// The tenant column of a row (`''` for none: documents, scheduled commands), refusing
/// an empty tenant id.
pub(crate) fn tenant_column(tenant: Option<&str>) -> cqrs_ddd::Result<&str> {
    cqrs_ddd::ports::check_tenant(tenant)?;
    Ok(tenant.unwrap_or(""))
}

/// The tenant column of a saga.
pub(crate) fn saga_tenant(key: &SagaKey) -> &str {
    key.tenant_id.as_deref().unwrap_or("")
}

pub(crate) fn tenant_from(column: String) -> Option<String> {
    (!column.is_empty()).then_some(column)
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::store(format!("{what} {v} does not fit the database's BIGINT")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::store(format!("stored {what} {v} is negative")))
}

pub(crate) fn to_i32(v: u32, what: &str) -> Result<i32, Error> {
    i32::try_from(v).map_err(|_| Error::store(format!("{what} {v} does not fit the database's INTEGER")))
}

/// A `LIMIT` argument.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every time is kept to the millisecond on every database (SQLite compares times as
/// milliseconds since the epoch), so a record loads back equal on each.
pub(crate) fn to_ms_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The latest time every database stores: the end of year 9999.
pub(crate) fn end_of_time() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(253_402_300_799_999).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// When a claim taken at `now` for `lease` runs out: at the latest the end of year 9999
/// (an endless lease), which every database stores.
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map_or_else(end_of_time, |t| t.min(end_of_time()))
}

/// Headers as a JSON column: `None` when empty, so the common case stores NULL.
pub(crate) fn headers_json(headers: &BTreeMap<String, String>) -> Option<String> {
    if headers.is_empty() { None } else { serde_json::to_string(headers).ok() }
}

/// Headers from their JSON column: NULL is none; anything but a JSON object of strings is
/// refused with the reason.
pub(crate) fn headers_from(json: Option<String>) -> Result<BTreeMap<String, String>, String> {
    match json {
        None => Ok(BTreeMap::new()),
        Some(j) => serde_json::from_str(&j).map_err(|e| format!("its headers are not a JSON object of strings ({e})")),
    }
}

/// The headers of a row that is not an event (an outbox message, a scheduled command),
/// as [`Error::CorruptRow`] naming it when they are malformed.
pub(crate) fn row_headers(
    json: Option<String>,
    row: impl FnOnce() -> String,
) -> Result<BTreeMap<String, String>, Error> {
    headers_from(json).map_err(|reason| Error::CorruptRow { stream: row(), version: 0, reason, at: None })
}

/// Whether an event append of the same stream at the same version guards a state
/// write: the events' unique key then lets one writer through.
pub(crate) fn is_guarded(batch: &CommitBatch, s: &StateWrite) -> bool {
    batch.appends.iter().any(|a| a.stream == s.stream && a.expected_version == s.expected_version)
}

/// State writes that no event append of the same stream guards: they are written with
/// their own version condition.
pub(crate) fn has_unguarded_states(batch: &CommitBatch) -> bool {
    batch.states.iter().any(|s| !is_guarded(batch, s))
}

/// Opens one connection within `timeout` and closes it, so that a server that cannot be
/// used fails at once with its real cause as [`Error::Connect`] (a pool alone retries a
/// refused connection until its acquire timeout, 30 s, and then says only that it timed
/// out). `reason` words a failed attempt; `target` is where it went, without
/// credentials.
pub(crate) async fn first_connection<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
    backend: &'static str,
    target: String,
    reason: impl FnOnce(&sqlx::Error) -> String,
) -> Result<(), Error> {
    let reason = match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(first)) => {
            let _ = first.close().await;
            return Ok(());
        }
        Ok(Err(e)) => reason(&e),
        Err(_) => format!("no answer within {timeout:?}: is this a {backend} server, reachable from here?"),
    };
    Err(Error::Connect { backend, target, reason })
}

/// Why a connection to `host:port` failed, when the network says why.
pub(crate) fn network_reason(e: &sqlx::Error, host: &str, port: u16, server: &str) -> Option<String> {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some(format!("connection refused at {host}:{port}: is {server} running and listening there?"))
        }
        sqlx::Error::Io(io) => Some(format!("cannot reach {host}:{port}: {io}")),
        _ => None,
    }
}

/// Runs the migrations of `list` in one write transaction (see [`migrate_on`]).
pub(crate) async fn migrate_in_txn<D: Dialect>(
    store: &SqlStore<D>,
    setup: &str,
    table: &str,
    list: &[Migration],
    render: impl Fn(&str) -> String,
) -> Result<(), Error> {
    let mut tx = store.begin_write().await?;
    match migrate_on(store, &mut tx, setup, table, list, render).await {
        Ok(()) => tx.commit().await.map_err(store_err),
        Err(e) => tx.fail(e).await,
    }
}

/// A migration: its number and its SQL.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

/// Runs `setup` (which takes the dialect's migration lock and creates the table of
/// applied migrations, `table`), then every migration of `list` not applied yet, each
/// recorded in `table`. The caller decides what a transaction covers.
pub(crate) async fn migrate_on<D: Dialect>(
    store: &SqlStore<D>,
    conn: &mut D::Conn,
    setup: &str,
    table: &str,
    list: &[Migration],
    render: impl Fn(&str) -> String,
) -> Result<(), Error> {
    conn.script(setup).await.map_err(store_err)?;
    let select = format!("SELECT version FROM {table}");
    let applied: Vec<i64> = conn
        .rows(Stmt::new(&select))
        .await
        .map_err(store_err)?
        .iter()
        .map(|r| Cols::<D>::of(r).int("version"))
        .collect::<Result<_, _>>()
        .map_err(store_err)?;
    let record = store.dialect.render(&format!("INSERT INTO {table} (version, applied_at) VALUES (?, ?)"));
    for m in list.iter().filter(|m| !applied.contains(&m.version)) {
        conn.script(&render(m.sql)).await.map_err(|e| Error::store(format!("migration {}: {e}", m.version)))?;
        conn.run(Stmt::new(&record).int(m.version).arg(instant::<D>(Utc::now()))).await.map_err(store_err)?;
    }
    Ok(())
}

/// The conflict error for the first stream of the batch whose actual version differs.
pub(crate) fn conflict(stream: &StreamKey, expected: u64, actual: u64) -> Error {
    Error::Conflict { stream: stream.to_string(), expected, actual }
}

/// After a unique violation: the conflict of the first stream whose actual version
/// (`actuals`, in append order) differs from the expected one. When none differs any
/// more, the other writer's version is past the expected one all the same.
pub(crate) fn conflict_in(batch: &CommitBatch, actuals: &[u64]) -> Error {
    let mut pairs = batch.appends.iter().zip(actuals);
    if let Some((a, &actual)) = pairs.clone().find(|(a, actual)| **actual != a.expected_version) {
        return conflict(&a.stream, a.expected_version, actual);
    }
    match pairs.next() {
        Some((a, &actual)) => conflict(&a.stream, a.expected_version, actual.max(a.expected_version + 1)),
        None => Error::store("unique violation on a batch without events"),
    }
}

/// The `status` column of the outbox.
pub(crate) fn outbox_status(status: &str) -> OutboxStatus {
    match status {
        "published" => OutboxStatus::Published,
        "dead" => OutboxStatus::Dead,
        _ => OutboxStatus::Pending,
    }
}

/// Another worker moved a projection checkpoint first.
pub(crate) fn checkpoint_conflict(projection: &str, partition: u32, expected: Option<Cursor>) -> Error {
    Error::Conflict {
        stream: format!("checkpoint {projection}/{partition}"),
        expected: expected.map_or(0, |c| c.position),
        actual: 0,
    }
}

/// The metadata columns of a scheduled command, in the order the statements bind them.
pub(crate) struct MetadataColumns<'a> {
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) tenant_id: &'a str,
    pub(crate) principal: Option<&'a str>,
    pub(crate) headers: Option<String>,
}

impl<'a> MetadataColumns<'a> {
    pub(crate) fn of(m: &'a Metadata) -> Self {
        MetadataColumns {
            correlation_id: m.correlation_id,
            causation_id: m.causation_id,
            tenant_id: m.tenant_id.as_deref().unwrap_or(""),
            principal: m.principal.as_deref(),
            headers: headers_json(&m.headers),
        }
    }
}

/// A saga save found the stored instance at another version (`actual`, 0 when missing).
pub(crate) fn saga_conflict(key: &SagaKey, expected: u64, actual: Option<i64>) -> Result<(), Error> {
    let actual = actual.map_or(Ok(0), |v| to_u64(v, "saga version"))?;
    Err(Error::Conflict { stream: key.to_string(), expected, actual })
}
