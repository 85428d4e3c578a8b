//! The SQLite files of a run: a temporary directory `cqrs_ddd_bench_<pid>` created for
//! it and removed at its end (also on error or Ctrl-C), one database file per contender
//! in it, and the load streams both SQLite contenders read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection};

use crate::db::{SEEDED_AMOUNT, Target, load_stream_id};
use crate::domain::{AGGREGATE_TYPE, DEPOSITED};
use crate::error::{BenchError, SqlContext};
use crate::scenarios::{Backend, LITE_LOADS};

const DB: Backend = Backend::Sqlite;
/// The stem of the database files: `bench_ours.db`, `bench_plain.db`.
const STEM: &str = "bench";

/// The directory of one run; [`BenchDir::remove`] deletes it with everything in it. Its
/// [`Target`] has the directory as `url` and the files' stem as `name`.
pub(crate) struct BenchDir {
    pub(crate) target: Target,
}

impl BenchDir {
    pub(crate) fn create() -> Result<BenchDir, BenchError> {
        let dir = std::env::temp_dir().join(format!("cqrs_ddd_bench_{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        Ok(BenchDir { target: Target { url: dir.display().to_string(), name: STEM.to_owned() } })
    }

    pub(crate) fn dir(&self) -> &Path {
        Path::new(&self.target.url)
    }

    pub(crate) fn remove(self) -> Result<(), BenchError> {
        std::fs::remove_dir_all(self.dir()).map_err(|e| BenchError::io(format!("removing {}", self.dir().display()), e))
    }
}

/// The database file of contender `who` (`ours`, `plain`).
pub(crate) fn file(target: &Target, who: &str) -> PathBuf {
    Path::new(&target.url).join(format!("{}_{who}.db", target.name))
}

/// The URL of that file, as `SqliteStore::connect` takes it.
pub(crate) fn url(target: &Target, who: &str) -> String {
    format!("sqlite://{}", file(target, who).display())
}

/// One connection to a file, set up as `SqliteStore::connect` sets up its own: created if
/// missing, WAL, `synchronous = FULL`, a busy timeout of 30 s.
pub(crate) async fn connect(path: &Path) -> Result<SqliteConnection, BenchError> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .sql_on(DB, &format!("opening {}", path.display()))
}

/// Writes the load streams (1k, 10k, 100k deposits of [`SEEDED_AMOUNT`]) into `table`,
/// which has the shape of the store's `events` table, with one generated series each.
pub(crate) async fn seed_streams(conn: &mut SqliteConnection, table: &str) -> Result<(), BenchError> {
    for (n, _) in LITE_LOADS {
        let insert = format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             INSERT INTO {table} (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
             SELECT ?, ?, n, randomblob(16), ?, 1, '{{\"amount\":{SEEDED_AMOUNT}}}', '2026-01-01T00:00:00Z' FROM s"
        );
        sqlx::query(&insert)
            .bind(AGGREGATE_TYPE)
            .bind(load_stream_id(n))
            .bind(DEPOSITED)
            .execute(&mut *conn)
            .await
            .sql_on(DB, &format!("seeding {table} with {n} events"))?;
    }
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await.sql_on(DB, "ANALYZE")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_contender_has_its_file_in_the_run_directory() {
        let t = Target { url: "/tmp/cqrs_ddd_bench_7".to_owned(), name: STEM.to_owned() };
        assert_eq!(file(&t, "ours"), PathBuf::from("/tmp/cqrs_ddd_bench_7/bench_ours.db"));
        assert_eq!(url(&t, "plain"), "sqlite:///tmp/cqrs_ddd_bench_7/bench_plain.db");
    }
}
