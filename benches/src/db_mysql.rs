//! The benchmark's own MariaDB database (cargo feature `mysql`): created fresh for a run
//! on the server at `MYSQL_URL`, dropped at its end (also on error or Ctrl-C), and the
//! load streams both MariaDB contenders read.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, MySqlConnection};

use crate::db::{SEEDED_AMOUNT, Target, load_stream_id, redact};
use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::scenarios::{Backend, MY_LOADS};

/// Where the server is when `MYSQL_URL` does not say.
pub(crate) const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306";
const DB: Backend = Backend::MariaDb;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What every connection of `MySqlStore::connect`'s pool runs after connecting: strict
/// mode and UTC. The plain contender's connections run it too, so both write under the
/// same rules.
pub(crate) const SESSION: &str =
    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES,NO_ZERO_DATE'), time_zone = '+00:00'";

/// `MYSQL_URL`, else [`DEFAULT_URL`].
pub(crate) fn server_url() -> String {
    std::env::var("MYSQL_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn server_options(url: &str) -> Result<MySqlConnectOptions, BenchError> {
    MySqlConnectOptions::from_str(url)
        .map_err(|e| BenchError::Usage(format!("MYSQL_URL `{}` is not a MariaDB/MySQL URL: {e}", redact(url))))
}

/// Connection options for the benchmark database.
pub(crate) fn options(target: &Target) -> Result<MySqlConnectOptions, BenchError> {
    Ok(server_options(&target.url)?.database(&target.name))
}

/// The URL of the benchmark database, as `MySqlStore::connect` takes it.
pub(crate) fn database_url(target: &Target) -> Result<String, BenchError> {
    Ok(options(target)?.to_url_lossy().to_string())
}

async fn connect_with(options: &MySqlConnectOptions, url: &str) -> Result<MySqlConnection, BenchError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(BenchError::connecting_to(DB, redact(url), source)),
        Err(_) => Err(BenchError::connecting_to(DB, redact(url), sqlx::Error::PoolTimedOut)),
    }
}

/// One dedicated connection to the benchmark database (no pool), in strict mode.
pub(crate) async fn connect(target: &Target) -> Result<MySqlConnection, BenchError> {
    let mut conn = connect_with(&options(target)?, &target.url).await?;
    sqlx::raw_sql(SESSION).execute(&mut conn).await.sql_on(DB, "SET SESSION")?;
    Ok(conn)
}

/// The database of one run, `cqrs_ddd_bench_<pid>`; [`BenchDb::drop`] removes it.
pub(crate) struct BenchDb {
    pub(crate) target: Target,
}

impl BenchDb {
    pub(crate) async fn create(url: String) -> Result<BenchDb, BenchError> {
        let name = format!("cqrs_ddd_bench_{}", std::process::id());
        let mut admin = connect_with(&server_options(&url)?, &url).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.sql_on(DB, "CREATE DATABASE")?;
        admin.close().await.ok();
        Ok(BenchDb { target: Target { url, name } })
    }

    pub(crate) async fn drop(self) -> Result<(), BenchError> {
        let mut admin = connect_with(&server_options(&self.target.url)?, &self.target.url).await?;
        let sql = format!("DROP DATABASE IF EXISTS {}", self.target.name);
        sqlx::raw_sql(&sql).execute(&mut admin).await.sql_on(DB, "DROP DATABASE")?;
        admin.close().await.ok();
        Ok(())
    }
}

/// The collation of identifiers in the events tables, as the store's migration picks it:
/// binary, without padding.
pub(crate) async fn binary_collation(conn: &mut MySqlConnection) -> Result<&'static str, BenchError> {
    let version: String =
        sqlx::query_scalar("SELECT VERSION()").fetch_one(conn).await.sql_on(DB, "SELECT VERSION()")?;
    Ok(if version.contains("MariaDB") { "utf8mb4_nopad_bin" } else { "utf8mb4_0900_bin" })
}

/// Writes the load streams (1k, 10k, 100k deposits of [`SEEDED_AMOUNT`]) into `table`,
/// which has the shape of the store's `events` table, with one generated series each.
pub(crate) async fn seed_streams(conn: &mut MySqlConnection, table: &str) -> Result<(), BenchError> {
    // A recursive CTE stops at 1,000 rows unless told otherwise.
    sqlx::raw_sql("SET SESSION max_recursive_iterations = 4294967295")
        .execute(&mut *conn)
        .await
        .sql_on(DB, "SET max_recursive_iterations")?;
    for (n, _) in MY_LOADS {
        let insert = format!(
            "INSERT INTO {table} (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
             WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT ?, ?, n, UNHEX(REPLACE(UUID(), '-', '')), ?, 1, '{{\"amount\":{SEEDED_AMOUNT}}}', NOW(3) FROM s"
        );
        sqlx::query(&insert)
            .bind(AGGREGATE_TYPE)
            .bind(load_stream_id(n))
            .bind(DEPOSITED)
            .execute(&mut *conn)
            .await
            .sql_on(DB, &format!("seeding {table} with {n} events"))?;
    }
    let analyze = format!("ANALYZE TABLE {table}");
    sqlx::raw_sql(&analyze).execute(&mut *conn).await.sql_on(DB, &analyze)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_names_the_bench_database_and_keeps_the_credentials() {
        let t = Target { url: "mysql://root:pw@127.0.0.1:3307".to_owned(), name: "cqrs_ddd_bench_7".to_owned() };
        let url = database_url(&t).unwrap();
        assert!(url.starts_with("mysql://root:pw@127.0.0.1:3307/cqrs_ddd_bench_7"), "{url}");
        assert_eq!(options(&t).unwrap().get_database(), Some("cqrs_ddd_bench_7"));
        let bad = Target { url: "mysql://h:port".to_owned(), name: "n".to_owned() };
        assert!(matches!(options(&bad), Err(BenchError::Usage(m)) if m.contains("MYSQL_URL")));
    }
}
