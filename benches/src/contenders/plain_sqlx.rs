//! Plain sqlx: the rows postgres-es writes, in a table of the same shape, written and
//! read the fastest straightforward way: a dedicated `PgConnection` per client (no pool,
//! so no ping before each use), one autocommit INSERT per command (the aggregate's
//! version kept in memory, so nothing is read first), one multi-row INSERT per batch,
//! and a streamed SELECT decoded with serde for a load. No framework: the physical limit.

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::postgres::Postgres;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, QueryBuilder};

use crate::db::{self, Target, load_stream_id};
use crate::domain::plain::{Account, AccountEvent};
use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::measure::{Outcome, client_plan, concurrent, median_of, millis, peak_rss_mib, sequential};
use crate::scenarios::{
    LOAD_RSS, LOAD_SNAP, LOADS, PG_BATCH, PG_CONC16, PG_SEQ, PROJECTION, PROJECTION_ACCOUNTS, PROJECTION_BATCH,
    PROJECTION_EVENTS, Workload,
};
use crate::stats::count_f64;

const EVENTS: &str = "plain_events";
const SNAPSHOTS: &str = "plain_snapshots";
const COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata";
const INSERT: &str = "INSERT INTO plain_events \
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SELECT: &str = "SELECT sequence, payload FROM plain_events \
    WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence";
const SELECT_SNAPSHOT: &str = "SELECT last_sequence, payload FROM plain_snapshots \
    WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY last_sequence DESC LIMIT 1";
/// The metadata column of every row: `{}`, as postgres-es writes no metadata.
#[derive(serde::Serialize)]
struct NoMetadata {}
const NO_METADATA: Json<NoMetadata> = Json(NoMetadata {});

/// Creates its tables, and seeds the load scenarios' streams when `seed`.
pub(crate) async fn prepare(target: &Target, seed: bool) -> Result<(), BenchError> {
    let mut conn = target.connect().await?;
    db::create_event_tables(&mut conn, EVENTS, SNAPSHOTS).await?;
    if seed {
        db::seed_streams(&mut conn, EVENTS, SNAPSHOTS).await?;
        let projection_events = format!(
            "INSERT INTO {EVENTS} ({COLUMNS}) SELECT $1, 'proj-' || (s % $2), s / $2 + 1, $3, '1.0', \
             '{{\"Deposited\":{{\"amount\":1}}}}'::json, '{{}}'::json FROM generate_series(0, $4::bigint - 1) s"
        );
        sqlx::query(&projection_events)
            .bind(AGGREGATE_TYPE)
            .bind(i64::try_from(PROJECTION_ACCOUNTS).unwrap_or(i64::MAX))
            .bind(DEPOSITED)
            .bind(i64::try_from(PROJECTION_EVENTS).unwrap_or(i64::MAX))
            .execute(&mut conn)
            .await
            .sql("seeding the projection events")?;
    }
    for ddl in [
        "CREATE TABLE IF NOT EXISTS plain_balances (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS plain_checkpoint (name TEXT PRIMARY KEY, aggregate_type TEXT NOT NULL, \
         aggregate_id TEXT NOT NULL, sequence BIGINT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&mut conn).await.sql(ddl)?;
    }
    Ok(())
}

/// Scenario 8: the same read model by hand: keyset-paged reads of `PROJECTION_BATCH`
/// events, the amounts summed per account in memory, one multi-row upsert and the
/// checkpoint per transaction.
pub(crate) async fn projection(target: &Target) -> Result<Outcome, BenchError> {
    let mut conn = target.connect().await?;
    sqlx::raw_sql("TRUNCATE plain_balances; DELETE FROM plain_checkpoint").execute(&mut conn).await.sql("reset")?;
    let events: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {EVENTS}")).fetch_one(&mut conn).await.sql("count")?;
    let started = std::time::Instant::now();
    let mut after = (String::new(), String::new(), 0i64);
    let mut applied = 0usize;
    loop {
        let mut tx = conn.begin().await.sql("BEGIN")?;
        let rows: Vec<(String, String, i64, Json<AccountEvent>)> = sqlx::query_as(&format!(
            "SELECT aggregate_type, aggregate_id, sequence, payload FROM {EVENTS} \
             WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3) \
             ORDER BY aggregate_type, aggregate_id, sequence LIMIT $4"
        ))
        .bind(&after.0)
        .bind(&after.1)
        .bind(after.2)
        .bind(i64::try_from(PROJECTION_BATCH).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .sql("SELECT a batch")?;
        let Some(last) = rows.last() else { break };
        after = (last.0.clone(), last.1.clone(), last.2);
        let mut sums: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (_, id, _, Json(event)) in &rows {
            let AccountEvent::Deposited { amount } = event;
            *sums.entry(id.as_str()).or_default() += i64::try_from(*amount).unwrap_or(i64::MAX);
        }
        let (ids, amounts): (Vec<&str>, Vec<i64>) = sums.into_iter().unzip();
        sqlx::query(
            "INSERT INTO plain_balances (id, balance) SELECT * FROM UNNEST($1::text[], $2::int8[]) \
             ON CONFLICT (id) DO UPDATE SET balance = plain_balances.balance + EXCLUDED.balance",
        )
        .bind(ids)
        .bind(amounts)
        .execute(&mut *tx)
        .await
        .sql("upsert the read model")?;
        sqlx::query(
            "INSERT INTO plain_checkpoint VALUES ('balances', $1, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET aggregate_type = EXCLUDED.aggregate_type, aggregate_id = EXCLUDED.aggregate_id, sequence = EXCLUDED.sequence",
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(after.2)
        .execute(&mut *tx)
        .await
        .sql("checkpoint")?;
        tx.commit().await.sql("COMMIT")?;
        applied += rows.len();
    }
    let elapsed = started.elapsed();
    if i64::try_from(applied).ok() != Some(events) {
        return Err(BenchError::Check(format!("sqlx: the projection applied {applied} of {events} events")));
    }
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM plain_balances WHERE id = 'proj-0'")
        .fetch_one(&mut conn)
        .await
        .sql("SELECT the read model")?;
    if usize::try_from(balance).ok() != Some(PROJECTION_EVENTS / PROJECTION_ACCOUNTS) {
        return Err(BenchError::Check(format!("sqlx: proj-0 has balance {balance}")));
    }
    let mut out = Outcome::default();
    out.figure(PROJECTION, count_f64(applied) / elapsed.as_secs_f64());
    Ok(out)
}

/// One client: its connection and the version of each aggregate it writes.
struct Writer {
    conn: PgConnection,
    ids: Vec<String>,
    versions: Vec<i64>,
}

impl Writer {
    async fn new(target: &Target, prefix: &str, aggregates: usize) -> Result<Writer, BenchError> {
        let ids = (0..aggregates).map(|a| format!("{prefix}-{a}")).collect();
        Ok(Writer { conn: target.connect().await?, ids, versions: vec![0; aggregates] })
    }

    async fn deposit(&mut self, a: usize) -> Result<(), BenchError> {
        self.versions[a] += 1;
        sqlx::query(INSERT)
            .bind(AGGREGATE_TYPE)
            .bind(&self.ids[a])
            .bind(self.versions[a])
            .bind(DEPOSITED)
            .bind("1.0")
            .bind(Json(AccountEvent::Deposited { amount: 1 }))
            .bind(NO_METADATA)
            .execute(&mut self.conn)
            .await
            .sql("INSERT INTO plain_events")?;
        Ok(())
    }

    async fn check_balance(&mut self, a: usize, expected: usize) -> Result<(), BenchError> {
        let id = self.ids[a].clone();
        check(load_events(&mut self.conn, &id, 0, Account::default()).await?, &id, expected)
    }
}

fn check(account: Account, id: &str, expected: usize) -> Result<(), BenchError> {
    if usize::try_from(account.balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("sqlx: {id} has balance {}, expected {expected}", account.balance)));
    }
    Ok(())
}

/// Scenario 4: one client, commands round robin over the aggregates.
pub(crate) async fn pg_seq(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let mut writer = Writer::new(target, &format!("seq-r{rep}"), w.pg_aggregates).await?;
    let lat = sequential(w.pg_commands, async |k| writer.deposit(k % w.pg_aggregates).await).await?;
    writer.check_balance(0, w.pg_commands / w.pg_aggregates).await?;
    let mut out = Outcome::default();
    out.rates(PG_SEQ, &lat);
    Ok(out)
}

/// Scenario 5: `pg_clients` tasks at once, each on its own connection and aggregates.
pub(crate) async fn pg_conc(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
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
    out.rates(PG_CONC16, &lat);
    Ok(out)
}

fn conc_command(writer: &mut Writer, a: usize) -> BoxFuture<'_, Result<(), BenchError>> {
    Box::pin(writer.deposit(a))
}

/// Scenario 6: each command one multi-row INSERT of `batch_events` rows.
pub(crate) async fn pg_batch(target: &Target, w: &Workload, rep: usize) -> Result<Outcome, BenchError> {
    let mut conn = target.connect().await?;
    let id = |k: usize| format!("batch-r{rep}-{k}");
    let lat = sequential(w.batch_commands, async |k| {
        let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO {EVENTS} ({COLUMNS}) "));
        let account = id(k);
        insert.push_values(1..=i64::from(w.batch_events), |mut row, sequence| {
            row.push_bind(AGGREGATE_TYPE)
                .push_bind(account.clone())
                .push_bind(sequence)
                .push_bind(DEPOSITED)
                .push_bind("1.0")
                .push_bind(Json(AccountEvent::Deposited { amount: 1 }))
                .push_bind(NO_METADATA);
        });
        insert.build().execute(&mut conn).await.sql("multi-row INSERT INTO plain_events")?;
        Ok(())
    })
    .await?;
    check(load_events(&mut conn, &id(0), 0, Account::default()).await?, &id(0), w.batch_events as usize)?;
    let mut out = Outcome::default();
    out.figure(PG_BATCH, lat.per_second() * f64::from(w.batch_events));
    Ok(out)
}

/// Folds the events after `after` into `account`, streaming the rows.
async fn load_events(
    conn: &mut PgConnection,
    id: &str,
    after: i64,
    mut account: Account,
) -> Result<Account, BenchError> {
    let mut rows =
        sqlx::query_as::<_, (i64, Json<AccountEvent>)>(SELECT).bind(AGGREGATE_TYPE).bind(id).bind(after).fetch(conn);
    while let Some((_, Json(event))) = rows.try_next().await.sql("SELECT FROM plain_events")? {
        account.apply(&event);
    }
    Ok(account)
}

/// The newest snapshot, then the events after it.
async fn load_from_snapshot(conn: &mut PgConnection, id: &str) -> Result<Account, BenchError> {
    let snapshot = sqlx::query_as::<_, (i64, Json<Account>)>(SELECT_SNAPSHOT)
        .bind(AGGREGATE_TYPE)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .sql("SELECT FROM plain_snapshots")?;
    let (after, account) = snapshot.map_or((0, Account::default()), |(v, Json(a))| (v, a));
    load_events(conn, id, after, account).await
}

/// Scenario 7: SELECT + decode of the seeded streams, and from the snapshot.
pub(crate) async fn load(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    let mut conn = target.connect().await?;
    let mut out = Outcome::default();
    for ((n, id), timed) in LOADS.into_iter().zip(w.loads_timed) {
        let stream = load_stream_id(n);
        let t =
            median_of(timed, async || check(load_events(&mut conn, &stream, 0, Account::default()).await?, &stream, n))
                .await?;
        out.figure(id, millis(t));
    }
    let (n, id) = LOAD_SNAP;
    let stream = load_stream_id(n);
    let t =
        median_of(w.loads_timed[2], async || check(load_from_snapshot(&mut conn, &stream).await?, &stream, n)).await?;
    out.figure(id, millis(t));
    conn.close().await.ok();
    Ok(out)
}

/// Scenario 9: one load of the 100k stream in a fresh process; its peak resident memory.
pub(crate) async fn load_rss(target: &Target) -> Result<Outcome, BenchError> {
    let mut conn = target.connect().await?;
    let before = peak_rss_mib()?;
    let (n, id) = LOAD_RSS;
    let stream = load_stream_id(n);
    check(load_events(&mut conn, &stream, 0, Account::default()).await?, &stream, n)?;
    let mut out = Outcome::default();
    out.figure(id, peak_rss_mib()?);
    out.note(id, before, "MiB peak before the load");
    Ok(out)
}
