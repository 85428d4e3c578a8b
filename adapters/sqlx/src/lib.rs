//! One SQL store for cqrs-ddd on PostgreSQL, SQLite and MariaDB/MySQL: the event store,
//! state rows of state-stored aggregates, snapshots, the transactional outbox,
//! projections (checkpoints, leases, dead letters, documents), saga instances and
//! scheduled commands, on one schema shape.
//!
//! ```no_run
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::SnapshotPolicy;
//! use cqrs_ddd_sqlx::{MySqlStore, PgStore, SqliteStore};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! // SQLite: one file, created on first use.
//! let store = SqliteStore::connect("sqlite://bank.db").await?;
//! store.migrate().await?;
//!
//! // PostgreSQL: tables in a schema of your choice (default `public`).
//! let store = PgStore::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
//! store.migrate().await?;
//!
//! // MariaDB or MySQL: tables in the database of the URL.
//! let maria = MySqlStore::connect("mysql://root@127.0.0.1:3306/test").await?;
//! maria.migrate().await?;
//!
//! let app = App::builder()
//!     .event_store(store.clone())
//!     .snapshot_store(store)              // the same database keeps snapshots
//!     .build()?;
//! # let _ = (app, maria, SnapshotPolicy::every(100));
//! # Ok(()) }
//! ```
//!
//! # One store, three dialects
//!
//! [`PgStore`], [`SqliteStore`] and [`MySqlStore`] are one type, [`SqlStore<D>`], over a
//! [`Dialect`]. Everything the databases do alike (the unit-of-work commit on a
//! transaction, conflict and idempotency reporting, row decoding and its checks, the
//! outbox, projections, sagas, schedules, tenancy) is written once, in `store`,
//! `projection` and `saga`. A dialect module holds only what really differs:
//!
//! | | PostgreSQL | SQLite | MariaDB / MySQL |
//! | --- | --- | --- | --- |
//! | commit | one statement (data-modifying CTEs over `UNNEST`) | `BEGIN IMMEDIATE` transaction; events alone: one `INSERT` | transaction holding the `event_lock` row |
//! | gap-safe `read_all` | rows below the transaction horizon | single writer: position order is commit order | positions assigned under a lock held to commit |
//! | claims | `UPDATE .. RETURNING` over `FOR UPDATE SKIP LOCKED`, autocommit | the same `UPDATE .. RETURNING` under the write lock | `SELECT .. FOR UPDATE SKIP LOCKED`, then `UPDATE` |
//! | compared times | `timestamptz` | milliseconds since the epoch | `DATETIME(3)` |
//! | SQL spelling | `$n`, casts | `?` | `?`, `ON DUPLICATE KEY UPDATE`, backquotes |
//! | migrations | one transaction, advisory lock | one `BEGIN IMMEDIATE` transaction | `GET_LOCK`, statements that can run again |
//!
//! Why this shape. sqlx's traits are generic, but a function generic over
//! `sqlx::Database` must restate a dozen higher-ranked bounds (an executor for every
//! connection borrow, an encoder for every argument type) on every item, because Rust
//! does not carry such bounds with a type parameter. Here they are stated once, on the
//! blanket impls of two small traits (run a statement, read a column by name), and a
//! dialect names its connection and row types with those traits as bounds, which Rust
//! does carry: the generic store has no where-clause at all. The alternatives were
//! weighed: `sqlx::Any` decides the database at run time and has no UUID or time types;
//! a query builder (sea-query) spells SQL for each database but leaves binding,
//! decoding and, above all, the parts that differ in meaning (the commit protocol, the
//! read horizon, locks) to the caller; one crate per database (postgres-es and
//! mysql-es next to cqrs-es) is the copying this design removes. SQL text is written
//! once, in PostgreSQL's spelling with `?` placeholders, and rendered per dialect when
//! the store is built; every statement binds each argument once (MariaDB has no
//! numbered placeholders).
//!
//! # Read models in SQL
//!
//! The document store answers [specifications](cqrs_ddd::spec) in SQL: `find_of`,
//! `page_of` (keyset cursors), `count_of` (`SELECT count(*)`) and `aggregate_of`
//! (`GROUP BY`) compile the query once per call, for the dialect, with every value a bind
//! parameter, and give the rows the in-memory evaluator gives (a differential property
//! test holds the three databases to it). `ensure_index` builds a declared
//! [`Index`](cqrs_ddd::spec::Index) as an expression index on PostgreSQL and SQLite over
//! the same typed expressions the queries use; [`SqlStore::explain`] shows the plan.
//! Geometry operators (feature `geo`, on by default) need PostGIS on PostgreSQL and
//! SpatiaLite on SQLite ([`SqliteStore::connect_with`] with
//! `SqliteStore::options(url)?.extension("mod_spatialite")`); MariaDB refuses them.
//!
//! # Policies every backend shares
//!
//! - **Overflow.** A number that does not fit its column (a version above `i64::MAX`, a
//!   schema version above `i32::MAX`, a stored negative version) is a typed error naming
//!   it, never clamped: [`cqrs_ddd::Error::Unstorable`] before a write,
//!   [`cqrs_ddd::Error::CorruptRow`] or a store error on a read.
//! - **Clock.** Every time the stores write or compare is the application's: the `now`
//!   a port method is given (sagas, schedules), else the process's `Utc::now()` (outbox
//!   due times and claims, leases, `updated_at` columns). The database's clock is never
//!   read, so a store behaves the same on every backend and under a test clock; keep the
//!   processes' clocks in sync (NTP) when several share a database.
//! - **Time precision.** Times are kept to the millisecond on every backend, so a record
//!   loads back equal on each; they must lie in the years 1 to 9999.
//! - **Retries.** A transaction the store runs itself and the database rolled back as a
//!   deadlock victim or a serialization failure (SQLSTATE 40001, 40P01) is run again, up
//!   to four times; a transaction of the caller (`commit_in`) is the caller's to retry.
//!
//! # Guarantees
//!
//! - **Atomic units of work.** Everything a command stages (the events of every stream it
//!   touched, the state rows of state-stored aggregates, outbox rows) commits together or
//!   not at all. On PostgreSQL that is a single statement (data-modifying CTEs over
//!   `UNNEST` arrays): one round trip and one commit per command, whatever it wrote. On
//!   SQLite and MariaDB it is one transaction with multi-row inserts; on SQLite a batch
//!   of events alone is one `INSERT` in autocommit (one writer at a time: atomic and in
//!   commit order without a transaction around it).
//! - **Optimistic concurrency in the database.** `(tenant, stream type, stream id,
//!   version)` is unique; a writer that loaded an old version gets
//!   [`cqrs_ddd::Error::Conflict`] with the expected and actual versions.
//! - **Gap-safe global order.** [`EventStore::read_all`](cqrs_ddd::ports::EventStore::read_all)
//!   never returns an event while one that sorts before it may still commit. PostgreSQL
//!   assigns positions at insert, not at commit, so rows are ordered by
//!   `(transaction id, position)` and only rows below a horizon are read: the oldest
//!   transaction still running that could write this database's events (see
//!   [The read horizon on PostgreSQL](#the-read-horizon-on-postgresql)). A long
//!   transaction of this database delays readers (never makes them skip an event), and
//!   [`EventStore::read_stall`](cqrs_ddd::ports::EventStore::read_stall) names it. SQLite
//!   commits one writer at a time, so position order is already commit order. MariaDB
//!   has no visibility horizon to read below: see
//!   [Global order on MariaDB](#global-order-on-mariadb).
//! - **Streaming loads.** A stream is read row by row (`fetch`), so loading a stream of a
//!   million events holds one row at a time; loading selects only version, type, schema
//!   version and payload.
//! - **Exactly-once commands.** A batch with an idempotency key
//!   ([`CommitBatch::idempotency_key`](cqrs_ddd::ports::CommitBatch::idempotency_key))
//!   records the key in `processed_commands` in the same statement (PostgreSQL) or
//!   transaction (SQLite, MariaDB) as the rest of the batch, even when there is nothing else. A
//!   second batch under the key fails with [`cqrs_ddd::Error::AlreadyProcessed`] and
//!   writes nothing; when it would also conflict, `AlreadyProcessed` wins (the command is
//!   done). A refused batch does not record its key. Keys are kept until you delete them
//!   (`processed_at` says when each was recorded).
//! - **The undo log** ([`cqrs_ddd::undo`]). The entries of
//!   [`CommitBatch::undo_log`](cqrs_ddd::ports::CommitBatch::undo_log) go into `undo_log`
//!   in the batch's transaction, after its idempotency key (on PostgreSQL a batch with
//!   entries commits in a transaction instead of the one statement); its primary key
//!   (tenant, event id, generation, action) refuses a second entry, and with it the whole
//!   batch, as [`UndoError::AlreadyUndone`](cqrs_ddd::undo::UndoError::AlreadyUndone) or
//!   `AlreadyRedone`. `undo` finds its event by the index `events_by_id`.
//! - **State rows.** A state row that no event append of its stream guards is written
//!   with its own condition: inserted when the writer expects none (the key refuses a
//!   second), updated `WHERE version = ?` otherwise. Racing writers of one row get one
//!   success and [`cqrs_ddd::Error::Conflict`]s naming the version they met.
//! - **Sagas and scheduled commands.** Every store implements
//!   [`SagaStore`](cqrs_ddd::ports::SagaStore) (instances versioned like streams) and
//!   [`ScheduleStore`](cqrs_ddd::ports::ScheduleStore): claims use the caller's clock and
//!   `FOR UPDATE SKIP LOCKED` (PostgreSQL, MariaDB) or the write lock (SQLite), so
//!   concurrent workers take disjoint commands.
//! - **Tenancy in every key.** Every table that holds per-tenant rows has a `tenant_id`
//!   column (`''` for no tenant) in its primary key: events, states, snapshots, idempotency
//!   keys, documents, sagas, scheduled commands and the undo log (PostgreSQL's and SQLite's migration
//!   4 moved the last three into it; SQLite copies those tables into their new shape
//!   once). An empty tenant id is
//!   refused before any statement runs, so `Some("")` never aliases "no tenant".
//!   `read_all` reads every tenant; `read_tenant` filters in the query.
//! - **Bad data is an error, not a panic**: payloads that do not deserialize, unknown
//!   event types and negative or oversized numbers are typed errors naming the stream and
//!   version. See [Corrupt rows](#corrupt-rows).
//!
//! # The read horizon on PostgreSQL
//!
//! Readers of all events (`read_all`, `head`) read the rows whose transaction id is
//! below a horizon computed in the same statement, from the statement's own snapshot
//! (`pg_current_snapshot()`): the smallest transaction id the snapshot lists as running
//! (`pg_snapshot_xip`) that is not positively known to belong to a backend of another
//! database, else the snapshot's `xmax`. Every transaction below it has committed or
//! rolled back, or runs in another database and so cannot write these events: no event
//! can still appear below it, and none is skipped.
//!
//! - **Why not `pg_snapshot_xmin`.** A snapshot is cluster-wide: with the xmin alone, any
//!   write transaction on the server (another application's database, a long batch job)
//!   stops every projection, relay and saga feed of this database for as long as it
//!   stays open, and nothing says why.
//! - **How "another database" is known.** A running transaction is matched to
//!   `pg_stat_activity` by `backend_xid` (a 32-bit xid, compared with the low 32 bits of
//!   the `xid8`: unambiguous among running transactions) and skipped only if that backend's
//!   `datname` is another database. A running transaction that matches no such row holds
//!   the horizon: a prepared transaction (`pg_stat_activity` does not list them), a
//!   backend without a database, a transaction whose row is not visible. Conservative:
//!   an unknown holder delays readers, it never makes them skip.
//! - **Privileges.** `datname` and `backend_xid` are shown to every role (checked on
//!   PostgreSQL 15), so the horizon needs no privilege: a reader without
//!   `pg_read_all_stats` passes other databases' transactions too. `read_stall` reports the
//!   holding transaction's id, `age`, process id and `application_name` to every role;
//!   its start (`xact_start`) only to a superuser, a member of `pg_read_all_stats`, or the
//!   holder's own role, else `since` is `None`. If a server hid `backend_xid` from a role,
//!   that role's readers would fall back to waiting for every running transaction, as
//!   with the xmin.
//! - **Standbys.** A snapshot taken during recovery lists no running transactions, so on
//!   a standby the horizon is the snapshot's xmin.
//! - **Cost.** Still one statement. The horizon is an uncorrelated subquery, evaluated
//!   once per statement (an `InitPlan`) and used as an index condition, so `read_all`
//!   remains a range scan of `events_commit_order`. It reads `pg_stat_activity` only when
//!   the snapshot lists running transactions: a scan of the server's backend table,
//!   microseconds for hundreds of connections.
//! - **`read_stall`** returns the holding transaction when the horizon is below the
//!   snapshot's `xmax` (a transaction of this database, or an unknown one, is running and
//!   older than some committed ones), else `None`. Workers can log it when a stall lasts.
//!
//! # Global order on MariaDB
//!
//! InnoDB assigns `AUTO_INCREMENT` values when a row is inserted and has no horizon a
//! reader could stay below, so positions alone would let a reader see position 11 while
//! 10 is still uncommitted, then skip 10. Every commit that appends events therefore
//! first locks the one row of `event_lock` (`SELECT .. FOR UPDATE`) and holds it until
//! it ends: positions are assigned while the lock is held, so each commit's positions
//! are above every earlier commit's and below every later one's, and a reader that sees
//! a position has seen every committed position below it. The concurrent-writers
//! contract test with a tailing reader runs on MariaDB like on the others. The cost:
//! event-writing commits take turns for the time from their lock to their commit (a few
//! round trips, measured in the benchmark's `my_*` rows); commits of state rows alone do
//! not take it. A multi-row insert reports its first position (`LAST_INSERT_ID()`); the
//! rows of one insert take consecutive values (InnoDB allocates a simple insert's values
//! at once, and no other event insert runs meanwhile).
//!
//! MariaDB specifics: identifiers (tenant, stream type and id, event type, collection,
//! document id, saga type and id) are `VARCHAR` of a binary collation that does not pad
//! (`utf8mb4_nopad_bin`; `utf8mb4_0900_bin` on MySQL), so `A` and `a`, `a` and `a ` are
//! distinct keys as on the other databases; an id longer than its column (128 characters
//! for tenants, 255 for the others) is [`cqrs_ddd::Error::Unstorable`]. JSON columns are
//! `LONGTEXT` with a `json_valid` check. [`MySqlStore::connect`] sets every connection to
//! strict mode (a value that does not fit is refused, never truncated) and
//! `READ COMMITTED` (no gap locks: claims with `SKIP LOCKED` then never deadlock commits
//! inserting outbox rows). Tested on MariaDB 10.11; MySQL 8 has the same features
//! (`SKIP LOCKED`, `CHECK` constraints), with a smaller default recursion limit.
//!
//! # Corrupt rows
//!
//! The stores never write these rows, but a hand edit, a restore or another program can.
//! Reading one is [`cqrs_ddd::Error::CorruptRow`] naming the stream and the version as
//! stored (a negative version is reported as such, never clamped to 0):
//!
//! - **Loading a stream** (`read_stream`): versions must run on from the starting version
//!   without a gap or a repeat, be 1 or more (a row below 1 is found whatever the starting
//!   version: one index probe per load) and have a schema version within `u32`.
//! - **Reading all events** (`read_all`): a version below 1, a negative position or
//!   commit key, a schema version out of range, headers that are not a JSON object of
//!   strings, or a column that does not decode. A page stops before its first corrupt
//!   row: readers get every good event before it, and the next read, starting at the
//!   corrupt row, fails with its `CorruptRow`, whose reason ends with where the row sits
//!   (`row at position P, commit C`) and whose `at` field is that cursor. The error is
//!   not transient: a projection worker's error policy decides whether to stop or to
//!   step past the row (`Skip`, or `RetryThenDeadLetter`, which leaves a dead letter of
//!   type `(corrupt row)`); the row stays until repaired, and readers read on once it is. Version gaps across streams are not checked here (a page sees
//!   pieces of many streams); loading the stream reports them.
//! - Outbox messages and scheduled commands with malformed headers are `CorruptRow`
//!   naming the message (`stream` is `outbox message <id>` or `scheduled command <id>`,
//!   `version` 0).
//!
//! # Values a database cannot store
//!
//! Every backend accepts and refuses the same values (MariaDB adds its column lengths),
//! and a refusal is
//! [`cqrs_ddd::Error::Unstorable`] naming what was refused (the event's type, version and
//! stream; the outbox message's id and topic; the document's collection and id; the
//! state, snapshot, saga or scheduled command), never a store error a worker would retry.
//!
//! - JSON text with the escape `\u0000` or a lone UTF-16 surrogate (`\ud800`) is refused
//!   before the write, in every JSON column. PostgreSQL's `jsonb` cannot hold either;
//!   its `json` (events) and SQLite take both, and serde cannot read a lone surrogate
//!   back, so such an event would be stored only to break every reader of it. The check
//!   is a scan for backslashes, done before the write; the same text with its backslash
//!   escaped (`"\\u0000"`) is an ordinary string and is stored.
//! - A NUL character in text (a stream id, a header, a topic) is refused on both: PostgreSQL's
//!   `text` cannot hold it.
//! - Text that is not JSON, in a JSON column, is refused by the database at the write:
//!   by type on PostgreSQL (SQLSTATE 22P02), by the triggers of SQLite's migration 5
//!   and by MariaDB's `CHECK (json_valid(..))`. PostgreSQL's refusals 22P02, 22P05 and
//!   22021 and MariaDB's 22001 (too long), 22003, 22007 (out of range) and its check
//!   violations all map to `Unstorable`.
//! - Times outside the years 1 to 9999 (MariaDB's `DATETIME` ends with 9999) and schema
//!   versions above `i32::MAX` (PostgreSQL keeps an `integer`) are refused before the
//!   write, on every backend. [`SqlStore::commit_in`] rolls a refused batch back to its savepoint, so
//!   the caller's transaction stays usable.
//! - Error messages the stores keep (an outbox message's or scheduled command's last
//!   error, a dead letter's error) are diagnostics: a NUL character in them is replaced
//!   by U+FFFD rather than failing the write.
//!
//! # Cancellation
//!
//! Every future of these stores may be dropped at any await point (a `tokio::time::timeout`
//! around a command, a client that went away) without harming later work. sqlx rolls a
//! transaction back on drop only once its `Transaction` exists; a future dropped while
//! `BEGIN` is on the wire returns its connection to the pool inside a transaction nobody
//! ends (on SQLite every later write then fails with "non-zero transaction depth" or
//! "database is locked"; on PostgreSQL later statements on that connection never
//! commit). So each transaction these stores open (commits, claims in a transaction,
//! projection batches, migrations) marks its pooled
//! connection to be closed, not reused, unless it was seen to commit or roll back; closing
//! ends the transaction on the server. What it costs: a new connection after each
//! cancelled or failed transaction. What a cancelled write did is unknown to its caller:
//! it may still commit (a later command then meets a version conflict and retries).
//!
//! # Your own rows in the same transaction
//!
//! [`SqlStore::commit_in`] writes a batch inside a transaction you opened, so rows of
//! your own commit with the events (on SQLite begin it with `BEGIN IMMEDIATE`; on
//! MariaDB it holds the `event_lock` row from the batch until your commit, so commit
//! soon).
//!
//! # Cargo features
//!
//! | feature | default | what it gives |
//! | --- | --- | --- |
//! | `postgres` | yes | [`PgStore`] |
//! | `sqlite` | yes | [`SqliteStore`] |
//! | `mysql` | yes | [`MySqlStore`] (MariaDB 10.6+, MySQL 8+) |
//! | `geo` | yes | the geometry operators of specifications (`cqrs-ddd/geo`): PostGIS on PostgreSQL, SpatiaLite on SQLite (load it with [`SqliteStore::options`] and [`SqliteStore::connect_with`]); MariaDB refuses them |
//!
//! # Connection pools
//!
//! [`PgStore::connect`] builds a pool that does not ping a connection on every acquire
//! (sqlx's default does, which costs a round trip per command).
//!
//! sqlx's pool also checks every connection given back to it, with a statement of its
//! own, because a connection can come back in the middle of a statement whose future
//! was dropped. The store knows whether its statements ran to their end, so it keeps the
//! connections it used between its statements instead, unchecked, and each command or
//! load saves that round trip (the benchmark's README has the figures). A connection
//! whose statement was dropped or failed on its connection, or whose transaction was not
//! seen to end, goes back to the pool (or is closed) as before.
//! What this means for the pool you give a store:
//! - the store holds at most half the pool's connections between statements (a pool of
//!   one: none); more run its statements when it is busy and go back after each, so your
//!   own queries on [`SqlStore::pool`] always get the other half
//!   ([`SqlStore::keep_connections`] changes how many: all of them for a pool that
//!   serves the store alone);
//! - the connections it kept go back to the pool once the store has not used one for
//!   a quarter of a second, and at once when the pool closes: `pool.close().await`
//!   does not wait on a store that is still alive, and the store's calls then fail with
//!   the pool's error.
//!
//! `connect` opens one connection first, within [`PgOptions::connect_timeout`] (5 s by
//! default), and fails with [`cqrs_ddd::Error::Connect`] giving the real cause: connection
//! refused at host:port, no answer in time, database or role missing (SQLSTATE 3D000,
//! 28000), password refused (28P01). A pool left to itself retries a refused connection
//! for its whole acquire timeout (30 s) and then says only "pool timed out". The cost is
//! one extra connection, closed at once, per `connect`. [`MySqlStore::connect`] does the
//! same (connection refused, database missing, access denied). [`SqliteStore::connect`]
//! names the file it could not open and why (its directory does not exist or is not
//! writable). Tables are created and upgraded by `migrate()`, which is safe to run from
//! several processes at once.

mod common;
mod conns;
pub mod dialect;
#[doc(hidden)]
pub mod exec;
mod jobs;
#[cfg(feature = "postgres")]
mod locks;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod rows;
mod saga;
mod spec;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod storable;
mod store;

pub use dialect::Dialect;
#[cfg(feature = "postgres")]
pub use locks::PgLocks;
#[cfg(feature = "mysql")]
pub use mysql::{MySql, MySqlStore};
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore, Postgres};
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteStore};
/// The connect options of [`SqliteStore::options`] and [`SqliteStore::connect_with`].
#[cfg(feature = "sqlite")]
pub use sqlx::sqlite::SqliteConnectOptions;
pub use store::SqlStore;
