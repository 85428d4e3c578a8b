//! Every statement of the store, spelled once and rendered for a dialect when the store
//! is built.
//!
//! Conventions of the one spelling: `{t}` is the table prefix, `?` a placeholder (bound
//! in order: no statement refers to one argument twice, as MariaDB cannot), `::type` a
//! PostgreSQL cast the other dialects drop, `"name"` a quoted identifier (the columns
//! `key` and `partition`, reserved words in MariaDB). Upserts come from [`Dialect::upsert`].
//! Assignments never read a column an earlier assignment of the same `SET` wrote
//! (MariaDB evaluates them left to right, the others all against the old row).

use crate::dialect::Dialect;
use crate::rows::{
    DEAD_LETTER_COLUMNS, DOCUMENT_COLUMNS, EVENT_COLUMNS, OUTBOX_COLUMNS, SAGA_COLUMNS, SCHEDULED_COLUMNS, UNDO_COLUMNS,
};

/// Event rows per multi-row `INSERT` whose text is prepared once; larger commits build
/// theirs (and insert at most [`ROWS_PER_INSERT`] rows per statement).
pub(crate) const CACHED_INSERTS: usize = 32;
/// Rows per `INSERT` statement (SQLite binds at most 32766 arguments per statement).
pub(crate) const ROWS_PER_INSERT: usize = 1000;
/// The columns of an event insert, in binding order.
pub(crate) const EVENT_INSERT_COLUMNS: &str = "tenant_id, stream_type, stream_id, version, event_id, event_type, \
    schema_version, payload, correlation_id, causation_id, principal, headers, occurred_at";

const KEY: &str = "tenant_id = ? AND stream_type = ? AND stream_id = ?";
const SAGA_KEY: &str = "tenant_id = ? AND saga_type = ? AND saga_id = ?";

/// The rendered statements.
pub(crate) struct Statements {
    pub(crate) read_stream: String,
    pub(crate) read_all: String,
    pub(crate) read_all_tenant: String,
    pub(crate) head: String,
    pub(crate) latest: String,
    pub(crate) latest_tenant: String,
    pub(crate) tenants: String,
    pub(crate) stream_version: String,
    pub(crate) load_state: String,
    pub(crate) state_version: String,
    pub(crate) insert_state: String,
    pub(crate) update_state: String,
    pub(crate) upsert_state: String,
    pub(crate) insert_processed: String,
    pub(crate) processed: String,
    pub(crate) insert_outbox: String,
    /// `INSERT` of 1..=CACHED_INSERTS events.
    pub(crate) insert_events: Vec<String>,
    pub(crate) load_snapshot: String,
    pub(crate) update_snapshot: String,
    pub(crate) insert_snapshot: String,
    /// The one-statement save, where the dialect has it.
    pub(crate) save_snapshot: Option<String>,
    pub(crate) outbox_pending: String,
    pub(crate) outbox_published: String,
    pub(crate) outbox_failed: String,
    pub(crate) outbox_dead: String,
    pub(crate) outbox_counts: String,
    /// One statement that claims and returns rows (dialects with `RETURNING`), else the
    /// `SELECT` of the rows to claim.
    pub(crate) outbox_claim: String,
    pub(crate) checkpoint: String,
    pub(crate) checkpoint_insert: String,
    pub(crate) checkpoint_update: String,
    pub(crate) checkpoints_reset: String,
    pub(crate) lease_renew: String,
    pub(crate) lease_insert: String,
    pub(crate) lease_release: String,
    pub(crate) dead_insert: String,
    pub(crate) dead_list: String,
    pub(crate) dead_remove: String,
    pub(crate) doc_get: String,
    pub(crate) doc_put: String,
    pub(crate) doc_delete: String,
    pub(crate) doc_clear: String,
    pub(crate) doc_all: String,
    pub(crate) saga_load: String,
    pub(crate) saga_insert: String,
    pub(crate) saga_update: String,
    pub(crate) saga_version: String,
    pub(crate) saga_due: String,
    pub(crate) schedule: String,
    pub(crate) schedule_delete: String,
    /// Removes a scheduled command being fired, if the command that scheduled it is
    /// still the one given (a deadline cancelled or scheduled again is not there).
    pub(crate) schedule_fire: String,
    /// The same for a command stored without a causation id.
    pub(crate) schedule_fire_uncaused: String,
    pub(crate) schedule_get: String,
    /// As `outbox_claim`.
    pub(crate) schedule_claim: String,
    pub(crate) schedule_retry: String,
    pub(crate) schedule_kill: String,
    pub(crate) schedule_dead: String,
    /// One event of a tenant by id, with `commit_key`.
    pub(crate) event_by_id: String,
    pub(crate) insert_undo: String,
    pub(crate) undo_log: String,
    pub(crate) undo_log_stream: String,
    pub(crate) jobs: crate::jobs::JobStatements,
}

impl Statements {
    pub(crate) fn new<D: Dialect>(d: &D) -> Self {
        let r = |t: &str| d.render(t);
        let returning = |cols: &str| if D::RETURNING { format!(" RETURNING {cols}") } else { String::new() };
        // A row waits while an earlier row of its stream is pending and cannot be
        // claimed (due later, or claimed by another relay): a stream's rows leave in
        // order. The claiming relay's own live claims do not hold it back: it publishes
        // its batches one after another.
        let claim_outbox = |cols: &str| {
            format!(
                "SELECT {cols} FROM {{t}}outbox o WHERE status = 'pending' AND next_attempt_at <= ? \
             AND (claimed_until IS NULL OR claimed_until < ?) \
             AND (stream_key IS NULL OR NOT EXISTS (SELECT 1 FROM {{t}}outbox e WHERE e.stream_key = o.stream_key \
             AND e.status = 'pending' AND e.position < o.position \
             AND (e.next_attempt_at > ? OR (e.claimed_until IS NOT NULL AND e.claimed_until >= ? \
             AND (e.claimed_by IS NULL OR e.claimed_by <> ?))))) \
             ORDER BY position LIMIT ?{}",
                D::SKIP_LOCKED
            )
        };
        let claim_schedule = |cols: &str| {
            format!(
                "SELECT {cols} FROM {{t}}scheduled_commands WHERE dead = false AND due_at <= ? \
             AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY due_at, id LIMIT ?{}",
                D::SKIP_LOCKED
            )
        };
        Statements {
            // A row below version 1 (which no writer makes) is read first, whatever the
            // starting version, so that loading the stream reports it: one index probe.
            read_stream: r(&format!(
                "SELECT version, event_type, schema_version::int8 AS schema_version, payload::text AS payload \
                 FROM {{t}}events WHERE {KEY} AND version > CASE WHEN EXISTS \
                 (SELECT 1 FROM {{t}}events WHERE {KEY} AND version < 1) THEN ? ELSE ? END ORDER BY version"
            )),
            read_all: d.read_all_sql(false),
            read_all_tenant: d.read_all_sql(true),
            head: d.head_sql(),
            latest: d.latest_sql(false),
            latest_tenant: d.latest_sql(true),
            tenants: r("SELECT DISTINCT tenant_id FROM {t}events WHERE tenant_id <> '' ORDER BY tenant_id"),
            stream_version: r(&format!("SELECT COALESCE(MAX(version), 0) AS version FROM {{t}}events WHERE {KEY}")),
            load_state: r(&format!("SELECT version, state::text AS state FROM {{t}}states WHERE {KEY}")),
            state_version: r(&format!("SELECT version FROM {{t}}states WHERE {KEY}")),
            insert_state: r(&format!(
                "INSERT INTO {{t}}states (version, state, updated_at, tenant_id, stream_type, stream_id) \
                 VALUES (?, ?::jsonb, ?, ?, ?, ?){}",
                D::ON_CONFLICT_SKIP
            )),
            update_state: r(&format!(
                "UPDATE {{t}}states SET version = ?, state = ?::jsonb, updated_at = ? WHERE {KEY} AND version = ?"
            )),
            upsert_state: r(&format!(
                "INSERT INTO {{t}}states (tenant_id, stream_type, stream_id, version, state, updated_at) \
                 VALUES (?, ?, ?, ?, ?::jsonb, ?){}",
                d.upsert(
                    "tenant_id, stream_type, stream_id",
                    &[("version", None), ("state", None), ("updated_at", None)]
                )
            )),
            insert_processed: r(
                "INSERT INTO {t}processed_commands (\"key\", tenant_id, processed_at) VALUES (?, ?, ?)",
            ),
            processed: r("SELECT 1 AS found FROM {t}processed_commands WHERE \"key\" = ? AND tenant_id = ?"),
            insert_outbox: r(
                "INSERT INTO {t}outbox (id, topic, payload, headers, created_at, next_attempt_at, stream_key) \
                 VALUES (?, ?, ?::jsonb, ?::jsonb, ?, ?, ?)",
            ),
            insert_events: (1..=CACHED_INSERTS).map(|n| insert_events(d, n)).collect(),
            load_snapshot: r(&format!(
                "SELECT version, state::text AS state, taken_at FROM {{t}}snapshots WHERE {KEY}"
            )),
            update_snapshot: r(&format!(
                "UPDATE {{t}}snapshots SET state = ?::jsonb, taken_at = ?, version = ? WHERE {KEY} AND version < ?"
            )),
            insert_snapshot: r(
                "INSERT INTO {t}snapshots (state, taken_at, version, tenant_id, stream_type, stream_id) \
                 VALUES (?::jsonb, ?, ?, ?, ?, ?)",
            ),
            save_snapshot: d.save_snapshot_sql(),
            outbox_pending: r(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM {{t}}outbox WHERE status = 'pending' ORDER BY position LIMIT ?"
            )),
            outbox_published: r(
                "UPDATE {t}outbox SET status = 'published', published_at = ?, claimed_until = NULL WHERE id = ?",
            ),
            outbox_failed: r("UPDATE {t}outbox SET status = CASE WHEN attempts + 1 >= ? THEN 'dead' ELSE status END, \
                 attempts = attempts + 1, last_error = ?, claimed_until = NULL, next_attempt_at = ? WHERE id = ?"),
            outbox_counts: r("SELECT (SELECT count(*) FROM {t}outbox WHERE status = 'pending') AS pending, \
                 (SELECT count(*) FROM {t}outbox WHERE status = 'dead') AS dead"),
            outbox_dead: r(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM {{t}}outbox WHERE status = 'dead' ORDER BY position"
            )),
            outbox_claim: r(&if D::RETURNING {
                // PostgreSQL: `= ANY(ARRAY(..))` looks the claimed rows up by key; with
                // `IN (..)` it may hash-join against a scan of the whole outbox, which
                // keeps its published rows.
                let rows = if matches!(D::FLAVOR, crate::dialect::Flavor::Postgres) {
                    format!("position = ANY(ARRAY({}))", claim_outbox("position"))
                } else {
                    format!("position IN ({})", claim_outbox("position"))
                };
                format!(
                    "UPDATE {{t}}outbox SET claimed_by = ?, claimed_until = ? WHERE {rows}{}",
                    returning(OUTBOX_COLUMNS)
                )
            } else {
                claim_outbox(OUTBOX_COLUMNS)
            }),
            checkpoint: r("SELECT commit_id, position FROM {t}checkpoints WHERE projection = ? AND \"partition\" = ?"),
            checkpoint_insert: r(
                "INSERT INTO {t}checkpoints (projection, \"partition\", commit_id, position, updated_at) VALUES (?, ?, ?, ?, ?)",
            ),
            checkpoint_update: r("UPDATE {t}checkpoints SET commit_id = ?, position = ?, updated_at = ? \
                 WHERE projection = ? AND \"partition\" = ? AND commit_id = ? AND position = ?"),
            checkpoints_reset: r("DELETE FROM {t}checkpoints WHERE projection = ?"),
            lease_renew: r("UPDATE {t}leases SET owner = ?, expires_at = ? \
                 WHERE projection = ? AND \"partition\" = ? AND (owner = ? OR expires_at < ?)"),
            lease_insert: r("INSERT INTO {t}leases (owner, expires_at, projection, \"partition\") VALUES (?, ?, ?, ?)"),
            lease_release: r("DELETE FROM {t}leases WHERE projection = ? AND \"partition\" = ? AND owner = ?"),
            dead_insert: r(&format!(
                "INSERT INTO {{t}}dead_letters ({DEAD_LETTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){}",
                d.upsert("projection, event_id", &[("error", None), ("failed_at", None)])
            )),
            dead_list: r(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM {{t}}dead_letters WHERE projection = ? ORDER BY position"
            )),
            dead_remove: r("DELETE FROM {t}dead_letters WHERE projection = ? AND event_id = ?"),
            doc_get: r(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM {{t}}documents WHERE collection = ? AND id = ? AND tenant_id = ?"
            )),
            doc_put: r(&format!(
                "INSERT INTO {{t}}documents (collection, id, version, document, updated_at, tenant_id) \
                 VALUES (?, ?, 1, ?::jsonb, ?, ?){}{}",
                d.upsert(
                    "tenant_id, collection, id",
                    &[
                        ("version", Some(&d.render("{t}documents.version + 1"))),
                        ("document", None),
                        ("updated_at", None)
                    ]
                ),
                returning("version")
            )),
            doc_delete: r("DELETE FROM {t}documents WHERE collection = ? AND id = ? AND tenant_id = ?"),
            doc_clear: r("DELETE FROM {t}documents WHERE collection = ?"),
            doc_all: r(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM {{t}}documents WHERE collection = ? AND tenant_id = ? ORDER BY id"
            )),
            saga_load: r(&format!("SELECT {SAGA_COLUMNS} FROM {{t}}sagas WHERE {SAGA_KEY}")),
            saga_insert: r("INSERT INTO {t}sagas (status, version, wake_at, data, created_at, updated_at, tenant_id, \
                 saga_type, saga_id) VALUES (?, ?, ?, ?::json, ?, ?, ?, ?, ?)"),
            saga_update: r(&format!(
                "UPDATE {{t}}sagas SET status = ?, version = ?, wake_at = ?, data = ?::json, created_at = ?, \
                 updated_at = ? WHERE {SAGA_KEY} AND version = ?"
            )),
            saga_version: r(&format!("SELECT version FROM {{t}}sagas WHERE {SAGA_KEY}")),
            saga_due: r("SELECT tenant_id, saga_type, saga_id FROM {t}sagas WHERE wake_at <= ? \
                 ORDER BY wake_at, tenant_id, saga_type, saga_id LIMIT ?"),
            schedule: r(&format!(
                "INSERT INTO {{t}}scheduled_commands (id, command_type, payload, due_at, correlation_id, causation_id, \
                 tenant_id, principal, headers, attempts, last_error, created_at, dead) \
                 VALUES (?, ?, ?::json, ?, ?, ?, ?, ?, ?::json, ?, ?, ?, false){}",
                d.upsert(
                    "tenant_id, id",
                    &[
                        ("command_type", None),
                        ("payload", None),
                        ("due_at", None),
                        ("correlation_id", None),
                        ("causation_id", None),
                        ("principal", None),
                        ("headers", None),
                        ("attempts", None),
                        ("last_error", None),
                        ("created_at", None),
                        ("dead", None),
                        ("claimed_by", Some("NULL")),
                        ("claimed_until", Some("NULL")),
                    ]
                )
            )),
            schedule_delete: r("DELETE FROM {t}scheduled_commands WHERE id = ? AND tenant_id = ?"),
            schedule_fire: r("DELETE FROM {t}scheduled_commands WHERE id = ? AND tenant_id = ? AND causation_id = ?"),
            schedule_fire_uncaused: r(
                "DELETE FROM {t}scheduled_commands WHERE id = ? AND tenant_id = ? AND causation_id IS NULL",
            ),
            schedule_get: r(&format!(
                "SELECT {SCHEDULED_COLUMNS} FROM {{t}}scheduled_commands WHERE id = ? AND tenant_id = ?"
            )),
            // The caller's clock decides what is due and which claims ran out.
            schedule_claim: r(&if D::RETURNING {
                format!(
                    "UPDATE {{t}}scheduled_commands SET claimed_by = ?, claimed_until = ? WHERE (tenant_id, id) IN \
                     ({}){}",
                    claim_schedule("tenant_id, id"),
                    returning(SCHEDULED_COLUMNS)
                )
            } else {
                claim_schedule(SCHEDULED_COLUMNS)
            }),
            schedule_retry: r("UPDATE {t}scheduled_commands SET attempts = attempts + 1, last_error = ?, due_at = ?, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = ? AND tenant_id = ?"),
            schedule_kill: r("UPDATE {t}scheduled_commands SET attempts = attempts + 1, last_error = ?, dead = true, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = ? AND tenant_id = ?"),
            schedule_dead: r(&format!(
                "SELECT {SCHEDULED_COLUMNS} FROM {{t}}scheduled_commands WHERE dead = true ORDER BY created_at, id LIMIT ?"
            )),
            event_by_id: r(&format!(
                "SELECT {} AS commit_key, {EVENT_COLUMNS} FROM {{t}}events WHERE event_id = ? AND tenant_id = ?",
                if D::COMMIT_ORDER { "transaction_id" } else { "position" }
            )),
            insert_undo: r(&format!(
                "INSERT INTO {{t}}undo_log ({UNDO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )),
            // Within a generation the undo comes before its redo (`undo` > `redo`).
            undo_log: r(&format!(
                "SELECT {UNDO_COLUMNS} FROM {{t}}undo_log WHERE tenant_id = ? AND event_id = ? \
                 ORDER BY generation, action DESC"
            )),
            undo_log_stream: r(&format!(
                "SELECT {UNDO_COLUMNS} FROM {{t}}undo_log WHERE {KEY} ORDER BY recorded_at, event_id, generation, action DESC"
            )),
            jobs: crate::jobs::JobStatements::new(d),
        }
    }
}

/// A multi-row insert of `rows` events, returning their ids and positions where the
/// dialect can.
pub(crate) fn insert_events<D: Dialect>(d: &D, rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?::json, ?, ?, ?, ?::json, ?)";
    let values = vec![row; rows].join(", ");
    let returning = if D::RETURNING { " RETURNING event_id, position" } else { "" };
    d.render(&format!("INSERT INTO {{t}}events ({EVENT_INSERT_COLUMNS}) VALUES {values}{returning}"))
}

/// `sql` with `{in}` replaced by `n` copies of `item` (a placeholder, or a row of them),
/// rendered.
pub(crate) fn with_list<D: Dialect>(d: &D, sql: &str, item: &str, n: usize) -> String {
    d.render(&sql.replace("{in}", &vec![item; n.max(1)].join(", ")))
}
