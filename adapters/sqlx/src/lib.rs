//! PostgreSQL and SQLite adapters of cqrs-ddd: the event store, state rows of
//! state-stored aggregates, snapshots, the transactional outbox, saga instances and
//! scheduled commands, on one schema shape.
//!
//! ```no_run
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::SnapshotPolicy;
//! use cqrs_ddd_sqlx::{PgStore, SqliteStore};
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
//! let app = App::builder()
//!     .event_store(store.clone())
//!     .snapshot_store(store)              // the same database keeps snapshots
//!     .build()?;
//! # let _ = (app, SnapshotPolicy::every(100));
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Atomic units of work.** Everything a command stages (the events of every stream it
//!   touched, the state rows of state-stored aggregates, outbox rows) commits together or
//!   not at all. On PostgreSQL that is a single statement (data-modifying CTEs over
//!   `UNNEST` arrays): one round trip and one commit per command, whatever it wrote. On
//!   SQLite it is one `BEGIN IMMEDIATE` transaction with multi-row inserts.
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
//!   commits one writer at a time, so position order is already commit order.
//! - **Streaming loads.** A stream is read row by row (`fetch`), so loading a stream of a
//!   million events holds one row at a time; loading selects only version, type, schema
//!   version and payload.
//! - **Exactly-once commands.** A batch with an idempotency key
//!   ([`CommitBatch::idempotency_key`](cqrs_ddd::ports::CommitBatch::idempotency_key))
//!   records the key in `processed_commands` in the same statement (PostgreSQL) or
//!   transaction (SQLite) as the rest of the batch, even when there is nothing else. A
//!   second batch under the key fails with [`cqrs_ddd::Error::AlreadyProcessed`] and
//!   writes nothing; when it would also conflict, `AlreadyProcessed` wins (the command is
//!   done). A refused batch does not record its key. Keys are kept until you delete them
//!   (`processed_at` says when each was recorded).
//! - **Sagas and scheduled commands.** Both stores implement
//!   [`SagaStore`](cqrs_ddd::ports::SagaStore) (instances versioned like streams) and
//!   [`ScheduleStore`](cqrs_ddd::ports::ScheduleStore): claims use the caller's clock and
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers take disjoint commands.
//!   Their times are kept to the millisecond on both databases.
//! - **Tenancy in every key.** Every table that holds per-tenant rows has a `tenant_id`
//!   column (`''` for no tenant) in its primary key: events, states, snapshots, idempotency
//!   keys, documents, sagas and scheduled commands (migration 0004 moved the last three
//!   into it; SQLite copies those tables into their new shape once). An empty tenant id is
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
//! Both databases accept and refuse the same values, and a refusal is
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
//!   (`json_valid`). PostgreSQL's refusals 22P02, 22P05 and 22021 all map to
//!   `Unstorable`. [`PgStore::commit_in`] rolls a refused batch back to its savepoint, so
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
//! commit). So each transaction these stores open (commits that check state rows,
//! SQLite's commits and claims, projection batches, migrations) marks its pooled
//! connection to be closed, not reused, unless it was seen to commit or roll back; closing
//! ends the transaction on the server. What it costs: a new connection after each
//! cancelled or failed transaction. What a cancelled write did is unknown to its caller:
//! it may still commit (a later command then meets a version conflict and retries).
//!
//! # Your own rows in the same transaction
//!
//! [`PgStore::commit_in`] and [`SqliteStore::commit_in`] write a batch inside a
//! transaction you opened, so rows of your own commit with the events.
//!
//! # Cargo features
//!
//! | feature | default | what it gives |
//! | --- | --- | --- |
//! | `postgres` | yes | [`PgStore`] |
//! | `sqlite` | yes | [`SqliteStore`] |
//!
//! # Connection pools
//!
//! [`PgStore::connect`] builds a pool that does not ping a connection on every acquire
//! (sqlx's default does, which costs a round trip per command).
//!
//! `connect` opens one connection first, within [`PgOptions::connect_timeout`] (5 s by
//! default), and fails with [`cqrs_ddd::Error::Connect`] giving the real cause: connection
//! refused at host:port, no answer in time, database or role missing (SQLSTATE 3D000,
//! 28000), password refused (28P01). A pool left to itself retries a refused connection
//! for its whole acquire timeout (30 s) and then says only "pool timed out". The cost is
//! one extra connection, closed at once, per `connect`. [`SqliteStore::connect`] names the
//! file it could not open and why (its directory does not exist or is not writable). Tables are created and
//! upgraded by `migrate()`, which is safe to run from several processes at once.

mod common;
pub mod dialect;
#[doc(hidden)]
pub mod exec;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod rows;
mod saga;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod storable;
mod store;

pub use dialect::Dialect;
#[cfg(feature = "mysql")]
pub use mysql::{MySql, MySqlStore};
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore, Postgres};
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteStore};
pub use store::SqlStore;
