//! The store, written once for every dialect: event store, state rows, snapshots and
//! outbox. Projections, sagas and schedules are in their own modules.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_stream::try_stream;
use chrono::Utc;
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, NewEvent, Outbox, OutboxCounts, OutboxRecord,
    ProjectionStore, ReadStall, Snapshot, SnapshotStore, StoredEvent, StoredState, StreamKey, TenantScope,
    UndoLogEntry, async_trait,
};
use cqrs_ddd::undo::UndoError;
use cqrs_ddd::{Error, Result};
use futures::TryStreamExt;
use sqlx::Pool;
use uuid::Uuid;

use crate::common::{
    Txn, conflict, conflict_in, headers_json, is_guarded, is_unique_violation, limit, retry_deadlocks, store_err,
    tenant, tenant_column, to_i32, to_i64,
};
use crate::conns::{Conns, Lease};
use crate::dialect::{Dialect, at, instant};
use crate::exec::{SqlConn, Stmt, Value};
use crate::rows::{self, Cols, StreamCheck};
use crate::sql::{CACHED_INSERTS, ROWS_PER_INSERT, Statements, insert_events, with_list};
use crate::storable::{check_batch, check_snapshot, lossy, refusal, refused_in_batch, write_err};

/// Event store, state rows, snapshots, outbox, projections, sagas and scheduled commands
/// on one SQL database; `D` is the database's [`Dialect`]. Use it through
/// [`PgStore`](crate::PgStore), [`SqliteStore`](crate::SqliteStore) or
/// [`MySqlStore`](crate::MySqlStore).
///
/// Cheap to clone: clones share the pool.
pub struct SqlStore<D: Dialect> {
    pub(crate) conns: Arc<Conns<D::Db>>,
    pub(crate) sql: Arc<Statements>,
    pub(crate) dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore { conns: self.conns.clone(), sql: self.sql.clone(), dialect: self.dialect.clone() }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &D::NAME)
            .field("prefix", &self.dialect.prefix())
            .field("pool", self.conns.pool())
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Runs `sql` (an `UPDATE` of outbox rows ending in `id IN ({in})`) over `ids`, a
    /// chunk at a time, with `first` as its first argument when it has one; the number
    /// of rows changed.
    async fn update_outbox(&self, sql: &str, first: Option<Value<'static>>, ids: &[Uuid]) -> Result<u64> {
        let mut n = 0;
        let mut conn = self.conn().await?;
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let sql = with_list(&self.dialect, sql, "?", chunk.len());
            let mut stmt = Stmt::new(&sql);
            if let Some(first) = first.clone() {
                stmt = stmt.arg(first);
            }
            for id in chunk {
                stmt = stmt.uuid(*id);
            }
            n += conn.run(stmt).await.map_err(store_err)?;
        }
        Ok(n)
    }

    /// A store on `pool` for `dialect`; its statements are rendered once here.
    pub(crate) fn with(pool: Pool<D::Db>, dialect: D) -> Self {
        SqlStore { sql: Arc::new(Statements::new(&dialect)), conns: Conns::new(pool), dialect }
    }

    /// The pool, for the application's own queries. The store holds some of its
    /// connections between statements (half by default: [`SqlStore::keep_connections`]),
    /// and none once idle (see the crate's "Connection pools").
    pub fn pool(&self) -> &Pool<D::Db> {
        self.conns.pool()
    }

    /// Lets the store hold up to `n` of its pool's connections between its statements
    /// (half the pool by default, at most all of it; clones share the setting). Each
    /// connection the store gives back costs it a round trip (sqlx's pool checks it), so
    /// a store whose pool serves nothing else runs fastest keeping all of them; your own
    /// queries on [`SqlStore::pool`] get what the store does not hold. 0 gives every
    /// connection back after each use.
    ///
    /// ```no_run
    /// # async fn run() -> cqrs_ddd::Result<()> {
    /// use cqrs_ddd_sqlx::{PgOptions, PgStore};
    ///
    /// // A pool of 16 for the store alone.
    /// let store = PgStore::connect_with(PgOptions::new("postgres://localhost/app").max_connections(16))
    ///     .await?
    ///     .keep_connections(16);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn keep_connections(self, n: u32) -> Self {
        self.conns.keep_at_most(n);
        self
    }

    /// Creates the tables, or brings them up to date. Safe to run from several processes
    /// at once (they take turns).
    pub async fn migrate(&self) -> Result<()> {
        D::migrate(self).await
    }

    /// Commits a batch inside a transaction the caller controls, so rows of the caller's
    /// own commit with the events (the unit of work over a sqlx transaction; on SQLite
    /// begin it with `BEGIN IMMEDIATE`). When the batch is refused (a version conflict, an
    /// idempotency key already processed, a value the database cannot store) the
    /// transaction stays usable: the write is undone to a savepoint.
    pub async fn commit_in(&self, conn: &mut D::Conn, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        D::commit_in(self, conn, &batch).await
    }

    /// One of the store's connections (see [`Lease`]).
    pub(crate) async fn conn(&self) -> Result<Lease<D::Db>> {
        self.conns.lease().await.map_err(store_err)
    }

    /// Begins a transaction that will write.
    pub(crate) async fn begin_write(&self) -> Result<Txn<D::Db>> {
        Txn::begin(&self.conns, D::BEGIN_WRITE).await
    }

    /// Where a claim runs: in autocommit when it is one statement and the dialect needs
    /// no write lock (PostgreSQL: one round trip), else in a write transaction.
    pub(crate) async fn claimer(&self) -> Result<Claim<D>> {
        if D::RETURNING && D::BEGIN_WRITE.is_none() {
            Ok(Claim::Auto(self.conn().await?))
        } else {
            Ok(Claim::Txn(self.begin_write().await?))
        }
    }

    /// The generic commit: one transaction, run again when the database picked it as a
    /// deadlock victim (it then wrote nothing).
    pub(crate) async fn commit_txn(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        let one_insert = batch.idempotency_key.is_none()
            && batch.undo_log.is_empty()
            && batch.deadlines.is_empty()
            && batch.states.is_empty()
            && batch.outbox.is_empty()
            && batch.jobs.is_empty()
            && (1..=ROWS_PER_INSERT).contains(&batch.event_count());
        if D::AUTOCOMMIT_APPEND && one_insert {
            // One statement in autocommit: atomic, and nothing is left open if cancelled.
            let mut conn = self.conn().await?;
            let receipt = self.write_batch(&mut conn, &batch, false).await?;
            conn.done();
            return Ok(receipt);
        }
        retry_deadlocks(|| async {
            // A cancelled commit closes its connection (see `Txn`).
            let begin = if batch.appends.is_empty() { D::BEGIN_WRITE } else { D::BEGIN_APPEND };
            let mut tx = Txn::begin(&self.conns, begin).await?;
            match self.write_batch(&mut tx, &batch, true).await {
                Ok(receipt) => {
                    tx.commit().await.map_err(store_err)?;
                    Ok(receipt)
                }
                Err(e) => tx.fail(e).await,
            }
        })
        .await
    }

    /// The generic `commit_in`: the batch between a savepoint and its release. When the
    /// savepoint is gone (the database rolled the whole transaction back, as MariaDB does
    /// to a deadlock victim), the batch's own error is returned.
    pub(crate) async fn commit_in_savepoint(&self, conn: &mut D::Conn, batch: &CommitBatch) -> Result<CommitReceipt> {
        conn.script("SAVEPOINT cqrs_ddd_commit").await.map_err(store_err)?;
        let result = self.write_batch(conn, batch, false).await;
        if result.is_err() && conn.script("ROLLBACK TO SAVEPOINT cqrs_ddd_commit").await.is_err() {
            return result;
        }
        conn.script("RELEASE SAVEPOINT cqrs_ddd_commit").await.map_err(store_err)?;
        result
    }

    /// Writes a batch on a connection in a transaction. The idempotency key goes first, so
    /// a batch whose key is recorded is refused as [`Error::AlreadyProcessed`] even when
    /// it would also conflict (the command is done; a retry would be refused anyway).
    /// `positions_locked` says whether the transaction began with
    /// [`Dialect::BEGIN_APPEND`].
    async fn write_batch(
        &self,
        conn: &mut D::Conn,
        batch: &CommitBatch,
        positions_locked: bool,
    ) -> Result<CommitReceipt> {
        if let Some(key) = batch.idempotency_key {
            let stmt = Stmt::new(&self.sql.insert_processed)
                .uuid(key)
                .str(batch.tenant_id.as_deref().unwrap_or(""))
                .arg(at::<D>(Utc::now()));
            conn.run(stmt)
                .await
                .map_err(|e| if is_unique_violation(&e) { Error::AlreadyProcessed { key } } else { store_err(e) })?;
        }
        self.write_undo_log(conn, batch).await?;
        self.write_unguarded_states(conn, batch).await?;
        let receipt = match self.write_rows(conn, batch, positions_locked).await {
            Ok(receipt) => receipt,
            Err(e) if is_unique_violation(&e) => return Err(self.find_conflict(conn, batch).await),
            Err(e) => return Err(refusal(&e).map_or_else(|| store_err(e), |reason| refused_in_batch(batch, reason))),
        };
        self.write_deadlines(conn, &batch.deadlines).await?;
        Ok(receipt)
    }

    async fn write_rows(
        &self,
        conn: &mut D::Conn,
        batch: &CommitBatch,
        positions_locked: bool,
    ) -> std::result::Result<CommitReceipt, sqlx::Error> {
        let rows: Vec<(&StreamKey, u64, &NewEvent)> = batch
            .appends
            .iter()
            .flat_map(|a| (a.expected_version + 1..).zip(&a.events).map(move |(v, e)| (&a.stream, v, e)))
            .collect();
        let mut positions = Vec::with_capacity(rows.len());
        if !rows.is_empty() && !positions_locked {
            D::lock_positions(conn).await?;
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = self.insert_sql(chunk.len());
            let mut stmt = Stmt::new(&sql);
            for &(stream, version, e) in chunk {
                stmt = stmt
                    .str(tenant(stream))
                    .str(&stream.stream_type)
                    .str(&stream.stream_id)
                    .int(to_i64(version, "version").map_err(protocol)?)
                    .uuid(e.event_id)
                    .str(e.event_type)
                    .int(i64::from(e.schema_version))
                    .str(&e.payload)
                    .arg(Value::OptUuid(e.metadata.correlation_id))
                    .arg(Value::OptUuid(e.metadata.causation_id))
                    .arg(Value::OptStr(e.metadata.principal.as_deref()))
                    .arg(Value::OptString(headers_json(&e.metadata.headers)))
                    .arg(instant::<D>(e.occurred_at));
            }
            let ids: Vec<Uuid> = chunk.iter().map(|(_, _, e)| e.event_id).collect();
            positions.extend(D::insert_events(conn, stmt, &ids).await?);
        }
        let now = Utc::now();
        for s in batch.states.iter().filter(|s| is_guarded(batch, s)) {
            let stmt = Stmt::new(&self.sql.upsert_state)
                .str(tenant(&s.stream))
                .str(&s.stream.stream_type)
                .str(&s.stream.stream_id)
                .int(to_i64(s.version, "version").map_err(protocol)?)
                .str(&s.state)
                .arg(instant::<D>(now));
            conn.run(stmt).await?;
        }
        for o in &batch.outbox {
            let stmt = Stmt::new(&self.sql.insert_outbox)
                .uuid(o.id)
                .str(&o.topic)
                .str(&o.payload)
                .arg(Value::String(serde_json::to_string(&o.headers).unwrap_or_else(|_| "{}".to_owned())))
                .arg(instant::<D>(o.created_at))
                .arg(at::<D>(o.created_at))
                .arg(Value::OptString(o.headers.get(cqrs_ddd::broker::headers::STREAM).cloned()));
            conn.run(stmt).await?;
        }
        self.insert_jobs(conn, &batch.jobs).await?;
        Ok(CommitReceipt { positions, commit: None })
    }

    /// The insert of `rows` events.
    fn insert_sql(&self, rows: usize) -> Cow<'_, str> {
        match self.sql.insert_events.get(rows.wrapping_sub(1)) {
            Some(sql) if rows <= CACHED_INSERTS => Cow::Borrowed(sql),
            _ => Cow::Owned(insert_events(&self.dialect, rows)),
        }
    }

    /// Writes the undo log entries of a batch; an entry already written (by a concurrent
    /// undo of the same event) refuses the batch with [`UndoError::AlreadyUndone`] or
    /// `AlreadyRedone`.
    pub(crate) async fn write_undo_log(&self, conn: &mut D::Conn, batch: &CommitBatch) -> Result<()> {
        for u in &batch.undo_log {
            let stmt = Stmt::new(&self.sql.insert_undo)
                .str(tenant(&u.stream))
                .uuid(u.event_id)
                .int(i64::from(u.generation))
                .str(u.action.as_str())
                .str(&u.stream.stream_type)
                .str(&u.stream.stream_id)
                .str(&u.event_type)
                .str(&u.command_type)
                .uuid(u.command_key)
                .arg(instant::<D>(u.recorded_at));
            conn.run(stmt).await.map_err(|e| {
                if is_unique_violation(&e) {
                    UndoError::already(u).into()
                } else {
                    write_err(e, || format!("the undo log entry of event {}", u.event_id))
                }
            })?;
        }
        Ok(())
    }

    /// Writes the state rows no event append guards, each only if it is at the version
    /// the writer loaded: a new row is inserted (the key refuses a second), an existing
    /// one updated where its version is still the expected one. Either way a concurrent
    /// writer of the same row is a conflict, never a lost update.
    pub(crate) async fn write_unguarded_states(&self, conn: &mut D::Conn, batch: &CommitBatch) -> Result<()> {
        let now = Utc::now();
        for s in batch.states.iter().filter(|s| !is_guarded(batch, s)) {
            let version = to_i64(s.version, "version")?;
            let fields = |sql| {
                Stmt::new(sql)
                    .int(version)
                    .str(&s.state)
                    .arg(instant::<D>(now))
                    .str(tenant(&s.stream))
                    .str(&s.stream.stream_type)
                    .str(&s.stream.stream_id)
            };
            let written = if s.expected_version == 0 {
                conn.run(fields(&self.sql.insert_state)).await
            } else {
                conn.run(fields(&self.sql.update_state).int(to_i64(s.expected_version, "version")?)).await
            };
            match written {
                Ok(1) => {}
                Ok(_) => return Err(self.state_conflict(conn, s.stream.clone(), s.expected_version).await),
                Err(e) if is_unique_violation(&e) => {
                    return Err(self.state_conflict(conn, s.stream.clone(), s.expected_version).await);
                }
                Err(e) => return Err(write_err(e, || format!("the state of `{}` at version {}", s.stream, s.version))),
            }
        }
        Ok(())
    }

    /// The conflict of a state row found at another version than `expected`.
    async fn state_conflict(&self, conn: &mut D::Conn, stream: StreamKey, expected: u64) -> Error {
        let actual = match conn.row(key_stmt(&self.sql.state_version, &stream)).await {
            Ok(Some(r)) => Cols::<D>::of(&r).count("version", "state version"),
            Ok(None) => Ok(0),
            Err(e) => Err(store_err(e)),
        };
        match actual {
            Ok(actual) => conflict(&stream, expected, actual),
            Err(e) => e,
        }
    }

    pub(crate) async fn version_on(&self, conn: &mut D::Conn, stream: &StreamKey) -> Result<u64> {
        let row = conn.row(key_stmt(&self.sql.stream_version, stream)).await.map_err(store_err)?;
        match row {
            Some(r) => Cols::<D>::of(&r).count("version", "version"),
            None => Ok(0),
        }
    }

    /// After a unique violation on the events: which stream moved, and to what version.
    pub(crate) async fn find_conflict(&self, conn: &mut D::Conn, batch: &CommitBatch) -> Error {
        let mut actuals = Vec::with_capacity(batch.appends.len());
        for a in &batch.appends {
            match self.version_on(conn, &a.stream).await {
                Ok(v) => actuals.push(v),
                Err(e) => return e,
            }
        }
        conflict_in(batch, &actuals)
    }

    /// `AlreadyProcessed` instead of a version conflict when the batch's key is recorded.
    pub(crate) async fn processed_or(&self, conn: &mut D::Conn, batch: &CommitBatch, e: Error) -> Error {
        let Some(key) = batch.idempotency_key.filter(|_| e.is_conflict()) else { return e };
        let stmt = Stmt::new(&self.sql.processed).uuid(key).str(batch.tenant_id.as_deref().unwrap_or(""));
        match conn.row(stmt).await {
            Ok(Some(_)) => Error::AlreadyProcessed { key },
            Ok(None) => e,
            Err(db) => store_err(db),
        }
    }

    /// A page of all events after `after`, of every tenant or of one tenant column.
    async fn page(&self, tenant: Option<&str>, after: Cursor, max: usize) -> Result<Vec<StoredEvent>> {
        let sql = if tenant.is_some() { &self.sql.read_all_tenant } else { &self.sql.read_all };
        let mut stmt = Stmt::new(sql);
        if D::COMMIT_ORDER {
            stmt = stmt.int(to_i64(after.commit, "cursor")?);
        }
        stmt = stmt.int(to_i64(after.position, "cursor")?);
        if let Some(t) = tenant {
            stmt = stmt.str(t);
        }
        let rows = self.conn().await?.rows(stmt.int(limit(max))).await.map_err(store_err)?;
        rows::page::<D>(&rows)
    }
}

/// The connection of a claim ([`SqlStore::claimer`]).
pub(crate) enum Claim<D: Dialect> {
    Auto(Lease<D::Db>),
    Txn(Txn<D::Db>),
}

impl<D: Dialect> Claim<D> {
    /// Commits the transaction, if there is one.
    pub(crate) async fn done(self) -> Result<()> {
        match self {
            Claim::Auto(mut conn) => {
                conn.done();
                Ok(())
            }
            Claim::Txn(tx) => tx.commit().await.map_err(store_err),
        }
    }

    /// Rolls the transaction back, if there is one, then returns `e`.
    pub(crate) async fn fail<T>(self, e: Error) -> Result<T> {
        match self {
            Claim::Auto(_) => Err(e),
            Claim::Txn(tx) => tx.fail(e).await,
        }
    }
}

impl<D: Dialect> std::ops::Deref for Claim<D> {
    type Target = D::Conn;

    fn deref(&self) -> &D::Conn {
        match self {
            Claim::Auto(c) => c,
            Claim::Txn(t) => t,
        }
    }
}

impl<D: Dialect> std::ops::DerefMut for Claim<D> {
    fn deref_mut(&mut self) -> &mut D::Conn {
        match self {
            Claim::Auto(c) => c,
            Claim::Txn(t) => t,
        }
    }
}

/// A statement whose first arguments are a stream's key.
pub(crate) fn key_stmt<'q>(sql: &'q str, stream: &'q StreamKey) -> Stmt<'q> {
    Stmt::new(sql).str(tenant(stream)).str(&stream.stream_type).str(&stream.stream_id)
}

/// A value the store refuses before binding, as the error a failed statement would be.
fn protocol(e: Error) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

#[async_trait]
impl<D: Dialect> EventStore for SqlStore<D> {
    fn outbox(self: Arc<Self>) -> Option<Arc<dyn Outbox>> {
        Some(self)
    }

    fn read_models(self: Arc<Self>) -> Option<Arc<dyn ProjectionStore>> {
        Some(self)
    }

    fn jobs(self: Arc<Self>) -> Option<Arc<dyn cqrs_ddd::ports::JobStore>> {
        Some(self)
    }

    fn schedule(self: Arc<Self>) -> Option<Arc<dyn cqrs_ddd::ports::ScheduleStore>> {
        Some(self)
    }

    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        D::commit(self, batch).await
    }

    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        stream.check()?;
        let store = self.clone();
        let key = stream.clone();
        let after = to_i64(after_version, "version")?;
        Ok(Box::pin(try_stream! {
            let mut conn = store.conn().await?;
            let stmt = key_stmt(&store.sql.read_stream, &key)
                .str(tenant(&key))
                .str(&key.stream_type)
                .str(&key.stream_id)
                .int(i64::MIN)
                .int(after);
            let mut rows = conn.stream(stmt);
            let mut check = StreamCheck::new(&key, after_version);
            while let Some(row) = rows.try_next().await.map_err(store_err)? {
                yield check.row::<D>(&row)?;
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
        let mut conn = self.conn().await?;
        let version = self.version_on(&mut conn, stream).await?;
        conn.done();
        Ok(version)
    }

    async fn read_stall(&self) -> Result<Option<ReadStall>> {
        D::read_stall(self).await
    }

    async fn head(&self) -> Result<Cursor> {
        let row = self.conn().await?.row(Stmt::new(&self.sql.head)).await.map_err(store_err)?;
        match row {
            Some(r) => {
                let c = Cols::<D>::of(&r);
                Ok(Cursor { commit: c.count("commit_key", "commit key")?, position: c.count("position", "position")? })
            }
            None => Ok(Cursor::START),
        }
    }

    async fn latest(&self, scope: TenantScope<'_>, max: usize) -> Result<Vec<StoredEvent>> {
        let stmt = match scope {
            TenantScope::All => Stmt::new(&self.sql.latest),
            TenantScope::Only(tenant) => Stmt::new(&self.sql.latest_tenant).str(tenant_column(tenant)?),
        };
        let rows = self.conn().await?.rows(stmt.int(limit(max))).await.map_err(store_err)?;
        let mut events = rows::page::<D>(&rows)?;
        events.reverse();
        Ok(events)
    }

    async fn event(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Option<StoredEvent>> {
        let stmt = Stmt::new(&self.sql.event_by_id).uuid(event_id).str(tenant_column(tenant)?);
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        Ok(rows::page::<D>(row.as_slice())?.pop())
    }

    async fn undo_log(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        let stmt = Stmt::new(&self.sql.undo_log).str(tenant_column(tenant)?).uuid(event_id);
        let rows = self.conn().await?.rows(stmt).await.map_err(store_err)?;
        rows.iter().map(rows::undo_entry::<D>).collect()
    }

    async fn undo_log_of_stream(&self, stream: &StreamKey) -> Result<Vec<UndoLogEntry>> {
        stream.check()?;
        let rows = self.conn().await?.rows(key_stmt(&self.sql.undo_log_stream, stream)).await.map_err(store_err)?;
        rows.iter().map(rows::undo_entry::<D>).collect()
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let rows = self.conn().await?.rows(Stmt::new(&self.sql.tenants)).await.map_err(store_err)?;
        rows.iter().map(|r| Cols::<D>::of(r).text("tenant_id").map_err(store_err)).collect()
    }

    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        stream.check()?;
        let row = self.conn().await?.row(key_stmt(&self.sql.load_state, stream)).await.map_err(store_err)?;
        row.map(|r| {
            let c = Cols::<D>::of(&r);
            Ok(StoredState { version: c.count("version", "version")?, state: c.text("state").map_err(store_err)? })
        })
        .transpose()
    }
}

#[async_trait]
impl<D: Dialect> SnapshotStore for SqlStore<D> {
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>> {
        stream.check()?;
        let row = self.conn().await?.row(key_stmt(&self.sql.load_snapshot, stream)).await.map_err(store_err)?;
        row.map(|r| {
            let c = Cols::<D>::of(&r);
            Ok(Snapshot {
                stream: stream.clone(),
                version: c.count("version", "version")?,
                state: c.text("state").map_err(store_err)?,
                taken_at: c.instant("taken_at").map_err(store_err)?,
            })
        })
        .transpose()
    }

    /// Keeps the newest snapshot: an older one than the stored one is ignored.
    async fn save(&self, snapshot: Snapshot) -> Result<()> {
        snapshot.stream.check()?;
        check_snapshot(&snapshot)?;
        let version = to_i64(snapshot.version, "version")?;
        let what = || format!("the snapshot of `{}`", snapshot.stream);
        let s = &snapshot.stream;
        let fields = |sql| {
            Stmt::new(sql)
                .str(&snapshot.state)
                .arg(instant::<D>(snapshot.taken_at))
                .int(version)
                .str(tenant(s))
                .str(&s.stream_type)
                .str(&s.stream_id)
        };
        let mut conn = self.conn().await?;
        if let Some(sql) = &self.sql.save_snapshot {
            conn.run(fields(sql)).await.map_err(|e| write_err(e, what))?;
            return Ok(());
        }
        // Update a stored older one; else insert; an insert that meets a row another
        // saver just inserted updates it if it is older.
        for _ in 0..2 {
            if conn.run(fields(&self.sql.update_snapshot).int(version)).await.map_err(|e| write_err(e, what))? > 0 {
                return Ok(());
            }
            match conn.run(fields(&self.sql.insert_snapshot)).await {
                Ok(_) => return Ok(()),
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(write_err(e, what)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> Outbox for SqlStore<D> {
    async fn pending(&self, max: usize) -> Result<Vec<OutboxRecord>> {
        let stmt = Stmt::new(&self.sql.outbox_pending).int(limit(max));
        let rows = self.conn().await?.rows(stmt).await.map_err(store_err)?;
        rows.iter().map(rows::outbox::<D>).collect()
    }

    async fn mark_published(&self, id: Uuid) -> Result<()> {
        let stmt = Stmt::new(&self.sql.outbox_published).arg(instant::<D>(Utc::now())).uuid(id);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn claim(&self, relay: &str, max: usize, lease: Duration) -> Result<Vec<OutboxRecord>> {
        let now = Utc::now();
        let until = at::<D>(crate::common::lease_until(now, lease));
        let mut claimed: Vec<(i64, OutboxRecord)> = Vec::new();
        let mut tx = self.claimer().await?;
        let done: Result<()> = async {
            if D::RETURNING {
                let stmt = Stmt::new(&self.sql.outbox_claim)
                    .str(relay)
                    .arg(until)
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .str(relay)
                    .int(limit(max));
                for r in tx.rows(stmt).await.map_err(store_err)? {
                    claimed.push((Cols::<D>::of(&r).int("position").map_err(store_err)?, rows::outbox::<D>(&r)?));
                }
                return Ok(());
            }
            let stmt = Stmt::new(&self.sql.outbox_claim)
                .arg(at::<D>(now))
                .arg(at::<D>(now))
                .arg(at::<D>(now))
                .arg(at::<D>(now))
                .str(relay)
                .int(limit(max));
            for r in tx.rows(stmt).await.map_err(store_err)? {
                claimed.push((Cols::<D>::of(&r).int("position").map_err(store_err)?, rows::outbox::<D>(&r)?));
            }
            if !claimed.is_empty() {
                let sql = with_list(
                    &self.dialect,
                    "UPDATE {t}outbox SET claimed_by = ?, claimed_until = ? WHERE position IN ({in})",
                    "?",
                    claimed.len(),
                );
                let mut stmt = Stmt::new(&sql).str(relay).arg(until);
                for (position, _) in &claimed {
                    stmt = stmt.int(*position);
                }
                tx.run(stmt).await.map_err(store_err)?;
            }
            Ok(())
        }
        .await;
        match done {
            Ok(()) => tx.done().await?,
            Err(e) => return tx.fail(e).await,
        }
        claimed.sort_by_key(|(position, _)| *position);
        Ok(claimed.into_iter().map(|(_, r)| r).collect())
    }

    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()> {
        let stmt = Stmt::new(&self.sql.outbox_failed)
            .int(i64::from(to_i32(max_attempts, "max attempts")?))
            .arg(Value::String(lossy(error).into_owned()))
            .arg(at::<D>(crate::common::lease_until(Utc::now(), retry_after)))
            .uuid(id);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn mark_all_published(&self, ids: &[Uuid]) -> Result<()> {
        let sql =
            "UPDATE {t}outbox SET status = 'published', published_at = ?, claimed_until = NULL WHERE id IN ({in})";
        self.update_outbox(sql, Some(instant::<D>(Utc::now())), ids).await.map(drop)
    }

    async fn release(&self, ids: &[Uuid]) -> Result<()> {
        let sql =
            "UPDATE {t}outbox SET claimed_by = NULL, claimed_until = NULL WHERE status = 'pending' AND id IN ({in})";
        self.update_outbox(sql, None, ids).await.map(drop)
    }

    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64> {
        let sql = "UPDATE {t}outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, claimed_until = NULL \
                   WHERE status = 'dead' AND id IN ({in})";
        self.update_outbox(sql, Some(at::<D>(Utc::now())), ids).await
    }

    async fn dead(&self) -> Result<Vec<OutboxRecord>> {
        let rows = self.conn().await?.rows(Stmt::new(&self.sql.outbox_dead)).await.map_err(store_err)?;
        rows.iter().map(rows::outbox::<D>).collect()
    }

    async fn counts(&self) -> Result<OutboxCounts> {
        let row = self.conn().await?.row(Stmt::new(&self.sql.outbox_counts)).await.map_err(store_err)?;
        let Some(r) = row else { return Ok(OutboxCounts::default()) };
        let c = Cols::<D>::of(&r);
        Ok(OutboxCounts { pending: c.count("pending", "pending rows")?, dead: c.count("dead", "dead rows")? })
    }
}
