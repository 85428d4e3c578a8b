//! The SQLite store: the embedded default.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_stream::try_stream;
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, Outbox, OutboxMessage, OutboxRecord, Snapshot,
    SnapshotStore, StoredEvent, StoredState, StreamKey, async_trait,
};
use cqrs_ddd::{Error, Result};
use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::common::{
    EventRow, Migration, StreamCheck, Txn, conflict, conflict_in, decode_event, decode_page, has_unguarded_states,
    headers_json, is_unique_violation, outbox_status, row_headers, store_err, tenant, tenant_column, to_i32, to_i64,
    to_u64,
};
use crate::storable::{check_batch, check_snapshot, lossy, refusal, refused_in_batch, write_err};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, sql: include_str!("../migrations/sqlite/0002_projections.sql") },
    Migration { version: 3, sql: include_str!("../migrations/sqlite/0003_sagas.sql") },
    Migration { version: 4, sql: include_str!("../migrations/sqlite/0004_tenancy.sql") },
    Migration { version: 5, sql: include_str!("../migrations/sqlite/0005_json.sql") },
];

/// Rows per INSERT statement (SQLite limits bound parameters per statement).
const ROWS_PER_INSERT: usize = 1000;

/// Event store, state rows, snapshots, outbox, sagas and scheduled commands in one SQLite
/// database file.
///
/// Cheap to clone. The database is in WAL mode: readers never block the writer. Writes
/// take the database's write lock at once (`BEGIN IMMEDIATE`) and wait up to the busy
/// timeout for it, so concurrent writers queue instead of failing.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) sql: Arc<Sql>,
}

impl SqliteStore {
    /// A page of all events after `after`, of every tenant or of one tenant column.
    async fn page(&self, tenant: Option<&str>, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let position = to_i64(after.position, "cursor")?;
        let query = match tenant {
            Some(t) => sqlx::query(&self.sql.read_all_tenant).bind(position).bind(limit).bind(t),
            None => sqlx::query(&self.sql.read_all).bind(position).bind(limit),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(store_err)?;
        decode_page(&rows, decode_event)
    }

    /// Opens (creating if missing) the database at `url`, like `sqlite://bank.db` or
    /// `sqlite:///var/lib/app/events.db`.
    ///
    /// A file that cannot be opened is [`Error::Connect`] naming it and why: its
    /// directory does not exist or is not writable, or what SQLite said.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Connect {
                backend: "SQLite",
                target: url.to_owned(),
                reason: format!("the url does not parse: {e}"),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let file = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(|e| {
            Error::Connect { backend: "SQLite", target: file.display().to_string(), reason: open_failure(&file, &e) }
        })?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStore { pool, sql: Arc::new(Sql::new()) }
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates the tables, or brings them up to date.
    pub async fn migrate(&self) -> Result<()> {
        let mut tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cqrs_ddd_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM cqrs_ddd_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(store_err)?;
            sqlx::query("INSERT INTO cqrs_ddd_migrations (version, applied_at) VALUES (?, ?)")
                .bind(m.version)
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }

    /// Commits a batch inside a transaction the caller controls (`BEGIN IMMEDIATE` is
    /// best), so rows of the caller's own commit with the events. When the batch is
    /// refused (a version conflict, an idempotency key already processed) the transaction
    /// stays usable: the write is undone to a savepoint.
    pub async fn commit_in(&self, tx: &mut SqliteConnection, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        sqlx::query("SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
        let result = self.commit_on(tx, &batch).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
        }
        sqlx::query("RELEASE SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
        result
    }

    /// Writes a batch on a connection in a transaction. The idempotency key goes first, so
    /// a batch whose key is recorded is refused as [`Error::AlreadyProcessed`] even when
    /// it would also conflict (the command is done; a retry would be refused anyway).
    async fn commit_on(&self, conn: &mut SqliteConnection, batch: &CommitBatch) -> Result<CommitReceipt> {
        if let Some(key) = batch.idempotency_key {
            sqlx::query(&self.sql.insert_processed)
                .bind(key)
                .bind(now_ms())
                .bind(batch.tenant_id.as_deref().unwrap_or(""))
                .execute(&mut *conn)
                .await
                .map_err(|e| if is_unique_violation(&e) { Error::AlreadyProcessed { key } } else { store_err(e) })?;
        }
        if has_unguarded_states(batch) {
            self.check_states(conn, batch).await?;
        }
        match self.write(conn, batch).await {
            Ok(receipt) => Ok(receipt),
            Err(e) if is_unique_violation(&e) => Err(self.find_conflict(conn, batch).await),
            Err(e) => Err(refusal(&e).map_or_else(|| store_err(e), |reason| refused_in_batch(batch, reason))),
        }
    }

    async fn write(
        &self,
        conn: &mut SqliteConnection,
        batch: &CommitBatch,
    ) -> std::result::Result<CommitReceipt, sqlx::Error> {
        struct Row<'a> {
            stream: &'a StreamKey,
            version: u64,
            event: &'a cqrs_ddd::ports::NewEvent,
        }
        let rows: Vec<Row<'_>> = batch
            .appends
            .iter()
            .flat_map(|a| {
                (a.expected_version + 1..).zip(&a.events).map(move |(version, event)| Row {
                    stream: &a.stream,
                    version,
                    event,
                })
            })
            .collect();
        let mut positions = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut q: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, \
                 payload, correlation_id, causation_id, principal, headers, occurred_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(tenant(r.stream))
                    .push_bind(&r.stream.stream_type)
                    .push_bind(&r.stream.stream_id)
                    .push_bind(i64::try_from(r.version).unwrap_or(i64::MAX))
                    .push_bind(r.event.event_id)
                    .push_bind(r.event.event_type)
                    .push_bind(i64::from(r.event.schema_version))
                    .push_bind(&r.event.payload)
                    .push_bind(r.event.metadata.correlation_id)
                    .push_bind(r.event.metadata.causation_id)
                    .push_bind(r.event.metadata.principal.as_deref())
                    .push_bind(headers_json(&r.event.metadata.headers))
                    .push_bind(r.event.occurred_at);
            });
            q.push(" RETURNING position");
            // SQLite returns the rows of a multi-row INSERT in insertion order.
            let returned: Vec<i64> = q.build_query_scalar().fetch_all(&mut *conn).await?;
            positions.extend(returned.into_iter().map(|p| u64::try_from(p).unwrap_or(0)));
        }
        for s in &batch.states {
            sqlx::query(&self.sql.upsert_state)
                .bind(tenant(&s.stream))
                .bind(&s.stream.stream_type)
                .bind(&s.stream.stream_id)
                .bind(i64::try_from(s.version).unwrap_or(i64::MAX))
                .bind(&s.state)
                .bind(chrono::Utc::now())
                .execute(&mut *conn)
                .await?;
        }
        for o in &batch.outbox {
            sqlx::query(&self.sql.insert_outbox)
                .bind(o.id)
                .bind(&o.topic)
                .bind(&o.payload)
                .bind(serde_json::to_string(&o.headers).unwrap_or_else(|_| "{}".to_owned()))
                .bind(o.created_at)
                .execute(&mut *conn)
                .await?;
        }
        Ok(CommitReceipt { positions })
    }

    async fn check_states(&self, conn: &mut SqliteConnection, batch: &CommitBatch) -> Result<()> {
        for s in &batch.states {
            let actual: Option<i64> = sqlx::query_scalar(&self.sql.state_version)
                .bind(tenant(&s.stream))
                .bind(&s.stream.stream_type)
                .bind(&s.stream.stream_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(store_err)?;
            let actual = actual.map_or(Ok(0), |v| to_u64(v, "state version"))?;
            if actual != s.expected_version {
                return Err(conflict(&s.stream, s.expected_version, actual));
            }
        }
        Ok(())
    }

    async fn version_on(&self, conn: &mut SqliteConnection, stream: &StreamKey) -> Result<u64> {
        let v: i64 = sqlx::query_scalar(&self.sql.stream_version)
            .bind(tenant(stream))
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .fetch_one(conn)
            .await
            .map_err(store_err)?;
        to_u64(v, "version")
    }

    async fn find_conflict(&self, conn: &mut SqliteConnection, batch: &CommitBatch) -> Error {
        let mut actuals = Vec::with_capacity(batch.appends.len());
        for a in &batch.appends {
            match self.version_on(conn, &a.stream).await {
                Ok(v) => actuals.push(v),
                Err(e) => return e,
            }
        }
        conflict_in(batch, &actuals)
    }
}

pub(crate) struct Sql {
    insert_processed: String,
    read_stream: String,
    read_all: String,
    read_all_tenant: String,
    stream_version: String,
    load_state: String,
    state_version: String,
    upsert_state: String,
    insert_outbox: String,
    load_snapshot: String,
    save_snapshot: String,
    outbox_pending: String,
    outbox_published: String,
    outbox_failed: String,
    outbox_dead: String,
    outbox_claim: String,
    outbox_retry_dead: String,
    pub(crate) saga: crate::sqlite_saga::SagaSql,
}

const EVENT_COLUMNS: &str = "position, tenant_id, stream_type, stream_id, version, event_id, event_type, \
    schema_version, payload, correlation_id, causation_id, principal, headers, occurred_at";
const OUTBOX_COLUMNS: &str = "id, topic, payload, headers, created_at, status, attempts, last_error";

impl Sql {
    fn new() -> Self {
        let key = "tenant_id = ? AND stream_type = ? AND stream_id = ?";
        Sql {
            insert_processed: "INSERT INTO processed_commands (key, processed_at_ms, tenant_id) VALUES (?, ?, ?)"
                .to_owned(),
            // A row below version 1 (which no writer makes) is read first, whatever the
            // starting version, so that loading the stream reports it: one index probe.
            read_stream: "SELECT version, event_type, schema_version, payload FROM events \
                 WHERE tenant_id = ?1 AND stream_type = ?2 AND stream_id = ?3 AND version > CASE WHEN EXISTS \
                 (SELECT 1 FROM events WHERE tenant_id = ?1 AND stream_type = ?2 AND stream_id = ?3 AND version < 1) \
                 THEN ?5 ELSE ?4 END ORDER BY version"
                .to_owned(),
            read_all: format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"),
            read_all_tenant: format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 AND tenant_id = ?3 ORDER BY position LIMIT ?2"
            ),
            stream_version: format!("SELECT COALESCE(MAX(version), 0) FROM events WHERE {key}"),
            load_state: format!("SELECT version, state FROM states WHERE {key}"),
            state_version: format!("SELECT version FROM states WHERE {key}"),
            upsert_state: "INSERT INTO states (tenant_id, stream_type, stream_id, version, state, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
                 SET version = excluded.version, state = excluded.state, updated_at = excluded.updated_at"
                .to_owned(),
            insert_outbox: "INSERT INTO outbox (id, topic, payload, headers, created_at, next_attempt_at) \
                 VALUES (?, ?, ?, ?, ?, ?5)"
                .to_owned(),
            load_snapshot: format!("SELECT version, state, taken_at FROM snapshots WHERE {key}"),
            save_snapshot: "INSERT INTO snapshots (tenant_id, stream_type, stream_id, version, state, taken_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
                 SET version = excluded.version, state = excluded.state, taken_at = excluded.taken_at \
                 WHERE snapshots.version < excluded.version"
                .to_owned(),
            outbox_pending: format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY position LIMIT ?"
            ),
            outbox_published: "UPDATE outbox SET status = 'published', published_at = ?, claimed_until_ms = NULL \
                 WHERE id = ?"
                .to_owned(),
            outbox_failed: "UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_until_ms = NULL, \
                 next_attempt_ms = ?, status = CASE WHEN attempts + 1 >= ? THEN 'dead' ELSE status END WHERE id = ?"
                .to_owned(),
            outbox_claim: format!(
                "UPDATE outbox SET claimed_by = ?1, claimed_until_ms = ?2 + ?3 WHERE position IN (SELECT position \
                 FROM outbox WHERE status = 'pending' AND next_attempt_ms <= ?2 \
                 AND (claimed_until_ms IS NULL OR claimed_until_ms < ?2) ORDER BY position LIMIT ?4) \
                 RETURNING {OUTBOX_COLUMNS}, position"
            ),
            outbox_retry_dead: "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = 0, \
                 claimed_until_ms = NULL WHERE status = 'dead' AND id = ?"
                .to_owned(),
            outbox_dead: format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY position"),
            saga: crate::sqlite_saga::SagaSql::new(),
        }
    }
}

impl EventRow for SqliteRow {
    fn commit_key(&self) -> std::result::Result<i64, sqlx::Error> {
        self.try_get("position")
    }

    fn schema_version(&self) -> std::result::Result<i64, sqlx::Error> {
        self.try_get("schema_version")
    }
}

fn decode_outbox(row: &SqliteRow) -> Result<OutboxRecord> {
    let get = |e: sqlx::Error| store_err(e);
    let status: String = row.try_get(5).map_err(get)?;
    Ok(OutboxRecord {
        message: OutboxMessage {
            id: row.try_get(0).map_err(get)?,
            topic: row.try_get(1).map_err(get)?,
            payload: row.try_get(2).map_err(get)?,
            headers: row_headers(row.try_get(3).map_err(get)?, || {
                format!("outbox message {}", row.try_get::<Uuid, _>(0).unwrap_or_default())
            })?,
            created_at: row.try_get(4).map_err(get)?,
        },
        status: outbox_status(&status),
        attempts: u32::try_from(row.try_get::<i64, _>(6).map_err(get)?).unwrap_or(0),
        last_error: row.try_get(7).map_err(get)?,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        // A cancelled commit closes its connection (see `Txn`), so none is left in a
        // transaction.
        let mut tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        match self.commit_on(&mut tx, &batch).await {
            Ok(receipt) => {
                tx.commit().await.map_err(store_err)?;
                Ok(receipt)
            }
            Err(e) => tx.fail(e).await,
        }
    }

    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        stream.check()?;
        let pool = self.pool.clone();
        let sql = self.sql.clone();
        let key = stream.clone();
        let after = to_i64(after_version, "version")?;
        Ok(Box::pin(try_stream! {
            let mut rows = sqlx::query(&sql.read_stream)
                .bind(tenant(&key))
                .bind(&key.stream_type)
                .bind(&key.stream_id)
                .bind(after)
                .bind(i64::MIN)
                .fetch(&pool);
            let mut check = StreamCheck::new(&key, after_version);
            while let Some(row) = rows.try_next().await.map_err(store_err)? {
                yield check.row(&row)?;
            }
        }))
    }

    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.page(None, after, limit).await
    }

    async fn read_tenant(&self, tenant: Option<&str>, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.page(Some(tenant_column(tenant)?), after, limit).await
    }

    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        stream.check()?;
        let mut conn = self.pool.acquire().await.map_err(store_err)?;
        self.version_on(&mut conn, stream).await
    }

    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        stream.check()?;
        let row = sqlx::query(&self.sql.load_state)
            .bind(tenant(stream))
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.map(|r| {
            Ok(StoredState {
                version: to_u64(r.try_get(0).map_err(store_err)?, "version")?,
                state: r.try_get(1).map_err(store_err)?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>> {
        stream.check()?;
        let row = sqlx::query(&self.sql.load_snapshot)
            .bind(tenant(stream))
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.map(|r| {
            Ok(Snapshot {
                stream: stream.clone(),
                version: to_u64(r.try_get(0).map_err(store_err)?, "version")?,
                state: r.try_get(1).map_err(store_err)?,
                taken_at: r.try_get(2).map_err(store_err)?,
            })
        })
        .transpose()
    }

    async fn save(&self, snapshot: Snapshot) -> Result<()> {
        snapshot.stream.check()?;
        check_snapshot(&snapshot)?;
        sqlx::query(&self.sql.save_snapshot)
            .bind(tenant(&snapshot.stream))
            .bind(&snapshot.stream.stream_type)
            .bind(&snapshot.stream.stream_id)
            .bind(to_i64(snapshot.version, "version")?)
            .bind(&snapshot.state)
            .bind(snapshot.taken_at)
            .execute(&self.pool)
            .await
            .map_err(|e| write_err(e, || format!("the snapshot of `{}`", snapshot.stream)))?;
        Ok(())
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.sql.outbox_pending)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_outbox).collect()
    }

    async fn mark_published(&self, id: Uuid) -> Result<()> {
        sqlx::query(&self.sql.outbox_published)
            .bind(chrono::Utc::now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn claim(&self, relay: &str, limit: usize, lease: Duration) -> Result<Vec<OutboxRecord>> {
        let mut tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        let rows = match sqlx::query(&self.sql.outbox_claim)
            .bind(relay)
            .bind(now_ms())
            .bind(ms(lease))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return tx.fail(store_err(e)).await,
        };
        tx.commit().await.map_err(store_err)?;
        let mut claimed = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(8).map_err(store_err)?, decode_outbox(r)?)))
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(position, _)| *position);
        Ok(claimed.into_iter().map(|(_, r)| r).collect())
    }

    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()> {
        sqlx::query(&self.sql.outbox_failed)
            .bind(lossy(error))
            .bind(now_ms().saturating_add(ms(retry_after)))
            .bind(to_i32(max_attempts, "max attempts")?)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64> {
        let mut n = 0;
        for id in ids {
            n += sqlx::query(&self.sql.outbox_retry_dead)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(store_err)?
                .rows_affected();
        }
        Ok(n)
    }

    async fn dead(&self) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.sql.outbox_dead).fetch_all(&self.pool).await.map_err(store_err)?;
        rows.iter().map(decode_outbox).collect()
    }
}

/// Why the database file could not be opened: what the file system says about its
/// directory when that is the cause, else SQLite's error.
fn open_failure(file: &std::path::Path, e: &sqlx::Error) -> String {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(_) => format!("its directory `{}` does not exist ({e})", dir.display()),
        Ok(m) if !m.is_dir() => format!("`{}` is not a directory ({e})", dir.display()),
        Ok(m) if m.permissions().readonly() => format!("its directory `{}` is not writable ({e})", dir.display()),
        Ok(_) => e.to_string(),
    }
}

/// Milliseconds since the epoch: SQLite compares due times and claims as numbers.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
