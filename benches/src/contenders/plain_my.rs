//! Plain sqlx on MariaDB (cargo feature `mysql`): a table of the same shape as
//! cqrs-ddd's `events`, in the same benchmark database, written and read the fastest
//! straightforward way: a dedicated `MySqlConnection` per client (no pool, so no ping
//! before each use), one autocommit INSERT per command (the aggregate's version kept in
//! memory, so nothing is read first), and a streamed SELECT decoded with serde for a
//! load. No framework: the physical limit.

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::{Connection, MySqlConnection, Row};

use crate::db::{Target, load_stream_id};
use crate::db_mysql;
use crate::domain::plain::{Account, AccountEvent, Deposited};
use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::measure::{Outcome, client_plan, concurrent, median_of, millis, sequential};
use crate::scenarios::{Backend, MY_CONC16, MY_LOADS, MY_SEQ, Workload};

const DB: Backend = Backend::MariaDb;
const EVENTS: &str = "plain_events";
const INSERT: &str = "INSERT INTO plain_events \
    (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
    VALUES (?, ?, ?, ?, ?, 1, ?, ?)";
const SELECT: &str = "SELECT event_type, payload FROM plain_events \
    WHERE tenant_id = '' AND stream_type = ? AND stream_id = ? ORDER BY version";

/// The store's `events` table (its migration), under another name.
fn ddl(bin: &str) -> String {
    format!(
        "CREATE TABLE {EVENTS} (
            position        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            tenant_id       VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
            stream_type     VARCHAR(255) COLLATE {bin} NOT NULL,
            stream_id       VARCHAR(255) COLLATE {bin} NOT NULL,
            version         BIGINT NOT NULL,
            event_id        BINARY(16) NOT NULL,
            event_type      VARCHAR(255) COLLATE {bin} NOT NULL,
            schema_version  BIGINT NOT NULL,
            payload         LONGTEXT NOT NULL CHECK (json_valid(payload)),
            correlation_id  BINARY(16),
            causation_id    BINARY(16),
            principal       TEXT COLLATE {bin},
            headers         LONGTEXT CHECK (headers IS NULL OR json_valid(headers)),
            occurred_at     DATETIME(3) NOT NULL,
            UNIQUE KEY plain_events_stream_version (tenant_id, stream_type, stream_id, version)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
}

/// Creates its table, and seeds the load streams when `seed`.
pub(crate) async fn prepare(target: &Target, seed: bool) -> Result<(), BenchError> {
    let mut conn = db_mysql::connect(target).await?;
    let bin = db_mysql::binary_collation(&mut conn).await?;
    sqlx::raw_sql(&ddl(bin)).execute(&mut conn).await.sql_on(DB, "CREATE TABLE plain_events")?;
    if seed {
        db_mysql::seed_streams(&mut conn, EVENTS).await?;
    }
    conn.close().await.ok();
    Ok(())
}

/// One client: its connection and the version of each aggregate it writes.
struct Writer {
    conn: MySqlConnection,
    ids: Vec<String>,
    versions: Vec<i64>,
}

impl Writer {
    async fn new(target: &Target, prefix: &str, aggregates: usize) -> Result<Writer, BenchError> {
        let ids = (0..aggregates).map(|a| format!("{prefix}-{a}")).collect();
        Ok(Writer { conn: db_mysql::connect(target).await?, ids, versions: vec![0; aggregates] })
    }

    async fn deposit(&mut self, a: usize) -> Result<(), BenchError> {
        self.versions[a] += 1;
        let event_id = sqlx::types::Uuid::now_v7();
        let payload =
            serde_json::to_string(&Deposited { amount: 1 }).map_err(|e| BenchError::Check(format!("sqlx: {e}")))?;
        sqlx::query(INSERT)
            .bind(AGGREGATE_TYPE)
            .bind(&self.ids[a])
            .bind(self.versions[a])
            .bind(event_id.as_bytes().as_slice())
            .bind(DEPOSITED)
            .bind(payload)
            .bind(chrono::Utc::now().naive_utc())
            .execute(&mut self.conn)
            .await
            .sql_on(DB, "INSERT INTO plain_events")?;
        Ok(())
    }

    async fn check_balance(&mut self, a: usize, expected: usize) -> Result<(), BenchError> {
        let id = self.ids[a].clone();
        check(&mut self.conn, &id, expected).await
    }
}

fn conc_command(writer: &mut Writer, a: usize) -> BoxFuture<'_, Result<(), BenchError>> {
    Box::pin(writer.deposit(a))
}

/// Folds the stream's events, streaming the rows.
async fn load_events(conn: &mut MySqlConnection, id: &str) -> Result<Account, BenchError> {
    let mut account = Account::default();
    let mut rows = sqlx::query(SELECT).bind(AGGREGATE_TYPE).bind(id).fetch(conn);
    while let Some(row) = rows.try_next().await.sql_on(DB, "SELECT FROM plain_events")? {
        // Columns of a binary collation come as VARBINARY: read as text without the type
        // check, as the store reads them.
        let event_type: String = row.try_get_unchecked(0).sql_on(DB, "decoding event_type")?;
        let payload: String = row.try_get_unchecked(1).sql_on(DB, "decoding payload")?;
        account.apply(
            &AccountEvent::from_row(&event_type, &payload).map_err(|e| BenchError::Check(format!("sqlx: {e}")))?,
        );
    }
    Ok(account)
}

async fn check(conn: &mut MySqlConnection, id: &str, expected: usize) -> Result<(), BenchError> {
    let account = load_events(conn, id).await?;
    if usize::try_from(account.balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("sqlx: {id} has balance {}, expected {expected}", account.balance)));
    }
    Ok(())
}

/// Scenario 10: one client, commands round robin over the aggregates.
pub(crate) async fn seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let mut writer = Writer::new(target, &format!("seq-r{rep}"), w.pg_aggregates).await?;
    let lat = sequential(w.pg_commands, async |k| writer.deposit(k % w.pg_aggregates).await).await?;
    writer.check_balance(0, w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(MY_SEQ, &lat);
    Ok(out)
}

/// Scenario 11: `pg_clients` tasks at once, each on its own connection and aggregates.
pub(crate) async fn conc(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let mut clients = Vec::with_capacity(w.pg_clients);
    for c in 0..w.pg_clients {
        let writer = Writer::new(target, &format!("conc-r{rep}"), w.pg_aggregates).await?;
        clients.push((writer, client_plan(c, w.pg_clients, w.pg_commands, w.pg_aggregates)));
    }
    let lat = concurrent(clients, conc_command).await?;
    Writer::new(target, &format!("conc-r{rep}"), w.pg_aggregates)
        .await?
        .check_balance(0, w.pg_commands / w.pg_aggregates)
        .await?;
    let mut out = Outcome::default();
    out.rates(MY_CONC16, &lat);
    Ok(out)
}

/// Scenario 12: SELECT + decode + fold of the seeded streams.
pub(crate) async fn load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    let mut conn = db_mysql::connect(target).await?;
    let mut out = Outcome::default();
    for ((n, id), timed) in MY_LOADS.into_iter().zip(w.loads_timed) {
        let stream = load_stream_id(n);
        let t = median_of(timed, async || check(&mut conn, &stream, n).await).await?;
        out.figure(id, millis(t));
    }
    conn.close().await.ok();
    Ok(out)
}
