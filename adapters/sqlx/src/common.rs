//! What both databases share: error mapping, tenant and number conversions, the
//! migration list, conflict reporting.

use std::collections::BTreeMap;

use cqrs_ddd::Error;
use cqrs_ddd::ports::{CommitBatch, Cursor, OutboxStatus, StreamKey};

/// Maps a sqlx error to the framework's store error.
pub(crate) fn store_err(e: sqlx::Error) -> Error {
    Error::store(e)
}

/// Whether a database error is a unique-key violation (a version already taken).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// The tenant column: `''` stands for "no tenant" so the unique key holds for it too.
pub(crate) fn tenant(key: &StreamKey) -> &str {
    key.tenant_id.as_deref().unwrap_or("")
}

pub(crate) fn tenant_from(column: String) -> Option<String> {
    (!column.is_empty()).then_some(column)
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::store(format!("{what} {v} does not fit the database's BIGINT")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::store(format!("stored {what} {v} is negative")))
}

pub(crate) fn to_i32(v: u32, what: &str) -> Result<i32, Error> {
    i32::try_from(v).map_err(|_| Error::store(format!("{what} {v} does not fit the database's INTEGER")))
}

/// Headers as a JSON column: `None` when empty, so the common case stores NULL.
pub(crate) fn headers_json(headers: &BTreeMap<String, String>) -> Option<String> {
    if headers.is_empty() { None } else { serde_json::to_string(headers).ok() }
}

pub(crate) fn headers_from(json: Option<String>) -> BTreeMap<String, String> {
    json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
}

/// State writes that no event append of the same stream guards: they need an explicit
/// version check in a transaction.
pub(crate) fn has_unguarded_states(batch: &CommitBatch) -> bool {
    batch
        .states
        .iter()
        .any(|s| !batch.appends.iter().any(|a| a.stream == s.stream && a.expected_version == s.expected_version))
}

/// A migration: its number and its SQL (`{schema}` is replaced by the schema name).
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

/// The conflict error for the first stream of the batch whose actual version differs.
pub(crate) fn conflict(stream: &StreamKey, expected: u64, actual: u64) -> Error {
    Error::Conflict { stream: stream.to_string(), expected, actual }
}

/// After a unique violation: the conflict of the first stream whose actual version
/// (`actuals`, in append order) differs from the expected one. When none differs any
/// more, the other writer's version is past the expected one all the same.
pub(crate) fn conflict_in(batch: &CommitBatch, actuals: &[u64]) -> Error {
    let mut pairs = batch.appends.iter().zip(actuals);
    if let Some((a, &actual)) = pairs.clone().find(|(a, actual)| **actual != a.expected_version) {
        return conflict(&a.stream, a.expected_version, actual);
    }
    match pairs.next() {
        Some((a, &actual)) => conflict(&a.stream, a.expected_version, actual.max(a.expected_version + 1)),
        None => Error::store("unique violation on a batch without events"),
    }
}

/// The `status` column of the outbox.
pub(crate) fn outbox_status(status: &str) -> OutboxStatus {
    match status {
        "published" => OutboxStatus::Published,
        "dead" => OutboxStatus::Dead,
        _ => OutboxStatus::Pending,
    }
}

/// Another worker moved a projection checkpoint first.
pub(crate) fn checkpoint_conflict(projection: &str, partition: u32, expected: Option<Cursor>) -> Error {
    Error::Conflict {
        stream: format!("checkpoint {projection}/{partition}"),
        expected: expected.map_or(0, |c| c.position),
        actual: 0,
    }
}
