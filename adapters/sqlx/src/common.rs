//! What both databases share: error mapping, tenant, number and time conversions, the
//! migration list, conflict reporting, saga and scheduled-command rows.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{
    CommitBatch, Cursor, OutboxStatus, SagaKey, SagaRecord, ScheduledCommand, StoredEvent, StreamEvent, StreamKey,
};
use cqrs_ddd::{Error, Metadata};
use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Database, Decode, Pool, Row, TransactionManager, Type};
use uuid::Uuid;

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
    conn: PoolConnection<DB>,
    ended: bool,
}

impl<DB: Database> Txn<DB> {
    /// Takes a connection from `pool` and begins a transaction on it (`statement`, like
    /// `BEGIN IMMEDIATE`, or the database's plain `BEGIN`).
    pub(crate) async fn begin(pool: &Pool<DB>, statement: Option<&'static str>) -> Result<Self, Error> {
        let conn = pool.acquire().await.map_err(store_err)?;
        let mut txn = Txn { conn, ended: false };
        DB::TransactionManager::begin(&mut txn.conn, statement.map(Cow::Borrowed)).await.map_err(store_err)?;
        Ok(txn)
    }

    /// Commits; the connection goes back to the pool.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        DB::TransactionManager::commit(&mut self.conn).await?;
        self.ended = true;
        Ok(())
    }

    /// Rolls back; the connection goes back to the pool.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        DB::TransactionManager::rollback(&mut self.conn).await?;
        self.ended = true;
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

/// Saga and schedule times are kept to the millisecond on both databases (SQLite stores
/// milliseconds since the epoch), so a record loads back equal on either.
pub(crate) fn to_ms_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A time stored as milliseconds since the epoch.
pub(crate) fn from_ms(ms: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::store(format!("stored time {ms} ms is out of range")))
}

/// When a claim taken at `now` for `lease` runs out (the end of time for an endless lease).
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
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

/// The columns of an events row whose encoding differs between the databases.
pub(crate) trait EventRow: Row {
    /// The commit-order key: PostgreSQL's transaction id, SQLite's position.
    fn commit_key(&self) -> Result<i64, sqlx::Error>;
    /// The schema version, widened to `i64` (PostgreSQL keeps an `int4`).
    fn schema_version(&self) -> Result<i64, sqlx::Error>;
}

/// A stored number that must be at least `min`: never clamped.
fn at_least(v: i64, min: i64, what: &str) -> Result<u64, String> {
    if v < min { Err(format!("its {what} {v} is below {min}")) } else { Ok(v.unsigned_abs()) }
}

/// A stored schema version: within `u32`.
pub(crate) fn schema_version_of(v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("its schema version {v} is out of range"))
}

/// One row of `read_all`, checked: a negative or zero version, a negative position or
/// commit key, a schema version out of range, headers that are not a JSON object of
/// strings or a column that does not decode are [`Error::CorruptRow`] naming the stream,
/// the version as stored, and where the row sits (position and commit key), never a
/// clamped value.
pub(crate) fn decode_event<R>(row: &R) -> Result<StoredEvent, Error>
where
    R: EventRow,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let unreadable = |what: &str, e: sqlx::Error| Error::CorruptRow {
        stream: "(unreadable)".to_owned(),
        version: 0,
        reason: format!("its {what} does not decode ({e})"),
        at: None,
    };
    let position: i64 = row.try_get("position").map_err(|e| unreadable("position", e))?;
    let commit = row.commit_key().map_err(|e| unreadable("commit key", e))?;
    // Only formatted for an error: decoding a good row allocates nothing more.
    let at = || format!("row at position {position}, commit {commit}");
    // Where a reader of all events can resume past this row, when its place is valid.
    let cursor = match (u64::try_from(commit), u64::try_from(position)) {
        (Ok(commit), Ok(position)) if position >= 1 => Some(Cursor { commit, position }),
        _ => None,
    };
    let text = |name: &str| row.try_get::<String, _>(name);
    let stream = match (text("tenant_id"), text("stream_type"), text("stream_id")) {
        (Ok(t), Ok(st), Ok(id)) => StreamKey { tenant_id: tenant_from(t), stream_type: st, stream_id: id },
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            return Err(Error::CorruptRow {
                stream: "(unreadable)".to_owned(),
                version: 0,
                reason: format!("its stream does not decode ({e}); {}", at()),
                at: cursor,
            });
        }
    };
    let version: i64 = row.try_get("version").map_err(|e| Error::CorruptRow {
        stream: stream.to_string(),
        version: 0,
        reason: format!("its version does not decode ({e}); {}", at()),
        at: cursor,
    })?;
    let corrupt = |reason: String| Error::CorruptRow {
        stream: stream.to_string(),
        version,
        reason: format!("{reason}; {}", at()),
        at: cursor,
    };
    let column = |what: &str, e: sqlx::Error| corrupt(format!("its {what} does not decode ({e})"));
    let metadata = Metadata {
        correlation_id: row.try_get("correlation_id").map_err(|e| column("correlation id", e))?,
        causation_id: row.try_get("causation_id").map_err(|e| column("causation id", e))?,
        tenant_id: stream.tenant_id.clone(),
        principal: row.try_get("principal").map_err(|e| column("principal", e))?,
        headers: headers_from(row.try_get("headers").map_err(|e| column("headers", e))?).map_err(&corrupt)?,
    };
    Ok(StoredEvent {
        version: at_least(version, 1, "version").map_err(&corrupt)?,
        position: at_least(position, 1, "position").map_err(&corrupt)?,
        commit: at_least(commit, 0, "commit key").map_err(&corrupt)?,
        event_id: row.try_get("event_id").map_err(|e| column("event id", e))?,
        event_type: text("event_type").map_err(|e| column("event type", e))?,
        schema_version: schema_version_of(row.schema_version().map_err(|e| column("schema version", e))?)
            .map_err(&corrupt)?,
        payload: text("payload").map_err(|e| column("payload", e))?,
        metadata,
        occurred_at: row.try_get("occurred_at").map_err(|e| column("time", e))?,
        stream,
    })
}

/// A page of `read_all`: the rows up to the first one that is corrupt. A corrupt first
/// row is the page's error, so a reader gets every good event before it and then an
/// [`Error::CorruptRow`] naming it (and where it sits), instead of no events at all.
pub(crate) fn decode_page<R>(
    rows: &[R],
    decode: impl Fn(&R) -> Result<StoredEvent, Error>,
) -> Result<Vec<StoredEvent>, Error> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        match decode(row) {
            Ok(e) => events.push(e),
            Err(e) if events.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "read_all stops its page before a corrupt row");
                break;
            }
        }
    }
    Ok(events)
}

/// Checks the rows of one stream as `read_stream` yields them: versions run on from
/// `after + 1` without a gap, and numbers are in range. Errors are
/// [`Error::CorruptRow`] naming the stream and the version as stored.
pub(crate) struct StreamCheck {
    stream: StreamKey,
    next: u64,
}

impl StreamCheck {
    pub(crate) fn new(stream: &StreamKey, after: u64) -> Self {
        StreamCheck { stream: stream.clone(), next: after.saturating_add(1) }
    }

    /// The next row of the stream (`version, event_type, schema_version, payload`).
    pub(crate) fn row<R>(&mut self, row: &R) -> Result<StreamEvent, Error>
    where
        R: EventRow,
        for<'n> &'n str: ColumnIndex<R>,
        for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    {
        let version: i64 = row.try_get("version").map_err(|e| Error::CorruptRow {
            stream: self.stream.to_string(),
            version: 0,
            reason: format!("its version does not decode ({e}); version {} was expected", self.next),
            at: None,
        })?;
        let corrupt = |reason: String| Error::CorruptRow { stream: self.stream.to_string(), version, reason, at: None };
        let column = |what: &str, e: sqlx::Error| corrupt(format!("its {what} does not decode ({e})"));
        let v = at_least(version, 1, "version").map_err(corrupt)?;
        if v != self.next {
            let what = if v < self.next { "does not increase" } else { "leaves a gap" };
            return Err(corrupt(format!("version {v} {what}: version {} was expected", self.next)));
        }
        let event = StreamEvent {
            version: v,
            event_type: row.try_get("event_type").map_err(|e| column("event type", e))?,
            schema_version: schema_version_of(row.schema_version().map_err(|e| column("schema version", e))?)
                .map_err(corrupt)?,
            payload: row.try_get("payload").map_err(|e| column("payload", e))?,
        };
        self.next = v.saturating_add(1);
        Ok(event)
    }
}

/// State writes that no event append of the same stream guards: they need an explicit
/// version check in a transaction.
pub(crate) fn has_unguarded_states(batch: &CommitBatch) -> bool {
    batch
        .states
        .iter()
        .any(|s| !batch.appends.iter().any(|a| a.stream == s.stream && a.expected_version == s.expected_version))
}

/// A migration: its number and its SQL (`{schema}` is replaced by the schema name).
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
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

/// A row of either database, with the way that database keeps times (PostgreSQL
/// `timestamptz`, SQLite milliseconds since the epoch).
pub(crate) trait TimeRow: Row {
    /// The time in column `index`; `None` when NULL.
    fn time(&self, index: usize) -> Result<Option<DateTime<Utc>>, Error>;

    /// The time in a `NOT NULL` column.
    fn time_required(&self, index: usize) -> Result<DateTime<Utc>, Error> {
        self.time(index)?.ok_or_else(|| Error::store(format!("stored time in column {index} is NULL")))
    }
}

fn get<'r, R, T>(row: &'r R, index: usize) -> Result<T, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(index).map_err(store_err)
}

/// The saga key of a row starting `tenant_id, saga_type, saga_id`.
pub(crate) fn decode_saga_key<R>(row: &R) -> Result<SagaKey, Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(SagaKey { tenant_id: tenant_from(get(row, 0)?), saga_type: get(row, 1)?, saga_id: get(row, 2)? })
}

/// A `sagas` row: `tenant_id, saga_type, saga_id, status, version, wake_at, data,
/// created_at, updated_at`.
pub(crate) fn decode_saga<R>(row: &R) -> Result<SagaRecord, Error>
where
    R: TimeRow,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = get(row, 3)?;
    Ok(SagaRecord {
        key: decode_saga_key(row)?,
        status: status.parse()?,
        version: to_u64(get(row, 4)?, "saga version")?,
        wake_at: row.time(5)?,
        data: get(row, 6)?,
        created_at: row.time_required(7)?,
        updated_at: row.time_required(8)?,
    })
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

/// A `scheduled_commands` row: `id, command_type, payload, due_at, correlation_id,
/// causation_id, tenant_id, principal, headers, attempts, last_error, created_at`.
pub(crate) fn decode_scheduled<R>(row: &R) -> Result<ScheduledCommand, Error>
where
    R: TimeRow,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ScheduledCommand {
        id: get(row, 0)?,
        command_type: get(row, 1)?,
        payload: get(row, 2)?,
        due_at: row.time_required(3)?,
        metadata: Metadata {
            correlation_id: get(row, 4)?,
            causation_id: get(row, 5)?,
            tenant_id: tenant_from(get(row, 6)?),
            principal: get(row, 7)?,
            headers: row_headers(get(row, 8)?, || {
                format!("scheduled command {}", get::<_, Uuid>(row, 0).unwrap_or_default())
            })?,
        },
        attempts: u32::try_from(get::<_, i32>(row, 9)?).unwrap_or(0),
        last_error: get(row, 10)?,
        created_at: row.time_required(11)?,
    })
}

/// A saga save found the stored instance at another version (`actual`, 0 when missing).
pub(crate) fn saga_conflict(key: &SagaKey, expected: u64, actual: Option<i64>) -> Result<(), Error> {
    let actual = actual.map_or(Ok(0), |v| to_u64(v, "saga version"))?;
    Err(Error::Conflict { stream: key.to_string(), expected, actual })
}
