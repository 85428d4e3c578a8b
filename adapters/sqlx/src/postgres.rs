//! The PostgreSQL store.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_stream::try_stream;
use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, Outbox, OutboxMessage, OutboxRecord, ReadStall,
    Snapshot, SnapshotStore, StoredEvent, StoredState, StreamKey, async_trait,
};
use cqrs_ddd::{Error, Result};
use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::common::{
    EventRow, Migration, PROCESSED_KEY, StreamCheck, Txn, conflict, conflict_in, decode_event, decode_page,
    has_unguarded_states, headers_json, is_unique_violation, outbox_status, row_headers, store_err, tenant,
    tenant_column, to_i32, to_i64, to_u64, violates,
};
use crate::storable::{check_batch, check_snapshot, lossy, refusal, refused_in_batch, write_err};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, sql: include_str!("../migrations/postgres/0002_projections.sql") },
    Migration { version: 3, sql: include_str!("../migrations/postgres/0003_sagas.sql") },
    Migration { version: 4, sql: include_str!("../migrations/postgres/0004_tenancy.sql") },
];

/// Event store, state rows, snapshots, outbox, sagas and scheduled commands on PostgreSQL.
///
/// Cheap to clone. A command's whole batch (events of every stream, state rows, outbox
/// rows, its idempotency key) is one statement: one round trip, one commit. The pool does
/// not ping connections on acquire (that would add a round trip to every command).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// The schema holding the tables (created by `migrate`); default `public`.
    pub schema: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long `connect` waits for the server's answer before it gives up; default 5 s.
    pub connect_timeout: Duration,
}

impl PgOptions {
    /// Options for `url`, schema `public`, 16 connections, a connect timeout of 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: "public".to_owned(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Puts the tables in `schema` (letters, digits and `_` only).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long `connect` waits for the server's answer.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl PgStore {
    /// Connects to `url` with the default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgOptions::new(url)).await
    }

    /// Connects with `options`.
    ///
    /// One connection is opened first, within [`PgOptions::connect_timeout`], so that a
    /// server that cannot be used fails at once with its real cause as
    /// [`Error::Connect`]: connection refused at host:port, no answer in time, database
    /// or role missing, password refused. (A pool alone retries a refused connection until
    /// its acquire timeout, 30 s, and then reports only that it timed out.) That
    /// connection is closed and the pool opens its own on demand: one extra connection
    /// per `connect`.
    pub async fn connect_with(options: PgOptions) -> Result<Self> {
        let connect: PgConnectOptions = options.url.parse().map_err(|e| Error::Connect {
            backend: "PostgreSQL",
            target: "(the url)".to_owned(),
            reason: format!("the url does not parse: {e}"),
        })?;
        let store = Self::from_pool(
            PgPoolOptions::new()
                .max_connections(options.max_connections)
                .test_before_acquire(false)
                .connect_lazy_with(connect.clone()),
            &options.schema,
        )?;
        match tokio::time::timeout(options.connect_timeout, PgConnection::connect_with(&connect)).await {
            Ok(Ok(first)) => {
                let _ = first.close().await;
                Ok(store)
            }
            Ok(Err(e)) => Err(connect_error(&connect, &e)),
            Err(_) => Err(Error::Connect {
                backend: "PostgreSQL",
                target: target(&connect),
                reason: format!(
                    "no answer within {:?} (PgOptions::connect_timeout): is this a PostgreSQL server, reachable from here?",
                    options.connect_timeout
                ),
            }),
        }
    }

    /// Uses an existing pool; tables live in `schema`.
    pub fn from_pool(pool: PgPool, schema: &str) -> Result<Self> {
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::store(format!("schema name `{schema}` must be letters, digits and `_`")));
        }
        Ok(PgStore { pool, sql: Arc::new(Sql::new(&format!("\"{schema}\""))) })
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema and tables, or brings them up to date. Safe to run from
    /// several processes at once (an advisory lock serializes them).
    pub async fn migrate(&self) -> Result<()> {
        let mut tx = Txn::begin(&self.pool, None).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cqrs_ddd_migrate'))")
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let s = &self.sql.schema;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.cqrs_ddd_migrations \
             (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        let applied: Vec<i64> = sqlx::query_scalar(&format!("SELECT version FROM {s}.cqrs_ddd_migrations"))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(&m.sql.replace("{schema}", s)).execute(&mut *tx).await.map_err(store_err)?;
            sqlx::query(&format!("INSERT INTO {s}.cqrs_ddd_migrations (version) VALUES ($1)"))
                .bind(m.version)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }

    /// Commits a batch inside a transaction the caller controls, so rows of the caller's
    /// own commit with the events (the unit of work over a sqlx transaction). On a version
    /// conflict or an idempotency key already processed the transaction stays usable: the
    /// write is undone to a savepoint.
    pub async fn commit_in(&self, tx: &mut PgConnection, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        if has_unguarded_states(&batch)
            && let Err(e) = self.check_states(tx, &batch).await
        {
            return Err(self.processed_or(tx, &batch, e).await);
        }
        sqlx::query("SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
        match self.write(tx, &batch).await {
            Ok(rows) => receipt(&batch, rows),
            Err(e) if is_unique_violation(&e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
                Err(self.refused(tx, &batch, &e).await)
            }
            Err(e) => match refusal(&e) {
                Some(reason) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT cqrs_ddd_commit").execute(&mut *tx).await.map_err(store_err)?;
                    Err(refused_in_batch(&batch, reason))
                }
                None => Err(store_err(e)),
            },
        }
    }

    /// The one statement that writes a batch.
    async fn write(
        &self,
        conn: &mut PgConnection,
        batch: &CommitBatch,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let events = batch.event_count();
        if batch.states.is_empty()
            && batch.outbox.is_empty()
            && batch.idempotency_key.is_none()
            && (1..=VALUES_ROWS).contains(&events)
        {
            return self.write_values(conn, batch, events).await;
        }
        let cols = Columns::of(batch).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let sql = self.sql.commit(Parts {
            events: !batch.appends.is_empty(),
            states: !batch.states.is_empty(),
            outbox: !batch.outbox.is_empty(),
            key: batch.idempotency_key.is_some(),
        });
        let mut q = sqlx::query(sql);
        if !batch.appends.is_empty() {
            q = q
                .bind(cols.tenant)
                .bind(cols.stream_type)
                .bind(cols.stream_id)
                .bind(cols.version)
                .bind(cols.event_id)
                .bind(cols.event_type)
                .bind(cols.schema_version)
                .bind(cols.payload)
                .bind(cols.correlation)
                .bind(cols.causation)
                .bind(cols.principal)
                .bind(cols.headers)
                .bind(cols.occurred_at);
        }
        if !batch.states.is_empty() {
            q = q.bind(cols.s_tenant).bind(cols.s_type).bind(cols.s_id).bind(cols.s_version).bind(cols.s_state);
        }
        if !batch.outbox.is_empty() {
            q = q.bind(cols.o_id).bind(cols.o_topic).bind(cols.o_payload).bind(cols.o_headers).bind(cols.o_created);
        }
        if let Some(key) = batch.idempotency_key {
            q = q.bind(key).bind(batch.tenant_id.as_deref().unwrap_or(""));
        }
        q.fetch_all(conn).await
    }

    /// The common case, a few events and nothing else: a plain multi-row `INSERT ..
    /// VALUES`, cheaper to bind and to plan than arrays.
    async fn write_values(
        &self,
        conn: &mut PgConnection,
        batch: &CommitBatch,
        events: usize,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let mut q = sqlx::query(&self.sql.insert_values[events - 1]);
        for a in &batch.appends {
            for (version, e) in (a.expected_version + 1..).zip(&a.events) {
                let version = i64::try_from(version)
                    .map_err(|_| sqlx::Error::Protocol(format!("version {version} too large")))?;
                q = q
                    .bind(tenant(&a.stream))
                    .bind(&a.stream.stream_type)
                    .bind(&a.stream.stream_id)
                    .bind(version)
                    .bind(e.event_id)
                    .bind(e.event_type)
                    .bind(i32::try_from(e.schema_version).unwrap_or(i32::MAX))
                    .bind(&e.payload)
                    .bind(e.metadata.correlation_id)
                    .bind(e.metadata.causation_id)
                    .bind(e.metadata.principal.as_deref())
                    .bind(headers_json(&e.metadata.headers))
                    .bind(e.occurred_at);
            }
        }
        q.fetch_all(conn).await
    }

    /// Checks state rows that no event append guards, inside the caller's transaction.
    async fn check_states(&self, conn: &mut PgConnection, batch: &CommitBatch) -> Result<()> {
        for s in &batch.states {
            let actual: Option<i64> = sqlx::query_scalar(&self.sql.state_version_for_update)
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

    /// Why the batch statement hit a unique violation: its idempotency key is recorded
    /// already, or a stream moved. A recorded key wins over a version conflict (the
    /// command is done; a retry after the conflict would be refused anyway), whichever
    /// constraint the statement happened to trip first; telling them apart costs a query
    /// only when both could apply. Reads on the connection that failed (never a second one
    /// from the pool: under load every connection could be waiting for another).
    async fn refused(&self, conn: &mut PgConnection, batch: &CommitBatch, e: &sqlx::Error) -> Error {
        if let Some(key) = batch.idempotency_key
            && violates(e, PROCESSED_KEY)
        {
            return Error::AlreadyProcessed { key };
        }
        let conflict = self.find_conflict(conn, batch).await;
        self.processed_or(conn, batch, conflict).await
    }

    /// `AlreadyProcessed` instead of a version conflict when the batch's key is recorded.
    async fn processed_or(&self, conn: &mut PgConnection, batch: &CommitBatch, e: Error) -> Error {
        let Some(key) = batch.idempotency_key.filter(|_| e.is_conflict()) else { return e };
        let processed = sqlx::query_scalar::<_, bool>(&self.sql.processed)
            .bind(key)
            .bind(batch.tenant_id.as_deref().unwrap_or(""))
            .fetch_one(conn)
            .await;
        match processed {
            Ok(true) => Error::AlreadyProcessed { key },
            Ok(false) => e,
            Err(db) => store_err(db),
        }
    }

    /// After a unique violation on the events: which stream moved, and to what version.
    async fn find_conflict(&self, conn: &mut PgConnection, batch: &CommitBatch) -> Error {
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

impl PgStore {
    /// A page of all events after `after`, of every tenant or of one tenant column.
    async fn page(&self, tenant: Option<&str>, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (commit, position) = (to_i64(after.commit, "cursor")?, to_i64(after.position, "cursor")?);
        let query = match tenant {
            Some(t) => sqlx::query(&self.sql.read_all_tenant).bind(commit).bind(position).bind(limit).bind(t),
            None => sqlx::query(&self.sql.read_all).bind(commit).bind(position).bind(limit),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(store_err)?;
        decode_page(&rows, decode_event)
    }

    async fn version_on(&self, conn: &mut PgConnection, stream: &StreamKey) -> Result<u64> {
        let v: i64 = sqlx::query_scalar(&self.sql.stream_version)
            .bind(tenant(stream))
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .fetch_one(conn)
            .await
            .map_err(store_err)?;
        to_u64(v, "version")
    }
}

/// Where a connection goes, without credentials: `host:port/database`.
fn target(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!("{}/{database}", socket.display()),
        None => format!("{}:{}/{database}", options.get_host(), options.get_port()),
    }
}

/// Why a first connection failed, in the words a user can act on.
fn connect_error(options: &PgConnectOptions, e: &sqlx::Error) -> Error {
    let (host, port) = (options.get_host(), options.get_port());
    let reason = match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused at {host}:{port}: is PostgreSQL running and listening there?")
        }
        sqlx::Error::Io(io) => format!("cannot reach {host}:{port}: {io}"),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let database = options.get_database().unwrap_or(options.get_username());
            let user = options.get_username();
            match &*code {
                "3D000" => format!("database `{database}` does not exist (SQLSTATE 3D000)"),
                "28000" if db.message().contains("does not exist") => {
                    format!("role `{user}` does not exist (SQLSTATE 28000)")
                }
                "28P01" => format!("password authentication failed for user `{user}` (SQLSTATE 28P01)"),
                _ => format!("{} (SQLSTATE {code})", db.message()),
            }
        }
        other => other.to_string(),
    };
    Error::Connect { backend: "PostgreSQL", target: target(options), reason }
}

/// Positions in batch order, matched by event id (RETURNING order is not guaranteed).
fn receipt(batch: &CommitBatch, rows: Vec<PgRow>) -> Result<CommitReceipt> {
    let ids = batch.appends.iter().flat_map(|a| a.events.iter().map(|e| e.event_id));
    let mut by_id = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get(0).map_err(store_err)?;
        let position: i64 = r.try_get(1).map_err(store_err)?;
        by_id.insert(id, to_u64(position, "position")?);
    }
    let positions = ids.map(|id| by_id.get(&id).copied().unwrap_or(0)).collect();
    Ok(CommitReceipt { positions })
}

/// The batch as column arrays, for `UNNEST`.
#[derive(Default)]
struct Columns<'a> {
    tenant: Vec<&'a str>,
    stream_type: Vec<&'a str>,
    stream_id: Vec<&'a str>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    payload: Vec<&'a str>,
    correlation: Vec<Option<Uuid>>,
    causation: Vec<Option<Uuid>>,
    principal: Vec<Option<&'a str>>,
    headers: Vec<Option<String>>,
    occurred_at: Vec<DateTime<Utc>>,
    s_tenant: Vec<&'a str>,
    s_type: Vec<&'a str>,
    s_id: Vec<&'a str>,
    s_version: Vec<i64>,
    s_state: Vec<&'a str>,
    o_id: Vec<Uuid>,
    o_topic: Vec<&'a str>,
    o_payload: Vec<&'a str>,
    o_headers: Vec<String>,
    o_created: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a CommitBatch) -> Result<Self> {
        let mut c = Columns::default();
        for a in &batch.appends {
            for (version, e) in (a.expected_version + 1..).zip(&a.events) {
                c.tenant.push(tenant(&a.stream));
                c.stream_type.push(&a.stream.stream_type);
                c.stream_id.push(&a.stream.stream_id);
                c.version.push(to_i64(version, "version")?);
                c.event_id.push(e.event_id);
                c.event_type.push(e.event_type);
                c.schema_version.push(to_i32(e.schema_version, "schema version")?);
                c.payload.push(&e.payload);
                c.correlation.push(e.metadata.correlation_id);
                c.causation.push(e.metadata.causation_id);
                c.principal.push(e.metadata.principal.as_deref());
                c.headers.push(headers_json(&e.metadata.headers));
                c.occurred_at.push(e.occurred_at);
            }
        }
        for s in &batch.states {
            c.s_tenant.push(tenant(&s.stream));
            c.s_type.push(&s.stream.stream_type);
            c.s_id.push(&s.stream.stream_id);
            c.s_version.push(to_i64(s.version, "version")?);
            c.s_state.push(&s.state);
        }
        for o in &batch.outbox {
            c.o_id.push(o.id);
            c.o_topic.push(&o.topic);
            c.o_payload.push(&o.payload);
            c.o_headers.push(serde_json::to_string(&o.headers).unwrap_or_else(|_| "{}".to_owned()));
            c.o_created.push(o.created_at);
        }
        Ok(c)
    }
}

/// What a batch holds, which picks its commit statement.
#[allow(clippy::struct_excessive_bools)] // independent flags: one prepared statement per combination
#[derive(Clone, Copy)]
struct Parts {
    events: bool,
    states: bool,
    outbox: bool,
    key: bool,
}

impl Parts {
    fn index(self) -> usize {
        usize::from(self.events)
            | usize::from(self.states) << 1
            | usize::from(self.outbox) << 2
            | usize::from(self.key) << 3
    }

    fn of(index: usize) -> Self {
        Parts { events: index & 1 != 0, states: index & 2 != 0, outbox: index & 4 != 0, key: index & 8 != 0 }
    }
}

/// Every statement, with the schema filled in once.
pub(crate) struct Sql {
    pub(crate) schema: String,
    /// The commit statement for each combination of parts present.
    commit: [String; 16],
    /// Whether an idempotency key is recorded.
    processed: String,
    read_stream: String,
    read_all: String,
    read_all_tenant: String,
    stream_version: String,
    load_state: String,
    state_version_for_update: String,
    load_snapshot: String,
    save_snapshot: String,
    outbox_pending: String,
    outbox_published: String,
    outbox_failed: String,
    outbox_dead: String,
    outbox_claim: String,
    outbox_retry_dead: String,
    /// `INSERT .. VALUES` of 1..=VALUES_ROWS events.
    insert_values: Vec<String>,
    head: String,
    /// The horizon and, when it is below the snapshot's xmax, the transaction holding it.
    read_stall: String,
    pub(crate) p: crate::pg_projection::ProjectionSql,
    pub(crate) saga: crate::pg_saga::SagaSql,
}

/// The gap-safe horizon of the snapshot `s` (a `pg_snapshot` expression), as a `bigint`
/// transaction id: every event row whose transaction id is below it is committed or will
/// never be (see the crate docs, "Gap-safe global order").
///
/// It is the oldest transaction still running in the snapshot (`pg_snapshot_xip`) that
/// is not positively known to run in another database, else the snapshot's xmax. A
/// transaction of another database cannot write this database's events, so it does not
/// hold readers back; one whose database is unknown does (a prepared transaction, which
/// `pg_stat_activity` does not list; a backend without a database).
/// `backend_xid` is a 32-bit xid: it is matched with the low 32 bits of the `xid8`,
/// unambiguous among running transactions. On a standby the snapshot lists no running
/// transactions, so the horizon stays the snapshot's xmin there.
fn horizon(s: &str) -> String {
    format!(
        "CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin({s})::text::bigint ELSE COALESCE(\
         (SELECT min(x::text::bigint) FROM pg_snapshot_xip({s}) AS x WHERE NOT EXISTS (SELECT 1 \
         FROM pg_stat_activity a WHERE a.datname <> current_database() \
         AND a.backend_xid::text::bigint = x::text::bigint % 4294967296)), \
         pg_snapshot_xmax({s})::text::bigint) END"
    )
}

/// Batches of at most this many events (and nothing else) use `INSERT .. VALUES`.
const VALUES_ROWS: usize = 32;

const OUTBOX_COLUMNS: &str =
    "id, topic, payload::text, headers::text, created_at, status, attempts, last_error, position";
const EVENT_COLUMNS: &str = "position, transaction_id, tenant_id, stream_type, stream_id, version, event_id, \
    event_type, schema_version, payload::text, correlation_id, causation_id, principal, headers::text, occurred_at";

impl Sql {
    fn new(s: &str) -> Self {
        let commit = std::array::from_fn(|i| Self::commit_statement(s, Parts::of(i)));
        let gap_safe = format!("transaction_id < (SELECT {} FROM pg_current_snapshot() AS snap(s))", horizon("snap.s"));
        Sql {
            schema: s.to_owned(),
            commit,
            processed: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.processed_commands WHERE key = $1 AND tenant_id = $2)"
            ),
            // A row below version 1 (which no writer makes) is read first, whatever the
            // starting version, so that loading the stream reports it: one index probe.
            read_stream: format!(
                "SELECT version, event_type, schema_version, payload::text FROM {s}.events \
                 WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3 AND version > CASE WHEN EXISTS \
                 (SELECT 1 FROM {s}.events WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3 AND version < 1) \
                 THEN $5 ELSE $4 END ORDER BY version"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE (transaction_id, position) > ($1, $2) AND {gap_safe} \
                 ORDER BY transaction_id, position LIMIT $3"
            ),
            read_all_tenant: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE (transaction_id, position) > ($1, $2) AND {gap_safe} \
                 AND tenant_id = $4 ORDER BY transaction_id, position LIMIT $3"
            ),
            stream_version: format!(
                "SELECT COALESCE(MAX(version), 0) FROM {s}.events WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3"
            ),
            load_state: format!(
                "SELECT version, state::text FROM {s}.states WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3"
            ),
            state_version_for_update: format!(
                "SELECT version FROM {s}.states WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3 FOR UPDATE"
            ),
            load_snapshot: format!(
                "SELECT version, state::text, taken_at FROM {s}.snapshots \
                 WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (tenant_id, stream_type, stream_id, version, state, taken_at) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
                 SET version = EXCLUDED.version, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at \
                 WHERE {s}.snapshots.version < EXCLUDED.version"
            ),
            outbox_pending: format!(
                "SELECT {OUTBOX_COLUMNS} FROM {s}.outbox WHERE status = 'pending' ORDER BY position LIMIT $1"
            ),
            outbox_published: format!(
                "UPDATE {s}.outbox SET status = 'published', published_at = now(), claimed_until = NULL WHERE id = $1"
            ),
            outbox_failed: format!(
                "UPDATE {s}.outbox SET attempts = attempts + 1, last_error = $2, claimed_until = NULL, \
                 next_attempt_at = now() + $3 * interval '1 millisecond', \
                 status = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE status END WHERE id = $1"
            ),
            outbox_dead: format!("SELECT {OUTBOX_COLUMNS} FROM {s}.outbox WHERE status = 'dead' ORDER BY position"),
            outbox_claim: format!(
                "UPDATE {s}.outbox SET claimed_by = $1, claimed_until = now() + $3 * interval '1 millisecond' \
                 WHERE position IN (SELECT position FROM {s}.outbox WHERE status = 'pending' AND next_attempt_at <= now() \
                 AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY position LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {OUTBOX_COLUMNS}"
            ),
            outbox_retry_dead: format!(
                "UPDATE {s}.outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), claimed_until = NULL \
                 WHERE status = 'dead' AND id = ANY($1)"
            ),
            head: format!(
                "SELECT transaction_id, position FROM {s}.events WHERE {gap_safe} \
                 ORDER BY transaction_id DESC, position DESC LIMIT 1"
            ),
            read_stall: format!(
                "SELECT h.xid, age((h.xid % 4294967296)::text::xid), a.pid, a.application_name, a.xact_start \
                 FROM (SELECT {} AS xid, pg_snapshot_xmax(snap.s)::text::bigint AS xmax \
                 FROM pg_current_snapshot() AS snap(s)) AS h \
                 LEFT JOIN pg_stat_activity a ON a.backend_xid::text::bigint = h.xid % 4294967296 \
                 WHERE h.xid < h.xmax ORDER BY a.xact_start LIMIT 1",
                horizon("snap.s")
            ),
            p: crate::pg_projection::ProjectionSql::new(s),
            saga: crate::pg_saga::SagaSql::new(s),
            insert_values: (1..=VALUES_ROWS).map(|n| Self::insert_values(s, n)).collect(),
        }
    }

    fn insert_values(s: &str, rows: usize) -> String {
        let mut sql = format!(
            "INSERT INTO {s}.events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, \
             payload, correlation_id, causation_id, principal, headers, occurred_at) VALUES "
        );
        for r in 0..rows {
            let b = r * 13;
            if r > 0 {
                sql.push_str(", ");
            }
            let p: Vec<String> = (1..=13).map(|i| format!("${}", b + i)).collect();
            let _ = write!(
                sql,
                "({}, {}, {}, {}, {}, {}, {}, {}::json, {}, {}, {}, {}::json, {})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
            );
        }
        sql.push_str(" RETURNING event_id, position");
        sql
    }

    fn commit(&self, parts: Parts) -> &str {
        &self.commit[parts.index()]
    }

    /// Data-modifying CTEs in one statement: atomic, one round trip. PostgreSQL runs
    /// every one of them even when the final `SELECT` does not read it (a batch of only
    /// an idempotency key still records it).
    fn commit_statement(s: &str, Parts { events, states, outbox, key }: Parts) -> String {
        let mut parts = Vec::new();
        let mut n = 0;
        let mut p = |count: usize| {
            let list: Vec<String> = (n + 1..=n + count).map(|i| format!("${i}")).collect();
            n += count;
            list
        };
        if events {
            let a = p(13);
            parts.push(format!(
                "ev AS (INSERT INTO {s}.events (tenant_id, stream_type, stream_id, version, event_id, event_type, \
                 schema_version, payload, correlation_id, causation_id, principal, headers, occurred_at) \
                 SELECT t, st, sid, v, eid, et, sv, p::json, corr, caus, pr, h::json, oa FROM UNNEST(\
                 {}::text[], {}::text[], {}::text[], {}::int8[], {}::uuid[], {}::text[], {}::int4[], {}::text[], \
                 {}::uuid[], {}::uuid[], {}::text[], {}::text[], {}::timestamptz[]) \
                 AS x(t, st, sid, v, eid, et, sv, p, corr, caus, pr, h, oa) RETURNING event_id, position)",
                a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]
            ));
        }
        if states {
            let a = p(5);
            parts.push(format!(
                "st AS (INSERT INTO {s}.states (tenant_id, stream_type, stream_id, version, state) \
                 SELECT t, st, sid, v, j::jsonb FROM UNNEST({}::text[], {}::text[], {}::text[], {}::int8[], {}::text[]) \
                 AS x(t, st, sid, v, j) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
                 SET version = EXCLUDED.version, state = EXCLUDED.state, updated_at = now() RETURNING 1)",
                a[0], a[1], a[2], a[3], a[4]
            ));
        }
        if outbox {
            let a = p(5);
            parts.push(format!(
                "ob AS (INSERT INTO {s}.outbox (id, topic, payload, headers, created_at) \
                 SELECT i, tp, pl::jsonb, h::jsonb, c FROM UNNEST({}::uuid[], {}::text[], {}::text[], {}::text[], \
                 {}::timestamptz[]) AS x(i, tp, pl, h, c) RETURNING 1)",
                a[0], a[1], a[2], a[3], a[4]
            ));
        }
        if key {
            let a = p(2);
            parts.push(format!(
                "pk AS (INSERT INTO {s}.processed_commands (key, tenant_id) VALUES ({}::uuid, {}))",
                a[0], a[1]
            ));
        }
        let mut sql = String::new();
        if !parts.is_empty() {
            let _ = write!(sql, "WITH {} ", parts.join(", "));
        }
        if events {
            sql.push_str("SELECT event_id, position FROM ev");
        } else {
            sql.push_str("SELECT NULL::uuid, NULL::int8 WHERE false");
        }
        sql
    }
}

impl EventRow for PgRow {
    fn commit_key(&self) -> std::result::Result<i64, sqlx::Error> {
        self.try_get("transaction_id")
    }

    fn schema_version(&self) -> std::result::Result<i64, sqlx::Error> {
        self.try_get::<i32, _>("schema_version").map(i64::from)
    }
}

fn decode_outbox(row: &PgRow) -> Result<OutboxRecord> {
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
        attempts: u32::try_from(row.try_get::<i32, _>(6).map_err(get)?).unwrap_or(0),
        last_error: row.try_get(7).map_err(get)?,
    })
}

#[async_trait]
impl EventStore for PgStore {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        check_batch(&batch)?;
        if has_unguarded_states(&batch) {
            // A cancelled commit closes its connection (see `Txn`).
            let mut tx = Txn::begin(&self.pool, None).await?;
            return match self.commit_in(&mut tx, batch).await {
                Ok(receipt) => {
                    tx.commit().await.map_err(store_err)?;
                    Ok(receipt)
                }
                Err(e) => tx.fail(e).await,
            };
        }
        let mut conn = self.pool.acquire().await.map_err(store_err)?;
        // One statement in autocommit: atomic, one round trip, one commit.
        match self.write(&mut conn, &batch).await {
            Ok(rows) => receipt(&batch, rows),
            Err(e) if is_unique_violation(&e) => Err(self.refused(&mut conn, &batch, &e).await),
            Err(e) => Err(refusal(&e).map_or_else(|| store_err(e), |reason| refused_in_batch(&batch, reason))),
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

    async fn read_stall(&self) -> Result<Option<ReadStall>> {
        let row = sqlx::query(&self.sql.read_stall).fetch_optional(&self.pool).await.map_err(store_err)?;
        row.map(|r| {
            let xid: i64 = r.try_get(0).map_err(store_err)?;
            let age: Option<i32> = r.try_get(1).map_err(store_err)?;
            Ok(ReadStall {
                xid: to_u64(xid, "transaction id")?,
                xid_age: age.and_then(|a| u64::try_from(a).ok()),
                pid: r.try_get(2).map_err(store_err)?,
                application_name: r.try_get::<Option<String>, _>(3).map_err(store_err)?.filter(|n| !n.is_empty()),
                since: r.try_get(4).map_err(store_err)?,
            })
        })
        .transpose()
    }

    async fn head(&self) -> Result<Cursor> {
        let row = sqlx::query(&self.sql.head).fetch_optional(&self.pool).await.map_err(store_err)?;
        match row {
            Some(r) => Ok(Cursor {
                commit: to_u64(r.try_get(0).map_err(store_err)?, "transaction id")?,
                position: to_u64(r.try_get(1).map_err(store_err)?, "position")?,
            }),
            None => Ok(Cursor::START),
        }
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
impl SnapshotStore for PgStore {
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
impl Outbox for PgStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.sql.outbox_pending)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_outbox).collect()
    }

    async fn mark_published(&self, id: Uuid) -> Result<()> {
        sqlx::query(&self.sql.outbox_published).bind(id).execute(&self.pool).await.map_err(store_err)?;
        Ok(())
    }

    async fn claim(&self, relay: &str, limit: usize, lease: Duration) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.sql.outbox_claim)
            .bind(relay)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(millis(lease))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        let mut claimed = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(8).map_err(store_err)?, decode_outbox(r)?)))
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(position, _)| *position);
        Ok(claimed.into_iter().map(|(_, r)| r).collect())
    }

    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64> {
        let done = sqlx::query(&self.sql.outbox_retry_dead).bind(ids).execute(&self.pool).await.map_err(store_err)?;
        Ok(done.rows_affected())
    }

    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()> {
        sqlx::query(&self.sql.outbox_failed)
            .bind(id)
            .bind(lossy(error))
            .bind(millis(retry_after))
            .bind(to_i32(max_attempts, "max attempts")?)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn dead(&self) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.sql.outbox_dead).fetch_all(&self.pool).await.map_err(store_err)?;
        rows.iter().map(decode_outbox).collect()
    }
}

/// A duration in whole milliseconds, for `interval` arithmetic.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
