//! The benchmark's own PostgreSQL database: created fresh for a run, dropped at its end
//! (also on error or Ctrl-C), and the event tables every Postgres contender writes.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::scenarios::{LOAD_SNAP, LOADS, SNAPSHOT_EVERY};

/// Where the server is when `DATABASE_URL` does not say.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server (`url`, as given) and the benchmark database on it (`name`). The MariaDB
/// groups use the same pair (`db_mysql.rs`); the SQLite ones put the run's directory in
/// `url` and the stem of the database files in `name` (`db_sqlite.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Target {
    /// Connection options for the benchmark database.
    pub(crate) fn options(&self) -> Result<PgConnectOptions, BenchError> {
        Ok(server_options(&self.url)?.database(&self.name))
    }

    /// The URL with any password hidden, for messages.
    pub(crate) fn shown(&self) -> String {
        redact(&self.url)
    }

    /// One dedicated connection (no pool, no ping before use).
    pub(crate) async fn connect(&self) -> Result<PgConnection, BenchError> {
        connect(&self.options()?, &self.url).await
    }

    /// A pool as postgres-es users build it (sqlx defaults: a ping before each acquire).
    pub(crate) async fn pool(&self, max_connections: u32) -> Result<PgPool, BenchError> {
        let connecting = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(self.options()?);
        match connecting.await {
            Ok(pool) => Ok(pool),
            Err(source) => Err(BenchError::connecting(self.shown(), source)),
        }
    }
}

/// `DATABASE_URL`, else [`DEFAULT_URL`].
pub(crate) fn server_url() -> String {
    std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn server_options(url: &str) -> Result<PgConnectOptions, BenchError> {
    PgConnectOptions::from_str(url)
        .map_err(|e| BenchError::Usage(format!("DATABASE_URL `{}` is not a PostgreSQL URL: {e}", redact(url))))
}

async fn connect(options: &PgConnectOptions, url: &str) -> Result<PgConnection, BenchError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(BenchError::connecting(redact(url), source)),
        Err(_) => Err(BenchError::connecting(redact(url), sqlx::Error::PoolTimedOut)),
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else { return url.to_owned() };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

/// The database of one run, `cqrs_ddd_bench_<pid>`; [`BenchDb::drop`] removes it.
pub(crate) struct BenchDb {
    pub(crate) target: Target,
}

impl BenchDb {
    pub(crate) async fn create(url: String) -> Result<BenchDb, BenchError> {
        let name = format!("cqrs_ddd_bench_{}", std::process::id());
        let mut admin = connect(&server_options(&url)?, &url).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.sql("CREATE DATABASE")?;
        admin.close().await.ok();
        Ok(BenchDb { target: Target { url, name } })
    }

    /// Drops the database, closing whatever connections are left on it.
    pub(crate) async fn drop(self) -> Result<(), BenchError> {
        let mut admin = connect(&server_options(&self.target.url)?, &self.target.url).await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.target.name);
        sqlx::raw_sql(&sql).execute(&mut admin).await.sql("DROP DATABASE")?;
        admin.close().await.ok();
        Ok(())
    }
}

/// postgres-es's own schema (its `db/init.sql`), under the given table names: every
/// Postgres contender of the peer side writes rows of exactly this shape.
pub(crate) async fn create_event_tables(
    conn: &mut PgConnection,
    events: &str,
    snapshots: &str,
) -> Result<(), BenchError> {
    let ddl = format!(
        "CREATE TABLE {events}
         (
             aggregate_type text                         NOT NULL,
             aggregate_id   text                         NOT NULL,
             sequence       bigint CHECK (sequence >= 0) NOT NULL,
             event_type     text                         NOT NULL,
             event_version  text                         NOT NULL,
             payload        json                         NOT NULL,
             metadata       json                         NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, sequence)
         );
         CREATE TABLE {snapshots}
         (
             aggregate_type   text                                 NOT NULL,
             aggregate_id     text                                 NOT NULL,
             last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
             current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
             payload          json                                 NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
         );"
    );
    sqlx::raw_sql(&ddl).execute(conn).await.sql(&format!("creating tables {events} and {snapshots}"))?;
    Ok(())
}

/// The aggregate id of the stream of `n` events that the load scenarios read.
pub(crate) fn load_stream_id(n: usize) -> String {
    format!("load-{n}")
}

/// The amount of every seeded deposit: a loaded balance must equal the event count.
pub(crate) const SEEDED_AMOUNT: u64 = 1;

/// Writes the load scenarios' streams (1k, 10k, 100k deposits of [`SEEDED_AMOUNT`]) as
/// postgres-es would have stored them, and the snapshot of the 100k stream: the one taken
/// [`SNAPSHOT_EVERY`] events before its end, so the snapshot load reads the snapshot and
/// the events after it, the most a snapshot every 100 events leaves to replay.
pub(crate) async fn seed_streams(conn: &mut PgConnection, events: &str, snapshots: &str) -> Result<(), BenchError> {
    let insert = format!(
        "INSERT INTO {events} (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT $1, $2, s, $3, '1.0', '{{\"{DEPOSITED}\":{{\"amount\":{SEEDED_AMOUNT}}}}}'::json, '{{}}'::json
           FROM generate_series(1, $4::bigint) s"
    );
    for (n, _) in LOADS {
        sqlx::query(&insert)
            .bind(AGGREGATE_TYPE)
            .bind(load_stream_id(n))
            .bind(DEPOSITED)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await
            .sql(&format!("seeding {events} with {n} events"))?;
    }
    let (n, _) = LOAD_SNAP;
    let at = n - SNAPSHOT_EVERY;
    let snapshot = format!(
        "INSERT INTO {snapshots} (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
         VALUES ($1, $2, $3, $4, $5::json)"
    );
    sqlx::query(&snapshot)
        .bind(AGGREGATE_TYPE)
        .bind(load_stream_id(n))
        .bind(i64::try_from(at).unwrap_or(i64::MAX))
        .bind(i64::try_from(at / SNAPSHOT_EVERY).unwrap_or(i64::MAX))
        .bind(format!("{{\"balance\":{}}}", at as u64 * SEEDED_AMOUNT))
        .execute(&mut *conn)
        .await
        .sql(&format!("seeding {snapshots}"))?;
    // One statement each: VACUUM cannot run in the implicit transaction of a batch.
    for table in [events, snapshots] {
        let vacuum = format!("VACUUM ANALYZE {table}");
        sqlx::raw_sql(&vacuum).execute(&mut *conn).await.sql(&vacuum)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn a_target_points_at_the_bench_database() {
        let t = Target { url: DEFAULT_URL.to_owned(), name: "cqrs_ddd_bench_1".to_owned() };
        assert_eq!(t.options().unwrap().get_database(), Some("cqrs_ddd_bench_1"));
        assert!(matches!(
            Target { url: "postgres://u:pw@h:port/db".to_owned(), name: "n".to_owned() }.options(),
            Err(BenchError::Usage(m)) if m.contains("postgres://u:***@h:port/db")
        ));
    }
}
