//! The MariaDB / MySQL dialect.
//!
//! InnoDB has no transaction-visibility horizon to read below, so global order is made
//! gap-safe by order of commit instead: every commit that appends events first locks
//! the one row of `event_lock` (`SELECT .. FOR UPDATE`) and holds it until it commits or
//! rolls back. Positions (`AUTO_INCREMENT`) are assigned while the lock is held, so a
//! commit's positions are above those of every commit before it and below those of every
//! commit after it: when a reader sees position `p`, every event below `p` that will
//! ever exist is already committed. The cost is that event-writing commits take turns
//! for the time from their `BEGIN` (which takes the lock in the same round trip) to
//! their commit; commits of state rows alone do not take the lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::{Error, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Executor, MySqlConnection};
use uuid::Uuid;

use crate::common::{Migration, first_connection, migrate_on, network_reason, store_err, to_ms_precision};
use crate::dialect::{Dialect, sealed, strip_casts};
use crate::exec::{Stmt, Value, bind};
use crate::store::SqlStore;

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/mysql/0001_schema.sql") },
    Migration { version: 2, sql: include_str!("../migrations/mysql/0002_outbox_streams.sql") },
    Migration { version: 3, sql: include_str!("../migrations/mysql/0003_undo_log.sql") },
    Migration { version: 4, sql: include_str!("../migrations/mysql/0004_jobs.sql") },
];

/// Event store, state rows, snapshots, outbox, projections, sagas and scheduled commands
/// on MariaDB (10.6 or later) or MySQL (8.0 or later), in the database the URL names.
pub type MySqlStore = SqlStore<MySql>;

/// The MariaDB / MySQL [`Dialect`].
#[derive(Clone, Debug)]
pub struct MySql;

impl sealed::Sealed for MySql {}

/// What every connection of the pool sets: strict mode (a value that does not fit is an
/// error, never truncated), UTC for `NOW()`, and `READ COMMITTED`, under which a locking
/// read takes no gap locks: a relay's claim (`FOR UPDATE SKIP LOCKED`) then never holds
/// up a commit inserting outbox rows, which under `REPEATABLE READ` deadlock each other.
/// Nothing here relies on gap locks: every conditional write states its condition in
/// the statement (a unique key, `WHERE version = ?`), and global order relies on a row
/// lock.
pub(crate) const SESSION: [&str; 2] = [
    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES,NO_ZERO_DATE'), time_zone = '+00:00'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
];

impl SqlStore<MySql> {
    /// Connects to `url` (`mysql://user:password@host:port/database`) with 16 connections.
    ///
    /// One connection is opened first, within 5 s, so that a server that cannot be used
    /// fails at once with its real cause as [`Error::Connect`]: connection refused at
    /// host:port, no answer in time, database missing, access denied.
    pub async fn connect(url: &str) -> Result<Self> {
        let options: MySqlConnectOptions = url.parse().map_err(|e| Error::Connect {
            backend: MySql::NAME,
            target: "(the url)".to_owned(),
            reason: format!("the url does not parse: {e}"),
        })?;
        let target = target(&options);
        first_connection::<MySqlConnection>(&options, Duration::from_secs(5), "MariaDB/MySQL", target, |e| {
            connect_error(&options, e)
        })
        .await?;
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for statement in SESSION {
                        conn.execute(statement).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool. Its connections should be set up as
    /// [`connect`](Self::connect) sets them up: strict mode (`STRICT_ALL_TABLES`, or
    /// MariaDB truncates a value that does not fit instead of refusing it) and
    /// `READ COMMITTED` (under `REPEATABLE READ` claims and commits can deadlock more
    /// often; a deadlocked commit is run again, up to four times).
    pub fn from_pool(pool: MySqlPool) -> Self {
        SqlStore::with(pool, MySql)
    }
}

impl Dialect for MySql {
    type Db = sqlx::MySql;
    type Conn = MySqlConnection;
    type Row = MySqlRow;

    const NAME: &'static str = "MariaDB/MySQL";
    const FLAVOR: crate::dialect::Flavor = crate::dialect::Flavor::MariaDb;
    const RETURNING: bool = false;
    const ON_CONFLICT_SKIP: &'static str = "";
    /// One round trip: the statements go as one text query.
    const BEGIN_APPEND: Option<&'static str> = Some("BEGIN; SELECT id FROM event_lock WHERE id = 1 FOR UPDATE");
    const TEXT_UNCHECKED: bool = true;

    /// Times go as `DATETIME` (UTC, no zone): sent as a `TIMESTAMP`, a time after 2038
    /// would not fit.
    fn time(t: DateTime<Utc>) -> Value<'static> {
        Value::Naive(to_ms_precision(t).naive_utc())
    }

    fn prefix(&self) -> &'static str {
        ""
    }

    fn render(&self, template: &str) -> String {
        strip_casts(&template.replace("{t}", "")).replace('"', "`")
    }

    fn save_snapshot_sql(&self) -> Option<String> {
        None
    }

    fn upsert(&self, _key: &str, set: &[(&str, Option<&str>)]) -> String {
        let set: Vec<String> = set
            .iter()
            .map(|(col, expr)| match expr {
                Some(e) => format!("{col} = {e}"),
                None => format!("{col} = VALUES({col})"),
            })
            .collect();
        format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
    }

    /// DDL is not transactional here: each migration is written to be run again after a
    /// failure, and processes take turns under a named lock (`GET_LOCK`), held by a
    /// connection that is closed afterwards (closing releases it).
    async fn migrate(store: &MySqlStore) -> Result<()> {
        let mut conn = store.conn().await?;
        conn.close_on_drop();
        let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&mut *conn).await.map_err(store_err)?;
        // A binary collation that does not pad: `a` and `a ` are two ids, `A` and `a` too.
        let bin = if version.contains("MariaDB") { "utf8mb4_nopad_bin" } else { "utf8mb4_0900_bin" };
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('cqrs_ddd_migrate', 300)")
            .fetch_one(&mut *conn)
            .await
            .map_err(store_err)?;
        if locked != Some(1) {
            return Err(Error::store("another process held the migration lock for 300 s"));
        }
        let setup = "CREATE TABLE IF NOT EXISTS cqrs_ddd_migrations (version BIGINT NOT NULL PRIMARY KEY, \
                     applied_at DATETIME(3) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        migrate_on(store, &mut conn, setup, "cqrs_ddd_migrations", MIGRATIONS, |sql: &str| sql.replace("{bin}", bin))
            .await
    }

    async fn lock_positions(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT id FROM event_lock WHERE id = 1 FOR UPDATE").fetch_optional(conn).await.map(|_| ())
    }

    /// The first position of a multi-row insert is `LAST_INSERT_ID()`; the rows of one
    /// statement take consecutive values (InnoDB allocates a simple insert's values at
    /// once), and they are the only inserts running (`event_lock`).
    async fn insert_events(conn: &mut MySqlConnection, stmt: Stmt<'_>, ids: &[Uuid]) -> Result<Vec<u64>, sqlx::Error> {
        let done = bind::<sqlx::MySql>(stmt).execute(conn).await?;
        let first = done.last_insert_id();
        Ok((0..ids.len() as u64).map(|i| first + i).collect())
    }
}

/// Where a connection goes, without credentials: `host:port/database`.
fn target(options: &MySqlConnectOptions) -> String {
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""))
}

/// Why a first connection failed, in the words a user can act on.
fn connect_error(options: &MySqlConnectOptions, e: &sqlx::Error) -> String {
    if let Some(reason) = network_reason(e, options.get_host(), options.get_port(), "MariaDB or MySQL") {
        return reason;
    }
    match e {
        sqlx::Error::Database(db) => {
            let number = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map_or(0, MySqlDatabaseError::number);
            match number {
                1049 => format!("database `{}` does not exist (error 1049)", options.get_database().unwrap_or("")),
                1045 => format!("access denied for user `{}` (error 1045)", options.get_username()),
                _ => format!("{} (error {number})", db.message()),
            }
        }
        other => other.to_string(),
    }
}
