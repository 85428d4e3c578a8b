//! The SQLite dialect: the embedded default. One writer at a time (`BEGIN IMMEDIATE`), so
//! position order is commit order; times that SQL compares are kept as milliseconds
//! since the epoch.

use std::str::FromStr;
use std::time::Duration;

use cqrs_ddd::{Error, Result};
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::common::{Migration, migrate_in_txn};
use crate::dialect::{Dialect, sealed};
use crate::store::SqlStore;

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, sql: include_str!("../migrations/sqlite/0002_projections.sql") },
    Migration { version: 3, sql: include_str!("../migrations/sqlite/0003_sagas.sql") },
    Migration { version: 4, sql: include_str!("../migrations/sqlite/0004_tenancy.sql") },
    Migration { version: 5, sql: include_str!("../migrations/sqlite/0005_json.sql") },
    Migration { version: 6, sql: include_str!("../migrations/sqlite/0006_one_shape.sql") },
];

/// Event store, state rows, snapshots, outbox, projections, sagas and scheduled commands
/// in one SQLite database file.
///
/// The database is in WAL mode: readers never block the writer. Writes take the
/// database's write lock at once (`BEGIN IMMEDIATE`) and wait up to the busy timeout for
/// it, so concurrent writers queue instead of failing.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite [`Dialect`].
#[derive(Clone, Debug)]
pub struct Sqlite;

impl sealed::Sealed for Sqlite {}

impl SqlStore<Sqlite> {
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
            .busy_timeout(Duration::from_secs(30))
            .with_regexp();
        let file = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(|e| {
            Error::Connect { backend: "SQLite", target: file.display().to_string(), reason: open_failure(&file, &e) }
        })?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool. Specifications with `regex` need its connect options to
    /// have `with_regexp()` (sqlx's `regexp` feature), as [`connect`](Self::connect)'s do.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqlStore::with(pool, Sqlite)
    }
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    type Conn = SqliteConnection;
    type Row = SqliteRow;

    const NAME: &'static str = "SQLite";
    const FLAVOR: crate::dialect::Flavor = crate::dialect::Flavor::Sqlite;
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const AUTOCOMMIT_APPEND: bool = true;
    const SKIP_LOCKED: &'static str = "";
    const MILLIS: bool = true;

    fn prefix(&self) -> &'static str {
        ""
    }

    /// Migrations run in one `BEGIN IMMEDIATE` transaction, so processes take turns.
    async fn migrate(store: &SqliteStore) -> Result<()> {
        let setup =
            "CREATE TABLE IF NOT EXISTS cqrs_ddd_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";
        migrate_in_txn(store, setup, "cqrs_ddd_migrations", MIGRATIONS, str::to_owned).await
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
