//! Values every backend can store: what is refused before it is written, and how a
//! backend's own refusal becomes [`Error::Unstorable`].
//!
//! PostgreSQL's `jsonb` cannot hold the escape `\u0000` or a lone UTF-16 surrogate
//! (`\ud800`), its `json` takes both, SQLite takes both everywhere, and serde refuses lone
//! surrogates when it reads them back. So one JSON text would be stored in one column and
//! refused in another, or stored and then poison every reader. The rule is the same for
//! every JSON column on both databases: such JSON text is refused before the write, as is
//! a NUL character in any text (PostgreSQL's `text` cannot hold it). Text that is not
//! JSON at all is refused by the database at the write (PostgreSQL's types, SQLite's
//! triggers of migration 5, MariaDB's CHECK constraints) and reported the same way. Times
//! must lie in the years 1 to 9999 and schema versions fit an `i32` on every backend.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Utc};
use cqrs_ddd::Error;
use cqrs_ddd::ports::{CommitBatch, NewJob, SagaRecord, ScheduledCommand, Snapshot, StreamKey};
use serde_json::value::RawValue;

/// The prefix of the messages SQLite's JSON triggers raise (migration 5).
pub(crate) const TRIGGER_PREFIX: &str = "cqrs_ddd: ";

/// Why `json` cannot be stored alike on every backend, if it cannot.
fn json_problem(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    if !bytes.iter().any(|&b| b == b'\\' || b == 0) {
        return None;
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0 => return Some(format!("it contains a NUL character (at byte {i})")),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(bytes, i + 2) else {
                    i += 2;
                    continue;
                };
                match unit {
                    0 => {
                        return Some(format!(
                            "it contains the escape `\\u0000` (at byte {i}), which PostgreSQL's jsonb cannot store"
                        ));
                    }
                    0xD800..=0xDBFF => {
                        let low = (bytes.get(i + 6) == Some(&b'\\') && bytes.get(i + 7) == Some(&b'u'))
                            .then(|| hex4(bytes, i + 8))
                            .flatten();
                        if !matches!(low, Some(0xDC00..=0xDFFF)) {
                            return Some(format!("it contains a lone surrogate escape `\\u{unit:04x}` (at byte {i})"));
                        }
                        i += 12;
                    }
                    0xDC00..=0xDFFF => {
                        return Some(format!("it contains a lone surrogate escape `\\u{unit:04x}` (at byte {i})"));
                    }
                    _ => i += 6,
                }
            }
            // Any other escape: skip the escaped character (it may be a backslash).
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// Refuses JSON text no backend stores alike.
pub(crate) fn check_json(json: &str, what: impl FnOnce() -> String) -> Result<(), Error> {
    match json_problem(json) {
        Some(reason) => Err(Error::Unstorable { what: what(), reason }),
        None => Ok(()),
    }
}

/// Refuses text with a NUL character (PostgreSQL's `text` cannot hold one).
pub(crate) fn check_text(text: &str, what: impl FnOnce() -> String) -> Result<(), Error> {
    match text.find('\0') {
        Some(at) => {
            Err(Error::Unstorable { what: what(), reason: format!("it contains a NUL character (at byte {at})") })
        }
        None => Ok(()),
    }
}

/// Refuses a time outside the years 1 to 9999, the range every database stores
/// (MariaDB's `DATETIME` ends with year 9999).
pub(crate) fn check_time(t: DateTime<Utc>, what: impl FnOnce() -> String) -> Result<(), Error> {
    if (1..=9999).contains(&t.year()) {
        Ok(())
    } else {
        Err(Error::Unstorable { what: what(), reason: format!("its time {t} is outside the years 1 to 9999") })
    }
}

/// Refuses a schema version above `i32::MAX` (PostgreSQL keeps it in an `integer`).
fn check_schema_version(v: u32, what: impl FnOnce() -> String) -> Result<(), Error> {
    if i32::try_from(v).is_ok() {
        Ok(())
    } else {
        Err(Error::Unstorable { what: what(), reason: format!("its schema version {v} is above {}", i32::MAX) })
    }
}

fn check_key(key: &StreamKey, what: impl Fn() -> String) -> Result<(), Error> {
    check_text(&key.stream_type, &what)?;
    check_text(&key.stream_id, &what)?;
    key.tenant_id.as_deref().map_or(Ok(()), |t| check_text(t, &what))
}

fn check_headers<'a>(
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
    what: impl Fn() -> String,
) -> Result<(), Error> {
    for (k, v) in headers {
        check_text(k, || format!("header `{}` of {}", k.escape_default(), what()))?;
        check_text(v, || format!("header `{}` of {}", k.escape_default(), what()))?;
    }
    Ok(())
}

/// Refuses a batch holding a value some backend cannot store, naming it.
pub(crate) fn check_batch(batch: &CommitBatch) -> Result<(), Error> {
    for a in &batch.appends {
        for (version, e) in (a.expected_version + 1..).zip(&a.events) {
            let what = || format!("event `{}` at version {version} of stream `{}`", e.event_type, a.stream);
            check_key(&a.stream, what)?;
            check_text(e.event_type, what)?;
            check_schema_version(e.schema_version, what)?;
            check_time(e.occurred_at, what)?;
            check_json(&e.payload, what)?;
            check_headers(&e.metadata.headers, what)?;
            e.metadata.principal.as_deref().map_or(Ok(()), |p| check_text(p, what))?;
        }
    }
    for s in &batch.states {
        let what = || format!("the state of `{}` at version {}", s.stream, s.version);
        check_key(&s.stream, what)?;
        check_json(&s.state, what)?;
    }
    batch.jobs.iter().try_for_each(check_job)?;
    for o in &batch.outbox {
        let what = || format!("outbox message `{}` (topic `{}`)", o.id, o.topic.escape_default());
        check_text(&o.topic, what)?;
        check_time(o.created_at, what)?;
        check_json(&o.payload, what)?;
        check_headers(&o.headers, what)?;
    }
    for u in &batch.undo_log {
        let what = || format!("the undo log entry of event {}", u.event_id);
        check_key(&u.stream, what)?;
        check_text(&u.event_type, what)?;
        check_text(&u.command_type, what)?;
        check_time(u.recorded_at, what)?;
    }
    Ok(())
}

/// Refuses a snapshot some backend cannot store.
pub(crate) fn check_snapshot(s: &Snapshot) -> Result<(), Error> {
    let what = || format!("the snapshot of `{}` at version {}", s.stream, s.version);
    check_key(&s.stream, what)?;
    check_time(s.taken_at, what)?;
    check_json(&s.state, what)
}

/// Refuses a document some backend cannot store.
pub(crate) fn check_document(collection: &str, id: &str, json: &str) -> Result<(), Error> {
    let what = || format!("document `{}/{}`", collection.escape_default(), id.escape_default());
    check_text(collection, what)?;
    check_text(id, what)?;
    check_json(json, what)
}

/// Refuses a saga instance some backend cannot store.
pub(crate) fn check_saga(record: &SagaRecord) -> Result<(), Error> {
    let what = || format!("saga `{}`", record.key);
    check_text(&record.key.saga_type, what)?;
    check_text(&record.key.saga_id, what)?;
    record.key.tenant_id.as_deref().map_or(Ok(()), |t| check_text(t, what))?;
    for t in [Some(record.created_at), Some(record.updated_at), record.wake_at].into_iter().flatten() {
        check_time(t, what)?;
    }
    check_json(&record.data, what)
}

/// Refuses a scheduled command some backend cannot store.
pub(crate) fn check_scheduled(c: &ScheduledCommand) -> Result<(), Error> {
    let what = || format!("scheduled command `{}` (`{}`)", c.id, c.command_type.escape_default());
    check_text(&c.command_type, what)?;
    check_time(c.due_at, what)?;
    check_time(c.created_at, what)?;
    check_json(&c.payload, what)?;
    check_headers(&c.metadata.headers, what)?;
    for t in [c.metadata.tenant_id.as_deref(), c.metadata.principal.as_deref(), c.last_error.as_deref()]
        .into_iter()
        .flatten()
    {
        check_text(t, what)?;
    }
    Ok(())
}

/// Refuses a job some backend cannot store.
pub(crate) fn check_job(j: &NewJob) -> Result<(), Error> {
    let what = || format!("job `{}` (`{}`)", j.id, j.job_type.escape_default());
    check_text(&j.job_type, what)?;
    check_time(j.run_at, what)?;
    check_time(j.created_at, what)?;
    check_json(&j.payload, what)?;
    check_headers(&j.metadata.headers, what)?;
    for t in [j.metadata.tenant_id.as_deref(), j.metadata.principal.as_deref()].into_iter().flatten() {
        check_text(t, what)?;
    }
    Ok(())
}

/// Diagnostic text (an error message kept in a row) with NUL characters replaced, so
/// recording a failure never fails on its message.
pub(crate) fn lossy(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

/// What the database said when it refused a value it cannot store, if that is why it
/// failed: PostgreSQL's invalid text for a type (22P02, such as text that is not JSON),
/// untranslatable character (22P05, `\u0000` in `jsonb`), character not in repertoire
/// (22021, a NUL byte); SQLite's JSON triggers; MariaDB's data too long (22001), out of
/// range (22003, 22007) and the CHECK constraints of its JSON columns.
pub(crate) fn refusal(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else { return None };
    let refused = matches!(db.code().as_deref(), Some("22P02" | "22P05" | "22021" | "22001" | "22003" | "22007"))
        || db.message().starts_with(TRIGGER_PREFIX)
        || db.kind() == sqlx::error::ErrorKind::CheckViolation;
    if !refused {
        return None;
    }
    let message = db.message().trim_start_matches(TRIGGER_PREFIX);
    #[cfg(feature = "postgres")]
    if let Some(detail) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.detail()) {
        return Some(format!("{message} ({detail})"));
    }
    Some(message.to_owned())
}

/// A database error, as [`Error::Unstorable`] naming `what` when the database refused a
/// value, else as a store error.
pub(crate) fn write_err(e: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match refusal(&e) {
        Some(reason) => Error::Unstorable { what: what(), reason },
        None => Error::store(e),
    }
}

/// The database refused a value of `batch`: names the first JSON text of the batch that
/// does not parse, else the batch's streams.
pub(crate) fn refused_in_batch(batch: &CommitBatch, reason: String) -> Error {
    let not_json = |json: &str| serde_json::from_str::<&RawValue>(json).is_err();
    let mut what = None;
    'find: for a in &batch.appends {
        for (version, e) in (a.expected_version + 1..).zip(&a.events) {
            if not_json(&e.payload) {
                what = Some(format!("event `{}` at version {version} of stream `{}`", e.event_type, a.stream));
                break 'find;
            }
        }
    }
    let what = what
        .or_else(|| batch.states.iter().find(|s| not_json(&s.state)).map(|s| format!("the state of `{}`", s.stream)))
        .or_else(|| {
            batch
                .outbox
                .iter()
                .find(|o| not_json(&o.payload))
                .map(|o| format!("outbox message `{}` (topic `{}`)", o.id, o.topic.escape_default()))
        })
        .unwrap_or_else(|| {
            let streams: Vec<String> = batch.appends.iter().map(|a| a.stream.to_string()).collect();
            format!("a commit of streams [{}]", streams.join(", "))
        });
    Error::Unstorable { what, reason }
}

#[cfg(test)]
mod tests {
    use super::json_problem;

    #[test]
    fn escapes_every_backend_stores_pass() {
        for ok in [
            r#"{"a": "plain"}"#,
            r#"{"a": "\\u0000"}"#,
            r#"{"a": "\\\\u0000"}"#,
            r#"{"a": "\u00e9 \ud83d\ude00 \n \" \\"}"#,
            r#"{"a": "\u0001"}"#,
        ] {
            assert_eq!(json_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn nul_escapes_nul_bytes_and_lone_surrogates_are_refused() {
        for bad in [
            r#"{"a": "\u0000"}"#,
            r#"{"a": "x\\\u0000"}"#,
            "{\"a\": \"\0\"}",
            r#"{"a": "\ud800"}"#,
            r#"{"a": "\ud800\u0041"}"#,
            r#"{"a": "\udc00"}"#,
            r#"{"a": "\ud83d"}"#,
        ] {
            assert!(json_problem(bad).is_some(), "{bad}");
        }
    }
}
