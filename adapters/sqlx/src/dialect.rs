//! What differs between the databases, and nothing else.
//!
//! [`SqlStore`] is written once, generic over a [`Dialect`]. A dialect names its sqlx
//! database and says how it differs: how SQL text is spelled (placeholders, casts,
//! upserts, row locks), how a time that is compared in SQL is encoded, and the few
//! operations whose shape really differs: the commit of PostgreSQL (one statement), the
//! gap-safe order of `read_all` (PostgreSQL's transaction horizon; MariaDB's position
//! lock), the positions MariaDB reports for a multi-row insert, migrations.
//!
//! The trait is sealed: the three dialects are [`Postgres`](crate::Postgres),
//! [`Sqlite`](crate::Sqlite) and [`MySql`](crate::MySql), each behind its cargo feature.

use std::future::Future;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, ReadStall};
use sqlx::{Connection, Database, Row};
use uuid::Uuid;

use crate::exec::{SqlConn, SqlRow, Stmt, Value};
use crate::store::SqlStore;

pub(crate) mod sealed {
    /// Only this crate's dialects.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// Which SQL the specification compiler writes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// PostgreSQL: `jsonb`.
    Postgres,
    /// SQLite: JSON text and JSON1.
    Sqlite,
    /// MariaDB: JSON text.
    MariaDb,
}

/// A snapshot upsert that keeps the newer one: the arguments of
/// [`Dialect::save_snapshot_sql`].
pub(crate) const SAVE_SNAPSHOT: &str = "INSERT INTO {t}snapshots AS s (state, taken_at, version, tenant_id, stream_type, \
     stream_id) VALUES (?::jsonb, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, stream_type, stream_id) DO UPDATE \
     SET state = EXCLUDED.state, taken_at = EXCLUDED.taken_at, version = EXCLUDED.version \
     WHERE s.version < EXCLUDED.version";

/// A database the [`SqlStore`] runs on (sealed).
pub trait Dialect: sealed::Sealed + Clone + Send + Sync + Sized + 'static {
    /// The sqlx database.
    type Db: Database<Connection = Self::Conn, Row = Self::Row>;
    /// Its connection.
    type Conn: SqlConn<Row = Self::Row> + Connection<Database = Self::Db> + 'static;
    /// Its row.
    type Row: SqlRow + Row<Database = Self::Db>;

    /// The database's name in errors.
    const NAME: &'static str;
    /// The SQL the specification compiler writes.
    #[doc(hidden)]
    const FLAVOR: Flavor;
    /// The statement that begins a transaction that will write (SQLite takes its write
    /// lock at once with `BEGIN IMMEDIATE`, so two writers queue instead of deadlocking).
    const BEGIN_WRITE: Option<&'static str> = None;
    /// The statement that begins a transaction of the store's own that will append
    /// events: it may also take what [`Dialect::lock_positions`] takes, in the same round
    /// trip (MariaDB).
    const BEGIN_APPEND: Option<&'static str> = Self::BEGIN_WRITE;
    /// Whether a batch of events alone, one `INSERT`, commits in autocommit: position
    /// order is commit order for a single statement (SQLite, one writer at a time), so it
    /// needs no transaction around it.
    const AUTOCOMMIT_APPEND: bool = false;
    /// Appended to a claim's `SELECT`, so concurrent claimers take disjoint rows.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Appended to an `INSERT` that must not fail when its key is taken (it then inserts
    /// nothing): PostgreSQL would abort the transaction on the error. MariaDB has no
    /// such clause short of `INSERT IGNORE`, which would also turn a value too long into
    /// a truncated one; there the key's error is met instead (it leaves the
    /// transaction usable).
    const ON_CONFLICT_SKIP: &'static str = " ON CONFLICT DO NOTHING";
    /// Whether `INSERT`, `UPDATE` and `DELETE` take `RETURNING`.
    const RETURNING: bool = true;
    /// Whether readers of all events order by `(commit, position)`; else by position.
    const COMMIT_ORDER: bool = false;
    /// Whether times compared in SQL (due times, claims, leases) are stored as
    /// milliseconds since the epoch rather than in a timestamp type.
    const MILLIS: bool = false;
    /// Whether text columns are read without sqlx's type check.
    const TEXT_UNCHECKED: bool = false;

    /// A time in the database's timestamp type, kept to the millisecond.
    fn time(t: DateTime<Utc>) -> Value<'static> {
        Value::Time(crate::common::to_ms_precision(t))
    }

    /// The table prefix (`"schema".` on PostgreSQL).
    fn prefix(&self) -> &str;

    /// SQL text of this dialect from the crate's one spelling of it: `{t}` is the table
    /// prefix, `?` a placeholder, `::type` a PostgreSQL cast (dropped elsewhere).
    fn render(&self, template: &str) -> String {
        strip_casts(&template.replace("{t}", self.prefix()))
    }

    /// The clause that turns an `INSERT` into an upsert on the unique key `key`, setting
    /// each column of `set` to its inserted value, or to an expression (`{t}` rendered).
    fn upsert(&self, key: &str, set: &[(&str, Option<&str>)]) -> String {
        let set: Vec<String> = set
            .iter()
            .map(|(col, expr)| match expr {
                Some(e) => format!("{col} = {e}"),
                None => format!("{col} = EXCLUDED.{col}"),
            })
            .collect();
        format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
    }

    /// The statement that stores a snapshot unless one as new or newer is stored, in one
    /// round trip (arguments: state, taken at, version, tenant, stream type, stream id);
    /// `None` where an upsert cannot keep the newer one (MariaDB: an update, then an
    /// insert).
    fn save_snapshot_sql(&self) -> Option<String> {
        Some(self.render(SAVE_SNAPSHOT))
    }

    /// `read_all`'s page: the rows after the cursor (its arguments first), of one tenant
    /// when `tenant`, then `LIMIT ?`; the columns of an event row and
    /// `commit_key`.
    fn read_all_sql(&self, tenant: bool) -> String {
        let tenant = if tenant { " AND tenant_id = ?" } else { "" };
        self.render(&format!(
            "SELECT position AS commit_key, {} FROM {{t}}events WHERE position > ?{tenant} ORDER BY position LIMIT ?",
            crate::rows::EVENT_COLUMNS
        ))
    }

    /// The newest rows a reader of all events can see, newest first (of one tenant when
    /// `tenant`, its argument first), then `LIMIT ?`; the columns of `read_all_sql`.
    fn latest_sql(&self, tenant: bool) -> String {
        let tenant = if tenant { " WHERE tenant_id = ?" } else { "" };
        self.render(&format!(
            "SELECT position AS commit_key, {} FROM {{t}}events{tenant} ORDER BY position DESC LIMIT ?",
            crate::rows::EVENT_COLUMNS
        ))
    }

    /// The newest event a reader of all events can see: columns `commit_key`, `position`.
    fn head_sql(&self) -> String {
        self.render("SELECT position AS commit_key, position FROM {t}events ORDER BY position DESC LIMIT 1")
    }

    /// Creates or upgrades the tables.
    fn migrate(store: &SqlStore<Self>) -> impl Future<Output = Result<()>> + Send;

    /// Commits a batch (the store has checked it).
    fn commit(store: &SqlStore<Self>, batch: CommitBatch) -> impl Future<Output = Result<CommitReceipt>> + Send {
        store.commit_txn(batch)
    }

    /// Commits a checked batch inside the caller's transaction; a refused batch leaves
    /// the transaction usable.
    fn commit_in<'a>(
        store: &'a SqlStore<Self>,
        conn: &'a mut Self::Conn,
        batch: &'a CommitBatch,
    ) -> impl Future<Output = Result<CommitReceipt>> + Send + 'a {
        store.commit_in_savepoint(conn, batch)
    }

    /// Inside a commit that appends events in the caller's transaction, before the first
    /// insert: what makes the positions of this commit sort after every committed one
    /// (MariaDB locks a row). The store's own commits take it with
    /// [`Dialect::BEGIN_APPEND`].
    fn lock_positions(_conn: &mut Self::Conn) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async { Ok(()) }
    }

    /// Runs a multi-row insert of the events `ids` (rendered with `RETURNING event_id,
    /// position` where the dialect has it) and returns their positions, in the order of
    /// `ids` (the order of `RETURNING` rows is not promised).
    fn insert_events<'a>(
        conn: &'a mut Self::Conn,
        stmt: Stmt<'a>,
        ids: &'a [Uuid],
    ) -> impl Future<Output = Result<Vec<u64>, sqlx::Error>> + Send + 'a {
        async move {
            let mut by_id = HashMap::with_capacity(ids.len());
            for r in conn.rows(stmt).await? {
                let p = r.int("position")?;
                let p = u64::try_from(p).map_err(|_| sqlx::Error::Protocol(format!("position {p} is negative")))?;
                by_id.insert(r.uuid("event_id")?, p);
            }
            ids.iter()
                .map(|id| {
                    by_id.get(id).copied().ok_or_else(|| sqlx::Error::Protocol(format!("event {id} was not returned")))
                })
                .collect()
        }
    }

    /// The transaction that holds readers of all events back, if one does.
    fn read_stall(_store: &SqlStore<Self>) -> impl Future<Output = Result<Option<ReadStall>>> + Send {
        async { Ok(None) }
    }
}

/// Drops PostgreSQL casts (`::jsonb`, `::text[]`) from SQL text for the other
/// databases. The crate's SQL uses `::` for nothing else.
pub(crate) fn strip_casts(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("::") {
        out.push_str(&rest[..at]);
        rest =
            rest[at + 2..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '[' || c == ']');
    }
    out.push_str(rest);
    out
}

/// Numbers `?` placeholders `$1, $2, ..` (PostgreSQL), outside quoted text.
pub(crate) fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let (mut n, mut quoted) = (0, false);
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A time the database compares (due times, claims, leases), in this dialect's encoding,
/// kept to the millisecond.
pub(crate) fn at<D: Dialect>(t: DateTime<Utc>) -> Value<'static> {
    if D::MILLIS { Value::Int(t.timestamp_millis()) } else { D::time(t) }
}

/// An optional compared time.
pub(crate) fn at_opt<D: Dialect>(t: Option<DateTime<Utc>>) -> Value<'static> {
    match t {
        Some(t) => at::<D>(t),
        None if D::MILLIS => Value::OptInt(None),
        None => Value::OptTime(None),
    }
}

/// A time the database only keeps (when an event occurred, a snapshot was taken), in
/// its timestamp type, kept to the millisecond.
pub(crate) fn instant<D: Dialect>(t: DateTime<Utc>) -> Value<'static> {
    D::time(t)
}

#[cfg(test)]
mod tests {
    use super::{number_placeholders, strip_casts};

    #[test]
    fn casts_are_dropped_and_placeholders_numbered() {
        assert_eq!(strip_casts("SELECT a::text, ?::jsonb, ?::text[] FROM t"), "SELECT a, ?, ? FROM t");
        assert_eq!(number_placeholders("a = ? AND b = '?' AND c = ?"), "a = $1 AND b = '?' AND c = $2");
    }
}
