//! The undo log's records (see [`crate::undo`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StreamKey;

/// What an undo log entry records: the event was undone, or an undo of it was redone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoAction {
    /// Its inverse command was sent ([`crate::Mediator::undo`]).
    Undo,
    /// Its redo command was sent after an undo ([`crate::Mediator::redo`]).
    Redo,
}

impl UndoAction {
    /// `undo` or `redo`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            UndoAction::Undo => "undo",
            UndoAction::Redo => "redo",
        }
    }

    /// The action stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "undo" => Some(UndoAction::Undo),
            "redo" => Some(UndoAction::Redo),
            _ => None,
        }
    }
}

impl std::fmt::Display for UndoAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the undo log: an undo, or a redo, of one event, written in the commit of
/// the command it sent ([`super::CommitBatch::undo_log`]).
///
/// The log is append-only and unique per (tenant, event, generation, action): the first
/// undo of an event is generation 1, its redo is generation 1 too, and an undo after that
/// redo is generation 2. A second writer of the same entry is refused by the store, so
/// two concurrent undos of one event cannot both commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoLogEntry {
    /// The event undone (or redone).
    pub event_id: Uuid,
    /// The event's stream; its tenant is the entry's tenant.
    pub stream: StreamKey,
    /// The event's stored type name.
    pub event_type: String,
    /// Which undo of the event this is, from 1.
    pub generation: u32,
    /// Undo or redo.
    pub action: UndoAction,
    /// The stored name of the command that was sent.
    pub command_type: String,
    /// The idempotency key it was sent under (derived from the event id, the action and
    /// the generation).
    pub command_key: Uuid,
    /// When, by the application's clock.
    pub recorded_at: DateTime<Utc>,
}
