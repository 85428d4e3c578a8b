use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who and what caused a message: carried by commands and events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Shared by every message of one business transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message that caused this one (for events: the command id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The tenant the message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Free-form headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Everything about a stored event except its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventHeader {
    /// Unique id of the event (UUIDv7).
    pub event_id: Uuid,
    /// The aggregate type of the stream.
    pub stream_type: String,
    /// The aggregate id of the stream.
    pub stream_id: String,
    /// Sequence in the stream, 1-based.
    pub version: u64,
    /// Global position assigned by the store at commit (0 before commit).
    pub position: u64,
    /// Stable type name.
    pub event_type: String,
    /// Payload shape version.
    pub schema_version: u32,
    /// When the event was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Correlation, causation, tenant, principal, headers.
    pub metadata: Metadata,
}

/// An event with its header, as handlers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<E> {
    /// Ids, stream, version, position, metadata.
    #[serde(flatten)]
    pub header: EventHeader,
    /// The event itself.
    pub payload: E,
}

impl<E> Envelope<E> {
    /// Pairs a header with a payload.
    pub fn new(header: EventHeader, payload: E) -> Self {
        Envelope { header, payload }
    }
}

impl<E> std::ops::Deref for Envelope<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.payload
    }
}

/// Where a reader of all events stands: events are read in `(commit, position)` order.
///
/// `position` is the global, unique position of an event. `commit` orders the writing
/// transactions so that a reader never skips an event that commits after it read a
/// later one: on PostgreSQL it is the writing transaction's id (read only below the
/// oldest transaction still running), on stores that commit one at a time it equals
/// `position`. Persist the whole cursor as a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Commit order key.
    pub commit: u64,
    /// Global position within that order.
    pub position: u64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor { commit: 0, position: 0 };
}

/// `position` where the commit key is the position, `commit.position` elsewhere: the
/// form a cursor takes in an HTTP header.
impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.commit == self.position {
            write!(f, "{}", self.position)
        } else {
            write!(f, "{}.{}", self.commit, self.position)
        }
    }
}

/// A cursor's text form was not `position` or `commit.position`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a position: write `position` or `commit.position` (numbers)")]
pub struct BadCursor(pub String);

impl std::str::FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(s.chars().take(64).collect());
        let number = |t: &str| t.parse::<u64>().map_err(|_| bad());
        match s.split_once('.') {
            None => number(s).map(|p| Cursor { commit: p, position: p }),
            Some((commit, position)) => Ok(Cursor { commit: number(commit)?, position: number(position)? }),
        }
    }
}
