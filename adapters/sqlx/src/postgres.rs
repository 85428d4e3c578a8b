//! The PostgreSQL dialect: the commit in one statement, the gap-safe horizon of
//! `read_all`, the read stall, migrations under an advisory lock.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, ReadStall};
use cqrs_ddd::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::common::{
    Migration, PROCESSED_KEY, Txn, first_connection, has_unguarded_states, headers_json, is_guarded,
    is_unique_violation, migrate_in_txn, network_reason, retry_deadlocks, store_err, tenant, to_i32, to_i64,
    to_ms_precision, to_u64, violates,
};
use crate::dialect::{Dialect, number_placeholders, sealed};
use crate::exec::{SqlConn, Stmt};
use crate::rows::EVENT_COLUMNS;
use crate::storable::{refusal, refused_in_batch};
use crate::store::SqlStore;

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, sql: include_str!("../migrations/postgres/0002_projections.sql") },
    Migration { version: 3, sql: include_str!("../migrations/postgres/0003_sagas.sql") },
    Migration { version: 4, sql: include_str!("../migrations/postgres/0004_tenancy.sql") },
    Migration { version: 5, sql: include_str!("../migrations/postgres/0005_document_ids.sql") },
    Migration { version: 6, sql: include_str!("../migrations/postgres/0006_lock_fences.sql") },
    Migration { version: 7, sql: include_str!("../migrations/postgres/0007_outbox_streams.sql") },
    Migration { version: 8, sql: include_str!("../migrations/postgres/0008_undo_log.sql") },
    Migration { version: 9, sql: include_str!("../migrations/postgres/0009_jobs.sql") },
];

/// Event store, state rows, snapshots, outbox, projections, sagas and scheduled commands
/// on PostgreSQL.
///
/// A command's whole batch (events of every stream, state rows, outbox rows, its
/// idempotency key) is one statement: one round trip, one commit. The pool does not
/// ping connections on acquire (that would add a round trip to every command).
pub type PgStore = SqlStore<Postgres>;

/// The PostgreSQL [`Dialect`]: tables in a schema of their own.
#[derive(Clone)]
pub struct Postgres {
    prefix: String,
    sql: Arc<PgSql>,
}

impl sealed::Sealed for Postgres {}

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

impl SqlStore<Postgres> {
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
        first_connection::<PgConnection>(&connect, options.connect_timeout, "PostgreSQL", target(&connect), |e| {
            connect_error(&connect, e)
        })
        .await?;
        Ok(store)
    }

    /// Uses an existing pool; tables live in `schema`.
    pub fn from_pool(pool: PgPool, schema: &str) -> Result<Self> {
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::store(format!("schema name `{schema}` must be letters, digits and `_`")));
        }
        let s = format!("\"{schema}\"");
        Ok(SqlStore::with(pool, Postgres { prefix: format!("{s}."), sql: Arc::new(PgSql::new(&s)) }))
    }

    /// The schema, quoted.
    fn schema(&self) -> &str {
        self.dialect.prefix.trim_end_matches('.')
    }
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    type Conn = PgConnection;
    type Row = PgRow;

    const NAME: &'static str = "PostgreSQL";
    const FLAVOR: crate::dialect::Flavor = crate::dialect::Flavor::Postgres;
    const COMMIT_ORDER: bool = true;

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn render(&self, template: &str) -> String {
        number_placeholders(&template.replace("{t}", &self.prefix))
    }

    /// The upsert, its commit not waiting for the disk: a snapshot is a cache of what the
    /// events (committed, and flushed, before it) already say, so a crash that loses it
    /// only makes the next load replay more. `set_config(.., true)` lasts until the end of
    /// the statement's own transaction, its commit included.
    fn save_snapshot_sql(&self) -> Option<String> {
        let relaxed = crate::dialect::SAVE_SNAPSHOT.replace(
            "VALUES (?::jsonb, ?, ?, ?, ?, ?)",
            "SELECT ?::jsonb, ?, ?, ?, ?, ? FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed",
        );
        Some(self.render(&relaxed))
    }

    fn read_all_sql(&self, tenant: bool) -> String {
        let tenant = if tenant { " AND tenant_id = ?" } else { "" };
        self.render(&format!(
            "SELECT transaction_id AS commit_key, {EVENT_COLUMNS} FROM {{t}}events \
             WHERE (transaction_id, position) > (?, ?) AND {}{tenant} ORDER BY transaction_id, position LIMIT ?",
            gap_safe()
        ))
    }

    fn latest_sql(&self, tenant: bool) -> String {
        let tenant = if tenant { " AND tenant_id = ?" } else { "" };
        self.render(&format!(
            "SELECT transaction_id AS commit_key, {EVENT_COLUMNS} FROM {{t}}events WHERE {}{tenant} \
             ORDER BY transaction_id DESC, position DESC LIMIT ?",
            gap_safe()
        ))
    }

    fn head_sql(&self) -> String {
        self.render(&format!(
            "SELECT transaction_id AS commit_key, position FROM {{t}}events WHERE {} \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            gap_safe()
        ))
    }

    /// Migrations run in one transaction under an advisory lock, so processes take turns.
    async fn migrate(store: &PgStore) -> Result<()> {
        let s = store.schema();
        let setup = format!(
            "SELECT pg_advisory_xact_lock(hashtext('cqrs_ddd_migrate')); CREATE SCHEMA IF NOT EXISTS {s}; \
             CREATE TABLE IF NOT EXISTS {s}.cqrs_ddd_migrations \
             (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        );
        let table = format!("{s}.cqrs_ddd_migrations");
        migrate_in_txn(store, &setup, &table, MIGRATIONS, |sql: &str| sql.replace("{schema}", s)).await
    }

    async fn commit(store: &PgStore, batch: CommitBatch) -> Result<CommitReceipt> {
        // Jobs, undo log entries and deadlines are rows of their own statements: the
        // batch then needs a transaction.
        if has_unguarded_states(&batch)
            || !batch.undo_log.is_empty()
            || !batch.jobs.is_empty()
            || !batch.deadlines.is_empty()
        {
            return retry_deadlocks(|| async {
                // A cancelled commit closes its connection (see `Txn`).
                let mut tx = Txn::begin(&store.conns, None).await?;
                match Self::commit_in(store, &mut tx, &batch).await {
                    Ok(receipt) => {
                        tx.commit().await.map_err(store_err)?;
                        Ok(receipt)
                    }
                    Err(e) => tx.fail(e).await,
                }
            })
            .await;
        }
        let mut conn = store.conn().await?;
        // One statement in autocommit: atomic, one round trip, one commit.
        match Self::write(&store.dialect.sql, &mut conn, &batch).await {
            Ok(rows) => {
                conn.done();
                receipt(&batch, rows)
            }
            Err(e) if is_unique_violation(&e) => Err(Self::refused(store, &mut conn, &batch, &e).await),
            Err(e) => Err(refusal(&e).map_or_else(|| store_err(e), |reason| refused_in_batch(&batch, reason))),
        }
    }

    /// The batch behind a savepoint: state rows no event append guards first, each with
    /// its version condition, then the one statement for the rest. A refused batch is
    /// undone to the savepoint, so the caller's transaction stays usable.
    async fn commit_in(store: &PgStore, conn: &mut PgConnection, batch: &CommitBatch) -> Result<CommitReceipt> {
        conn.script("SAVEPOINT cqrs_ddd_commit").await.map_err(store_err)?;
        let failure = match Self::write_all(store, conn, batch).await {
            Ok(rows) => return receipt(batch, rows),
            Err(failure) => failure,
        };
        conn.script("ROLLBACK TO SAVEPOINT cqrs_ddd_commit").await.map_err(store_err)?;
        Err(match failure {
            Failure::State(e) => store.processed_or(conn, batch, e).await,
            Failure::Sql(e) if is_unique_violation(&e) => Self::refused(store, conn, batch, &e).await,
            Failure::Sql(e) => refusal(&e).map_or_else(|| store_err(e), |reason| refused_in_batch(batch, reason)),
        })
    }

    async fn read_stall(store: &PgStore) -> Result<Option<ReadStall>> {
        let row = store.conn().await?.row(Stmt::new(&store.dialect.sql.read_stall)).await.map_err(store_err)?;
        row.map(|r| {
            let xid: i64 = r.try_get("xid").map_err(store_err)?;
            let age: Option<i32> = r.try_get("xid_age").map_err(store_err)?;
            Ok(ReadStall {
                xid: to_u64(xid, "transaction id")?,
                xid_age: age.and_then(|a| u64::try_from(a).ok()),
                pid: r.try_get("pid").map_err(store_err)?,
                application_name: r
                    .try_get::<Option<String>, _>("application_name")
                    .map_err(store_err)?
                    .filter(|n| !n.is_empty()),
                since: r.try_get("xact_start").map_err(store_err)?,
            })
        })
        .transpose()
    }
}

/// Why a batch inside a transaction failed.
enum Failure {
    /// A state row no event append guards was refused (a conflict, a value), or an undo
    /// log entry (written already).
    State(Error),
    /// The batch statement failed.
    Sql(sqlx::Error),
}

impl Postgres {
    /// Unguarded state rows, then the batch statement for everything else, then the
    /// jobs, then the undo log entries (after the idempotency key: a batch whose key is
    /// recorded is refused as `AlreadyProcessed` first).
    async fn write_all(
        store: &PgStore,
        conn: &mut PgConnection,
        batch: &CommitBatch,
    ) -> std::result::Result<Vec<PgRow>, Failure> {
        let rows = if has_unguarded_states(batch) {
            store.write_unguarded_states(conn, batch).await.map_err(Failure::State)?;
            let rest = CommitBatch {
                states: batch.states.iter().filter(|s| is_guarded(batch, s)).cloned().collect(),
                ..batch.clone()
            };
            Self::write_any(&store.dialect.sql, conn, &rest).await.map_err(Failure::Sql)?
        } else {
            Self::write_any(&store.dialect.sql, conn, batch).await.map_err(Failure::Sql)?
        };
        store.insert_jobs(conn, &batch.jobs).await.map_err(Failure::Sql)?;
        store.write_undo_log(conn, batch).await.map_err(Failure::State)?;
        store.write_deadlines(conn, &batch.deadlines).await.map_err(Failure::State)?;
        Ok(rows)
    }

    /// [`Postgres::write`], unless the batch holds nothing it writes (only jobs, undo log
    /// entries or deadlines).
    async fn write_any(
        sql: &PgSql,
        conn: &mut PgConnection,
        batch: &CommitBatch,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        if batch.appends.is_empty()
            && batch.states.is_empty()
            && batch.outbox.is_empty()
            && batch.idempotency_key.is_none()
        {
            return Ok(Vec::new());
        }
        Self::write(sql, conn, batch).await
    }

    /// The one statement that writes a batch.
    async fn write(
        sql: &PgSql,
        conn: &mut PgConnection,
        batch: &CommitBatch,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let events = batch.event_count();
        if batch.states.is_empty()
            && batch.outbox.is_empty()
            && batch.idempotency_key.is_none()
            && (1..=VALUES_ROWS).contains(&events)
        {
            return Self::write_values(sql, conn, batch, events).await;
        }
        let cols = Columns::of(batch).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let statement = sql.commit(Parts {
            events: !batch.appends.is_empty(),
            states: !batch.states.is_empty(),
            outbox: !batch.outbox.is_empty(),
            key: batch.idempotency_key.is_some(),
        });
        let mut q = sqlx::query(statement);
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
            q = q
                .bind(cols.s_tenant)
                .bind(cols.s_type)
                .bind(cols.s_id)
                .bind(cols.s_version)
                .bind(cols.s_state)
                .bind(to_ms_precision(Utc::now()));
        }
        if !batch.outbox.is_empty() {
            q = q
                .bind(cols.o_id)
                .bind(cols.o_topic)
                .bind(cols.o_payload)
                .bind(cols.o_headers)
                .bind(cols.o_created)
                .bind(cols.o_stream);
        }
        if let Some(key) = batch.idempotency_key {
            q = q.bind(key).bind(batch.tenant_id.as_deref().unwrap_or("")).bind(to_ms_precision(Utc::now()));
        }
        q.fetch_all(conn).await
    }

    /// The common case, a few events and nothing else: a plain multi-row `INSERT ..
    /// VALUES`, cheaper to bind and to plan than arrays.
    async fn write_values(
        sql: &PgSql,
        conn: &mut PgConnection,
        batch: &CommitBatch,
        events: usize,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let mut q = sqlx::query(&sql.insert_values[events - 1]);
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
                    .bind(to_i32(e.schema_version, "schema version").map_err(|e| sqlx::Error::Protocol(e.to_string()))?)
                    .bind(&e.payload)
                    .bind(e.metadata.correlation_id)
                    .bind(e.metadata.causation_id)
                    .bind(e.metadata.principal.as_deref())
                    .bind(headers_json(&e.metadata.headers))
                    .bind(to_ms_precision(e.occurred_at));
            }
        }
        q.fetch_all(conn).await
    }

    /// Why the batch statement hit a unique violation: its idempotency key is recorded
    /// already, or a stream moved. A recorded key wins over a version conflict (the
    /// command is done; a retry after the conflict would be refused anyway), whichever
    /// constraint the statement happened to trip first; telling them apart costs a query
    /// only when both could apply. Reads on the connection that failed (never a second one
    /// from the pool: under load every connection could be waiting for another).
    async fn refused(store: &PgStore, conn: &mut PgConnection, batch: &CommitBatch, e: &sqlx::Error) -> Error {
        if let Some(key) = batch.idempotency_key
            && violates(e, PROCESSED_KEY)
        {
            return Error::AlreadyProcessed { key };
        }
        let conflict = store.find_conflict(conn, batch).await;
        store.processed_or(conn, batch, conflict).await
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
fn connect_error(options: &PgConnectOptions, e: &sqlx::Error) -> String {
    if let Some(reason) = network_reason(e, options.get_host(), options.get_port(), "PostgreSQL") {
        return reason;
    }
    match e {
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
    }
}

/// Positions in batch order, matched by event id (RETURNING order is not guaranteed).
fn receipt(batch: &CommitBatch, rows: Vec<PgRow>) -> Result<CommitReceipt> {
    let ids = batch.appends.iter().flat_map(|a| a.events.iter().map(|e| e.event_id));
    let mut by_id = std::collections::HashMap::with_capacity(rows.len());
    let mut commit = None;
    for r in rows {
        let id: Uuid = r.try_get("event_id").map_err(store_err)?;
        let position: i64 = r.try_get("position").map_err(store_err)?;
        let transaction: i64 = r.try_get("transaction_id").map_err(store_err)?;
        commit = Some(to_u64(transaction, "transaction id")?);
        by_id.insert(id, to_u64(position, "position")?);
    }
    let positions = ids
        .map(|id| by_id.get(&id).copied().ok_or_else(|| Error::store(format!("the commit did not return event {id}"))))
        .collect::<Result<_>>()?;
    Ok(CommitReceipt { positions, commit })
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
    o_stream: Vec<Option<&'a str>>,
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
                c.occurred_at.push(to_ms_precision(e.occurred_at));
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
            c.o_created.push(to_ms_precision(o.created_at));
            c.o_stream.push(o.headers.get(cqrs_ddd::broker::headers::STREAM).map(String::as_str));
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

/// The statements only PostgreSQL has, with the schema filled in once.
struct PgSql {
    /// The commit statement for each combination of parts present.
    commit: [String; 16],
    /// `INSERT .. VALUES` of 1..=VALUES_ROWS events.
    insert_values: Vec<String>,
    /// The horizon and, when it is below the snapshot's xmax, the transaction holding it.
    read_stall: String,
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

/// The condition on an events row that it is below the horizon of the statement's own
/// snapshot.
fn gap_safe() -> String {
    format!("transaction_id < (SELECT {} FROM pg_current_snapshot() AS snap(s))", horizon("snap.s"))
}

/// Batches of at most this many events (and nothing else) use `INSERT .. VALUES`.
const VALUES_ROWS: usize = 32;

impl PgSql {
    fn new(s: &str) -> Self {
        PgSql {
            commit: std::array::from_fn(|i| Self::commit_statement(s, Parts::of(i))),
            insert_values: (1..=VALUES_ROWS).map(|n| Self::insert_values(s, n)).collect(),
            read_stall: format!(
                "SELECT h.xid, age((h.xid % 4294967296)::text::xid) AS xid_age, a.pid, a.application_name, a.xact_start \
                 FROM (SELECT {} AS xid, pg_snapshot_xmax(snap.s)::text::bigint AS xmax \
                 FROM pg_current_snapshot() AS snap(s)) AS h \
                 LEFT JOIN pg_stat_activity a ON a.backend_xid::text::bigint = h.xid % 4294967296 \
                 WHERE h.xid < h.xmax ORDER BY a.xact_start LIMIT 1",
                horizon("snap.s")
            ),
        }
    }

    fn commit(&self, parts: Parts) -> &str {
        &self.commit[parts.index()]
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
        sql.push_str(" RETURNING event_id, position, transaction_id");
        sql
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
                 AS x(t, st, sid, v, eid, et, sv, p, corr, caus, pr, h, oa) RETURNING event_id, position, transaction_id)",
                a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]
            ));
        }
        if states {
            let a = p(6);
            parts.push(format!(
                "st AS (INSERT INTO {s}.states (tenant_id, stream_type, stream_id, version, state, updated_at) \
                 SELECT t, st, sid, v, j::jsonb, {}::timestamptz FROM UNNEST({}::text[], {}::text[], {}::text[], \
                 {}::int8[], {}::text[]) AS x(t, st, sid, v, j) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
                 SET version = EXCLUDED.version, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at RETURNING 1)",
                a[5], a[0], a[1], a[2], a[3], a[4]
            ));
        }
        if outbox {
            let a = p(6);
            parts.push(format!(
                "ob AS (INSERT INTO {s}.outbox (id, topic, payload, headers, created_at, next_attempt_at, stream_key) \
                 SELECT i, tp, pl::jsonb, h::jsonb, c, c, sk FROM UNNEST({}::uuid[], {}::text[], {}::text[], {}::text[], \
                 {}::timestamptz[], {}::text[]) AS x(i, tp, pl, h, c, sk) RETURNING 1)",
                a[0], a[1], a[2], a[3], a[4], a[5]
            ));
        }
        if key {
            let a = p(3);
            parts.push(format!(
                "pk AS (INSERT INTO {s}.processed_commands (key, tenant_id, processed_at) \
                 VALUES ({}::uuid, {}, {}::timestamptz))",
                a[0], a[1], a[2]
            ));
        }
        let mut sql = String::new();
        if !parts.is_empty() {
            let _ = write!(sql, "WITH {} ", parts.join(", "));
        }
        if events {
            sql.push_str("SELECT event_id, position, transaction_id FROM ev");
        } else {
            sql.push_str("SELECT NULL::uuid, NULL::int8, NULL::int8 WHERE false");
        }
        sql
    }
}
