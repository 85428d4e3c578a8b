//! The SQLite dialect: the embedded default. One writer at a time (`BEGIN IMMEDIATE`), so
//! position order is commit order; times that SQL compares are kept as milliseconds
//! since the epoch.

use std::str::FromStr;
use std::time::Duration;

use cqrs_ddd::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};

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
    Migration { version: 7, sql: include_str!("../migrations/sqlite/0007_outbox_streams.sql") },
    Migration { version: 8, sql: include_str!("../migrations/sqlite/0008_undo_log.sql") },
    Migration { version: 9, sql: include_str!("../migrations/sqlite/0009_jobs.sql") },
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
    /// `sqlite:///var/lib/app/events.db`, with [`options`](Self::options).
    ///
    /// A file that cannot be opened is [`Error::Connect`] naming it and why: its
    /// directory does not exist or is not writable, or what SQLite said.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(Self::options(url)?).await
    }

    /// The options [`connect`](Self::connect) opens `url` with: created if missing, WAL
    /// journal, `synchronous = FULL`, a busy timeout of 30 s, `regexp` for
    /// specifications. Add to them and open the store with
    /// [`connect_with`](Self::connect_with); for the geometry operators of
    /// specifications, load SpatiaLite:
    ///
    /// ```no_run
    /// use cqrs_ddd_sqlx::SqliteStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cqrs_ddd::Result<()> {
    /// let options = SqliteStore::options("sqlite://places.db")?.extension("mod_spatialite");
    /// let store = SqliteStore::connect_with(options).await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// A url that does not parse is [`Error::Connect`].
    pub fn options(url: &str) -> Result<SqliteConnectOptions> {
        Ok(SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Connect {
                backend: "SQLite",
                target: url.to_owned(),
                reason: format!("the url does not parse: {e}"),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .with_regexp())
    }

    /// Opens the database of `options` (start from [`options`](Self::options)), 8
    /// connections at most.
    ///
    /// When the options load SpatiaLite (`.extension("mod_spatialite")`), the database
    /// gets SpatiaLite's metadata tables with the WGS84 reference systems if it has none
    /// (`InitSpatialMetadata(0, 'WGS84_ONLY')`): geodesic distances read the ellipsoid
    /// from them. A file that cannot be opened, or an extension that cannot be loaded,
    /// is [`Error::Connect`] naming it and why.
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self> {
        let file = options.get_filename().to_path_buf();
        let failed = |reason: String| Error::Connect { backend: "SQLite", target: file.display().to_string(), reason };
        let extensions = extension_names(&options);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(|e| match e {
            // sqlx 0.8 does not report an extension that fails to load: the connection's
            // worker thread panics, and its connection is "crashed".
            sqlx::Error::WorkerCrashed if !extensions.is_empty() => failed(format!(
                "an extension could not be loaded ({extensions}): is it installed where the dynamic loader looks \
                 (`libsqlite3-mod-spatialite` on Debian for `mod_spatialite`)?"
            )),
            e => failed(open_failure(&file, &e)),
        })?;
        spatial_metadata(&pool).await.map_err(|e| failed(format!("SpatiaLite's metadata could not be added: {e}")))?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool. Specifications with `regex` need its connect options to
    /// have `with_regexp()` (sqlx's `regexp` feature), as [`options`](Self::options)'
    /// do; geometry needs SpatiaLite loaded on every connection and its metadata, which
    /// [`migrate`](SqlStore::migrate) adds.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqlStore::with(pool, Sqlite)
    }
}

/// With SpatiaLite loaded on the pool's connections, gives the database SpatiaLite's
/// metadata and the WGS84 reference systems, once, under the write lock; without it,
/// does nothing.
async fn spatial_metadata(pool: &SqlitePool) -> std::result::Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    match sqlx::query("SELECT spatialite_version()").execute(&mut *conn).await {
        Err(sqlx::Error::Database(e)) if e.message().contains("no such function") => return Ok(()),
        other => other?,
    };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spatial_ref_sys'")
            .fetch_one(&mut *tx)
            .await?;
    if tables == 0 {
        sqlx::query("SELECT InitSpatialMetadata(0, 'WGS84_ONLY')").execute(&mut *tx).await?;
    }
    let wgs84: i64 =
        sqlx::query_scalar("SELECT count(*) FROM spatial_ref_sys WHERE srid = 4326").fetch_one(&mut *tx).await?;
    if wgs84 == 0 {
        sqlx::query("SELECT InsertEpsgSrid(4326)").execute(&mut *tx).await?;
    }
    tx.commit().await
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
        spatial_metadata(store.pool()).await.map_err(crate::common::store_err)?;
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
        Ok(_) if loader_failure(e) => format!("an extension could not be loaded: {e}"),
        Ok(_) => e.to_string(),
    }
}

/// Whether SQLite's error is the dynamic loader's (an extension that is not installed).
fn loader_failure(e: &sqlx::Error) -> bool {
    let msg = e.to_string();
    ["cannot open shared object", "not authorized", "image not found", "module could not be found", "undefined symbol"]
        .iter()
        .any(|m| msg.contains(m))
}

/// The extensions the options load, for an error message (sqlx keeps them private; its
/// `Debug` shows them as `extensions: {"name": entry point, ..}`); empty when none.
fn extension_names(options: &SqliteConnectOptions) -> String {
    let debug = format!("{options:?}");
    debug
        .split_once("extensions: {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(list, _)| {
            list.split(", ")
                .filter_map(|pair| pair.split_once(": ").map(|(name, _)| format!("`{}`", name.trim_matches('"'))))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
