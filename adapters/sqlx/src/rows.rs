//! Rows into the framework's records, by column name, checked: a stored value out of
//! range is an error naming the row, never clamped.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{
    Cursor, DeadLetter, Document, OutboxMessage, OutboxRecord, SagaKey, SagaRecord, ScheduledCommand, StoredEvent,
    StreamEvent, StreamKey, UndoAction, UndoLogEntry,
};
use cqrs_ddd::{Error, Metadata};
use uuid::Uuid;

use crate::common::{headers_from, outbox_status, row_headers, store_err, tenant_from, to_u64};
use crate::dialect::Dialect;
use crate::exec::SqlRow;

/// The columns of an events row that readers of all events select (with `commit_key`).
pub(crate) const EVENT_COLUMNS: &str = "position, tenant_id, stream_type, stream_id, version, event_id, event_type, \
    schema_version::int8 AS schema_version, payload::text AS payload, correlation_id, causation_id, principal, \
    headers::text AS headers, occurred_at";
/// The columns of an outbox row.
pub(crate) const OUTBOX_COLUMNS: &str = "position, id, topic, payload::text AS payload, headers::text AS headers, \
    created_at, status, attempts::int8 AS attempts, last_error";
/// The columns of a saga row.
pub(crate) const SAGA_COLUMNS: &str =
    "tenant_id, saga_type, saga_id, status, version, wake_at, data::text AS data, created_at, updated_at";
/// The columns of a scheduled command row.
pub(crate) const SCHEDULED_COLUMNS: &str = "id, command_type, payload::text AS payload, due_at, correlation_id, \
    causation_id, tenant_id, principal, headers::text AS headers, attempts::int8 AS attempts, last_error, created_at";
/// The columns of a document row.
pub(crate) const DOCUMENT_COLUMNS: &str = "id, version, document::text AS document";
/// The columns of an undo log row.
pub(crate) const UNDO_COLUMNS: &str = "tenant_id, event_id, generation, action, stream_type, stream_id, event_type, \
    command_type, command_key, recorded_at";
/// The columns of a dead letter row.
pub(crate) const DEAD_LETTER_COLUMNS: &str = "projection, event_id, position, commit_id, tenant_id, stream_type, stream_id, version, event_type, error, failed_at";

/// A row's columns, read by name the way the dialect stores them.
pub(crate) struct Cols<'r, D: Dialect> {
    row: &'r D::Row,
    dialect: PhantomData<D>,
}

impl<'r, D: Dialect> Cols<'r, D> {
    pub(crate) fn of(row: &'r D::Row) -> Self {
        Cols { row, dialect: PhantomData }
    }

    pub(crate) fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        if D::TEXT_UNCHECKED { self.row.text_unchecked(col) } else { self.row.text(col) }
    }

    pub(crate) fn text_opt(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        if D::TEXT_UNCHECKED { self.row.text_opt_unchecked(col) } else { self.row.text_opt(col) }
    }

    pub(crate) fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.row.int(col)
    }

    /// Column `i` of a statement whose columns the store wrote (its hot rows).
    pub(crate) fn int_at(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.row.int_at(i)
    }

    /// Column `i` of a statement whose columns the store wrote (its hot rows).
    pub(crate) fn text_at(&self, i: usize) -> Result<String, sqlx::Error> {
        if D::TEXT_UNCHECKED { self.row.text_at_unchecked(i) } else { self.row.text_at(i) }
    }

    pub(crate) fn int_opt(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.row.int_opt(col)
    }

    pub(crate) fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        self.row.uuid(col)
    }

    pub(crate) fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
        self.row.uuid_opt(col)
    }

    /// A time the database only keeps.
    pub(crate) fn instant(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.row.time(col)
    }

    /// A time the database compares ([`Dialect::MILLIS`]).
    pub(crate) fn at(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.at_opt(col)?.ok_or_else(|| sqlx::Error::Decode(format!("column `{col}` is NULL").into()))
    }

    pub(crate) fn at_opt(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        if !D::MILLIS {
            return self.row.time_opt(col);
        }
        self.row
            .int_opt(col)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| sqlx::Error::Decode(format!("stored time {ms} ms is out of range").into()))
            })
            .transpose()
    }

    /// A non-negative number (a version, a count), as a store error naming it otherwise.
    pub(crate) fn count(&self, col: &str, what: &str) -> Result<u64, Error> {
        to_u64(self.int(col).map_err(store_err)?, what)
    }
}

/// A stored number that must be at least `min`: never clamped.
fn at_least(v: i64, min: i64, what: &str) -> Result<u64, String> {
    if v < min { Err(format!("its {what} {v} is below {min}")) } else { Ok(v.unsigned_abs()) }
}

/// A stored schema version: within `u32`.
fn schema_version_of(v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("its schema version {v} is out of range"))
}

/// One row of `read_all`, checked: a negative or zero version, a negative position or
/// commit key, a schema version out of range, headers that are not a JSON object of
/// strings or a column that does not decode are [`Error::CorruptRow`] naming the stream,
/// the version as stored, and where the row sits (position and commit key), never a
/// clamped value.
pub(crate) fn event<D: Dialect>(row: &D::Row) -> Result<StoredEvent, Error> {
    let c = Cols::<D>::of(row);
    let unreadable = |what: &str, e: sqlx::Error| Error::CorruptRow {
        stream: "(unreadable)".to_owned(),
        version: 0,
        reason: format!("its {what} does not decode ({e})"),
        at: None,
    };
    let position = c.int("position").map_err(|e| unreadable("position", e))?;
    let commit = c.int("commit_key").map_err(|e| unreadable("commit key", e))?;
    // Only formatted for an error: decoding a good row allocates nothing more.
    let at = || format!("row at position {position}, commit {commit}");
    // Where a reader of all events can resume past this row, when its place is valid.
    let cursor = match (u64::try_from(commit), u64::try_from(position)) {
        (Ok(commit), Ok(position)) if position >= 1 => Some(Cursor { commit, position }),
        _ => None,
    };
    let stream = match (c.text("tenant_id"), c.text("stream_type"), c.text("stream_id")) {
        (Ok(t), Ok(st), Ok(id)) => StreamKey { tenant_id: tenant_from(t), stream_type: st, stream_id: id },
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            return Err(Error::CorruptRow {
                stream: "(unreadable)".to_owned(),
                version: 0,
                reason: format!("its stream does not decode ({e}); {}", at()),
                at: cursor,
            });
        }
    };
    let version = c.int("version").map_err(|e| Error::CorruptRow {
        stream: stream.to_string(),
        version: 0,
        reason: format!("its version does not decode ({e}); {}", at()),
        at: cursor,
    })?;
    let corrupt = |reason: String| Error::CorruptRow {
        stream: stream.to_string(),
        version,
        reason: format!("{reason}; {}", at()),
        at: cursor,
    };
    let column = |what: &str, e: sqlx::Error| corrupt(format!("its {what} does not decode ({e})"));
    let metadata = Metadata {
        correlation_id: c.uuid_opt("correlation_id").map_err(|e| column("correlation id", e))?,
        causation_id: c.uuid_opt("causation_id").map_err(|e| column("causation id", e))?,
        tenant_id: stream.tenant_id.clone(),
        principal: c.text_opt("principal").map_err(|e| column("principal", e))?,
        headers: headers_from(c.text_opt("headers").map_err(|e| column("headers", e))?).map_err(&corrupt)?,
    };
    Ok(StoredEvent {
        version: at_least(version, 1, "version").map_err(&corrupt)?,
        position: at_least(position, 1, "position").map_err(&corrupt)?,
        commit: at_least(commit, 0, "commit key").map_err(&corrupt)?,
        event_id: c.uuid("event_id").map_err(|e| column("event id", e))?,
        event_type: c.text("event_type").map_err(|e| column("event type", e))?,
        schema_version: schema_version_of(c.int("schema_version").map_err(|e| column("schema version", e))?)
            .map_err(&corrupt)?,
        payload: c.text("payload").map_err(|e| column("payload", e))?,
        metadata,
        occurred_at: c.instant("occurred_at").map_err(|e| column("time", e))?,
        stream,
    })
}

/// A page of `read_all`: the rows up to the first one that is corrupt. A corrupt first
/// row is the page's error, so a reader gets every good event before it and then an
/// [`Error::CorruptRow`] naming it (and where it sits), instead of no events at all.
pub(crate) fn page<D: Dialect>(rows: &[D::Row]) -> Result<Vec<StoredEvent>, Error> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        match event::<D>(row) {
            Ok(e) => events.push(e),
            Err(e) if events.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "read_all stops its page before a corrupt row");
                break;
            }
        }
    }
    Ok(events)
}

/// Checks the rows of one stream as `read_stream` yields them: versions run on from
/// `after + 1` without a gap, and numbers are in range. Errors are
/// [`Error::CorruptRow`] naming the stream and the version as stored.
pub(crate) struct StreamCheck {
    stream: StreamKey,
    next: u64,
}

impl StreamCheck {
    pub(crate) fn new(stream: &StreamKey, after: u64) -> Self {
        StreamCheck { stream: stream.clone(), next: after.saturating_add(1) }
    }

    /// The next row of the stream: columns `version, event_type, schema_version, payload`
    /// in this order (read by position: the rows of a load).
    pub(crate) fn row<D: Dialect>(&mut self, row: &D::Row) -> Result<StreamEvent, Error> {
        let c = Cols::<D>::of(row);
        let version = c.int_at(0).map_err(|e| Error::CorruptRow {
            stream: self.stream.to_string(),
            version: 0,
            reason: format!("its version does not decode ({e}); version {} was expected", self.next),
            at: None,
        })?;
        let corrupt = |reason: String| Error::CorruptRow { stream: self.stream.to_string(), version, reason, at: None };
        let column = |what: &str, e: sqlx::Error| corrupt(format!("its {what} does not decode ({e})"));
        let v = at_least(version, 1, "version").map_err(corrupt)?;
        if v != self.next {
            let what = if v < self.next { "does not increase" } else { "leaves a gap" };
            return Err(corrupt(format!("version {v} {what}: version {} was expected", self.next)));
        }
        let event = StreamEvent {
            version: v,
            event_type: c.text_at(1).map_err(|e| column("event type", e))?,
            schema_version: schema_version_of(c.int_at(2).map_err(|e| column("schema version", e))?)
                .map_err(corrupt)?,
            payload: c.text_at(3).map_err(|e| column("payload", e))?,
        };
        self.next = v.saturating_add(1);
        Ok(event)
    }
}

/// An outbox row ([`OUTBOX_COLUMNS`]).
pub(crate) fn outbox<D: Dialect>(row: &D::Row) -> Result<OutboxRecord, Error> {
    let c = Cols::<D>::of(row);
    let id = c.uuid("id").map_err(store_err)?;
    Ok(OutboxRecord {
        message: OutboxMessage {
            id,
            topic: c.text("topic").map_err(store_err)?,
            payload: c.text("payload").map_err(store_err)?,
            headers: row_headers(c.text_opt("headers").map_err(store_err)?, || format!("outbox message {id}"))?,
            created_at: c.instant("created_at").map_err(store_err)?,
        },
        status: outbox_status(&c.text("status").map_err(store_err)?),
        attempts: attempts(&c)?,
        last_error: c.text_opt("last_error").map_err(store_err)?,
    })
}

fn attempts<D: Dialect>(c: &Cols<'_, D>) -> Result<u32, Error> {
    let n = c.int("attempts").map_err(store_err)?;
    u32::try_from(n).map_err(|_| Error::store(format!("stored attempts {n} are out of range")))
}

/// The saga key of a row (`tenant_id, saga_type, saga_id`).
pub(crate) fn saga_key<D: Dialect>(row: &D::Row) -> Result<SagaKey, Error> {
    let c = Cols::<D>::of(row);
    Ok(SagaKey {
        tenant_id: tenant_from(c.text("tenant_id").map_err(store_err)?),
        saga_type: c.text("saga_type").map_err(store_err)?,
        saga_id: c.text("saga_id").map_err(store_err)?,
    })
}

/// A saga row ([`SAGA_COLUMNS`]).
pub(crate) fn saga<D: Dialect>(row: &D::Row) -> Result<SagaRecord, Error> {
    let c = Cols::<D>::of(row);
    Ok(SagaRecord {
        key: saga_key::<D>(row)?,
        status: c.text("status").map_err(store_err)?.parse()?,
        version: c.count("version", "saga version")?,
        wake_at: c.at_opt("wake_at").map_err(store_err)?,
        data: c.text("data").map_err(store_err)?,
        created_at: c.at("created_at").map_err(store_err)?,
        updated_at: c.at("updated_at").map_err(store_err)?,
    })
}

/// A scheduled command row ([`SCHEDULED_COLUMNS`]).
pub(crate) fn scheduled<D: Dialect>(row: &D::Row) -> Result<ScheduledCommand, Error> {
    let c = Cols::<D>::of(row);
    let id = c.uuid("id").map_err(store_err)?;
    Ok(ScheduledCommand {
        id,
        command_type: c.text("command_type").map_err(store_err)?,
        payload: c.text("payload").map_err(store_err)?,
        due_at: c.at("due_at").map_err(store_err)?,
        metadata: Metadata {
            correlation_id: c.uuid_opt("correlation_id").map_err(store_err)?,
            causation_id: c.uuid_opt("causation_id").map_err(store_err)?,
            tenant_id: tenant_from(c.text("tenant_id").map_err(store_err)?),
            principal: c.text_opt("principal").map_err(store_err)?,
            headers: row_headers(c.text_opt("headers").map_err(store_err)?, || format!("scheduled command {id}"))?,
        },
        attempts: attempts(&c)?,
        last_error: c.text_opt("last_error").map_err(store_err)?,
        created_at: c.at("created_at").map_err(store_err)?,
    })
}

/// An undo log row ([`UNDO_COLUMNS`]), checked: a generation out of range or an unknown
/// action is [`Error::CorruptRow`] naming the event.
pub(crate) fn undo_entry<D: Dialect>(row: &D::Row) -> Result<UndoLogEntry, Error> {
    let c = Cols::<D>::of(row);
    let event_id = c.uuid("event_id").map_err(store_err)?;
    let stream = StreamKey {
        tenant_id: tenant_from(c.text("tenant_id").map_err(store_err)?),
        stream_type: c.text("stream_type").map_err(store_err)?,
        stream_id: c.text("stream_id").map_err(store_err)?,
    };
    let corrupt = |reason: String| Error::CorruptRow {
        stream: stream.to_string(),
        version: 0,
        reason: format!("the undo log entry of event {event_id}: {reason}"),
        at: None,
    };
    let generation = c.int("generation").map_err(store_err)?;
    let generation = u32::try_from(generation)
        .ok()
        .filter(|g| *g >= 1)
        .ok_or_else(|| corrupt(format!("its generation {generation} is out of range")))?;
    let action = c.text("action").map_err(store_err)?;
    let action = UndoAction::parse(&action).ok_or_else(|| corrupt(format!("its action `{action}` is unknown")))?;
    Ok(UndoLogEntry {
        event_id,
        event_type: c.text("event_type").map_err(store_err)?,
        generation,
        action,
        command_type: c.text("command_type").map_err(store_err)?,
        command_key: c.uuid("command_key").map_err(store_err)?,
        recorded_at: c.instant("recorded_at").map_err(store_err)?,
        stream,
    })
}

/// A document row ([`DOCUMENT_COLUMNS`]).
pub(crate) fn document<D: Dialect>(row: &D::Row) -> Result<Document, Error> {
    let c = Cols::<D>::of(row);
    Ok(Document {
        id: c.text("id").map_err(store_err)?,
        version: c.count("version", "document version")?,
        json: c.text("document").map_err(store_err)?,
    })
}

/// A checkpoint row (`commit_id, position`).
pub(crate) fn cursor<D: Dialect>(row: &D::Row) -> Result<Cursor, Error> {
    let c = Cols::<D>::of(row);
    Ok(Cursor { commit: c.count("commit_id", "checkpoint")?, position: c.count("position", "checkpoint")? })
}

/// A dead letter row ([`DEAD_LETTER_COLUMNS`]).
pub(crate) fn dead_letter<D: Dialect>(row: &D::Row) -> Result<DeadLetter, Error> {
    let c = Cols::<D>::of(row);
    Ok(DeadLetter {
        projection: c.text("projection").map_err(store_err)?,
        event_id: c.uuid("event_id").map_err(store_err)?,
        position: c.count("position", "position")?,
        stream: StreamKey {
            tenant_id: tenant_from(c.text("tenant_id").map_err(store_err)?),
            stream_type: c.text("stream_type").map_err(store_err)?,
            stream_id: c.text("stream_id").map_err(store_err)?,
        },
        version: c.count("version", "version")?,
        event_type: c.text("event_type").map_err(store_err)?,
        error: c.text("error").map_err(store_err)?,
        failed_at: c.instant("failed_at").map_err(store_err)?,
        commit: c.count("commit_id", "commit")?,
    })
}
