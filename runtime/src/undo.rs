//! Undo and redo: an event type names the command that undoes it, and
//! [`Mediator::undo`] sends that command for one stored event, once.
//!
//! The inverse is declared per event type, and computed from the event: an event carries
//! what its inverse needs (the grant that a revocation takes back, the state a change
//! replaced). `#[event(undo = RevokeGrant)]` registers it, and
//! [`Undo`] computes it:
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::undo::{Undo, UndoError};
//!
//! #[event(undo = Revoke)]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Granted { pub role: String }
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Revoked { pub role: String }
//!
//! impl Undo for Granted {
//!     type Command = Revoke;
//!     // `None`: this one cannot be undone (a business rule).
//!     fn undo(granted: &Envelope<Self>) -> Option<Revoke> {
//!         (granted.role != "owner").then(|| Revoke { user: granted.header.stream_id.clone(), role: granted.role.clone() })
//!     }
//! }
//!
//! # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//! #[aggregate(id = String, events(Granted, Revoked), error = Never)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct User { roles: Vec<String> }
//!
//! #[aggregate]
//! impl User {
//!     #[handle(create_if_missing)]
//!     fn grant(&self, cmd: &Grant) -> Result<Vec<UserEvent>, Never> { Ok(vec![Granted { role: cmd.role.clone() }.into()]) }
//!     #[handle]
//!     fn revoke(&self, cmd: &Revoke) -> Result<Vec<UserEvent>, Never> { Ok(vec![Revoked { role: cmd.role.clone() }.into()]) }
//!     #[apply]
//!     fn granted(&mut self, e: &Granted) { self.roles.push(e.role.clone()) }
//!     #[apply]
//!     fn revoked(&mut self, e: &Revoked) { self.roles.retain(|r| *r != e.role) }
//! }
//!
//! #[command(aggregate = User)]
//! pub struct Grant { #[id] pub user: String, pub role: String }
//! #[command(aggregate = User)]
//! pub struct Revoke { #[id] pub user: String, pub role: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! let app = App::builder().build()?;
//! app.send(Grant { user: "ada".into(), role: "admin".into() }).await?;
//! let granted = app.event_store().latest(Default::default(), 1).await?.remove(0);
//!
//! let undone = app.undo(granted.event_id).await?;       // sends `Revoke`, logs it
//! assert_eq!((undone.command, undone.generation), ("Revoke", 1));
//! assert!(app.load::<User>(&"ada".to_owned()).await?.state.roles.is_empty());
//!
//! let again = app.undo(granted.event_id).await.unwrap_err();
//! assert!(matches!(again, Error::Undo(UndoError::AlreadyUndone { generation: 1, .. })));
//! # Ok(()) }
//! ```
//!
//! # What `undo` checks, and what it writes
//!
//! [`Mediator::undo`] works in the tenant of the current [`RequestContext`]: an event
//! of another tenant is not found. In order, it refuses with
//!
//! - [`Error::Missing`]: no event has that id (in this tenant);
//! - [`UndoError::NotUndoable`]: its type declares no `undo = ..`;
//! - [`UndoError::AlreadyUndone`]: it is undone and not redone since;
//! - [`UndoError::Expired`]: it is older than its undo window: `undo_within = "1h"` on
//!   the event, else [`AppBuilder::undo_window`](crate::AppBuilder::undo_window), measured
//!   from the event's `occurred_at` on the application's clock
//!   ([`AppBuilder::clock`](crate::AppBuilder::clock)); no window, no limit;
//! - [`UndoError::Refused`]: [`Undo::undo`] answered `None` for this event.
//!
//! Otherwise it sends the inverse command as a root command, under an idempotency key
//! derived from the event id, the action and the generation, with the headers of
//! [`headers`] (`undo-of`: the event id, `undo-action`, `undo-generation`) added to its
//! metadata, so its events say what they undid; the store writes the undo log entry
//! ([`UndoLogEntry`]) in the same commit as the command's events: an undo
//! is logged if and only if it was applied. A failing inverse command writes neither. Two
//! undos of one event at once: one commits, the other is refused with
//! [`UndoError::AlreadyUndone`] (its entry, or its key, is taken) and writes nothing.
//!
//! # Redo
//!
//! `#[event(undo = Revoke, redo = Grant)]` with an [`Redo`] impl makes an undone event
//! redoable: [`Mediator::redo`] sends the redo command built from the original event,
//! once per undo ([`UndoError::NotUndone`] when the event is not undone now,
//! [`UndoError::NoRedo`] when no redo is declared), and logs it. After a redo the event
//! can be undone again: that undo is the next generation, with a key of its own. Redo has
//! no time window: it takes back an undo.
//!
//! [`Mediator::undo_log`] lists an event's entries and [`Mediator::undo_log_of_stream`]
//! those of a stream's events (oldest first), for operators.
//!
//! # Stores
//!
//! [`MemoryStore`](crate::MemoryStore) and the SQL stores of `cqrs-ddd-sqlx` keep the undo
//! log (table `undo_log`, unique per tenant, event, generation and action). A store that
//! does not implement [`EventStore::undo_log`] makes `undo` fail with
//! [`Error::NotWired`] before anything is sent.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::cqrs::{CommandHandler, Mediator};
use crate::domain::{Envelope, Event, Metadata};
use crate::error::{Error, Result};
use crate::ports::{EventStore, StoredEvent, StreamKey, UndoAction, UndoLogEntry, check_tenant};

/// How an event of this type is undone: the command that takes it back, built from the
/// event. Declared with `#[event(undo = TheCommand)]`, which checks at compile time that
/// the command has a handler.
#[diagnostic::on_unimplemented(
    message = "event `{Self}` names an undo command but does not implement `Undo`",
    label = "`#[event(undo = ..)]` needs `impl Undo for {Self}`",
    note = "write `impl cqrs_ddd::undo::Undo for {Self} {{ type Command = TheCommand; fn undo(event: &Envelope<Self>) -> Option<TheCommand> {{ .. }} }}`"
)]
pub trait Undo: Event {
    /// The command that undoes the event.
    type Command: CommandHandler;
    /// The command that undoes `event`; `None` when this event cannot be undone (a
    /// business rule), which [`Mediator::undo`] reports as [`UndoError::Refused`].
    fn undo(event: &Envelope<Self>) -> Option<Self::Command>;
}

/// How an undone event of this type is done again: the command that redoes it, built from
/// the original event. Declared with `#[event(undo = .., redo = TheCommand)]`.
#[diagnostic::on_unimplemented(
    message = "event `{Self}` names a redo command but does not implement `Redo`",
    label = "`#[event(redo = ..)]` needs `impl Redo for {Self}`",
    note = "write `impl cqrs_ddd::undo::Redo for {Self} {{ type Command = TheCommand; fn redo(event: &Envelope<Self>) -> Option<TheCommand> {{ .. }} }}`"
)]
pub trait Redo: Event {
    /// The command that redoes the event.
    type Command: CommandHandler;
    /// The command that redoes `event`; `None` when it cannot be redone now.
    fn redo(event: &Envelope<Self>) -> Option<Self::Command>;
}

/// Why an undo or a redo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UndoError {
    /// The event's type declares no undo.
    #[error("events of type `{event_type}` cannot be undone: the type declares no `#[event(undo = ..)]`")]
    NotUndoable {
        /// The stored type name.
        event_type: String,
    },
    /// [`Undo::undo`] (or [`Redo::redo`]) answered `None` for this event.
    #[error("event {event_id} (`{event_type}`) refuses {action}: its type built no command for it")]
    Refused {
        /// The event.
        event_id: Uuid,
        /// Its stored type name.
        event_type: String,
        /// Undo or redo.
        action: UndoAction,
    },
    /// The event is undone already (and not redone since).
    #[error("event {event_id} is already undone (undo {generation})")]
    AlreadyUndone {
        /// The event.
        event_id: Uuid,
        /// The undo that took it back.
        generation: u32,
    },
    /// The undo is redone already.
    #[error("undo {generation} of event {event_id} is already redone")]
    AlreadyRedone {
        /// The event.
        event_id: Uuid,
        /// The undo that was redone.
        generation: u32,
    },
    /// A redo of an event that is not undone now.
    #[error("event {event_id} is not undone, so there is nothing to redo")]
    NotUndone {
        /// The event.
        event_id: Uuid,
    },
    /// A redo of an event whose type declares none.
    #[error("undone events of type `{event_type}` cannot be redone: the type declares no `redo = ..`")]
    NoRedo {
        /// The stored type name.
        event_type: String,
    },
    /// The event is older than its undo window.
    #[error("event {event_id} occurred at {occurred_at}, more than {window:?} ago: too old to undo")]
    Expired {
        /// The event.
        event_id: Uuid,
        /// When it occurred.
        occurred_at: chrono::DateTime<chrono::Utc>,
        /// The window.
        window: Duration,
    },
}

impl UndoError {
    /// The refusal of a log entry that is written already (stores report it so).
    pub fn already(entry: &UndoLogEntry) -> Self {
        match entry.action {
            UndoAction::Undo => UndoError::AlreadyUndone { event_id: entry.event_id, generation: entry.generation },
            UndoAction::Redo => UndoError::AlreadyRedone { event_id: entry.event_id, generation: entry.generation },
        }
    }
}

impl From<UndoError> for Error {
    fn from(e: UndoError) -> Self {
        Error::Undo(e)
    }
}

/// What [`Mediator::undo`] and [`Mediator::redo`] sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undone {
    /// The event undone or redone.
    pub event_id: Uuid,
    /// Undo or redo.
    pub action: UndoAction,
    /// Which undo of the event, from 1 (a redo has the generation of the undo it redoes).
    pub generation: u32,
    /// The stored name of the command sent.
    pub command: &'static str,
    /// The idempotency key it was committed under.
    pub key: Uuid,
}

/// A command built from an event, ready to be sent with its log entry (what the
/// registration of `#[event(undo = ..)]` builds).
#[doc(hidden)]
pub struct Inverse {
    command: &'static str,
    send: Box<dyn FnOnce(Mediator, Metadata, UndoLogEntry) -> BoxFuture<'static, Result<()>> + Send>,
}

impl Inverse {
    fn of<C: CommandHandler>(cmd: C) -> Self {
        Inverse {
            command: C::NAME,
            send: Box::new(move |mediator, metadata, entry| {
                Box::pin(async move {
                    let key = entry.command_key;
                    mediator.send_logging_undo(cmd, Some(metadata), Some(key), Some(Box::new(entry))).await.map(drop)
                })
            }),
        }
    }
}

/// The headers an undo (or redo) adds to the metadata of the command it sends, so that
/// the command's events say what they undid.
pub mod headers {
    /// The id of the event undone or redone.
    pub const UNDO_OF: &str = "undo-of";
    /// `undo` or `redo`.
    pub const UNDO_ACTION: &str = "undo-action";
    /// The generation of the undo.
    pub const UNDO_GENERATION: &str = "undo-generation";
}

/// Builds the command of one action from a stored event (erased [`Undo::undo`] or
/// [`Redo::redo`]).
#[doc(hidden)]
pub type InverseFn = fn(&StoredEvent) -> Result<Option<Inverse>>;

/// [`Undo::undo`] of a stored `E`, decoded (and upcast) first.
#[doc(hidden)]
pub fn undo_of<E: Undo>(stored: &StoredEvent) -> Result<Option<Inverse>> {
    let event = crate::__private::decode_envelope::<E>(stored)?;
    Ok(E::undo(&event).map(Inverse::of))
}

/// [`Redo::redo`] of a stored `E`, decoded (and upcast) first.
#[doc(hidden)]
pub fn redo_of<E: Redo>(stored: &StoredEvent) -> Result<Option<Inverse>> {
    let event = crate::__private::decode_envelope::<E>(stored)?;
    Ok(E::redo(&event).map(Inverse::of))
}

/// What `App::build` installs: the undoable event types and the default window.
pub(crate) struct UndoRuntime {
    pub(crate) window: Option<Duration>,
    pub(crate) events: HashMap<&'static str, &'static crate::registry::UndoRegistration>,
}

impl UndoRuntime {
    fn of(mediator: &Mediator) -> Option<&UndoRuntime> {
        mediator.extension::<UndoRuntime>()
    }
}

/// The namespace of undo idempotency keys (a UUIDv5 of `event id/action/generation`).
const UNDO_KEYS: Uuid = Uuid::from_u128(0x6371_7273_6464_6464_8000_0000_756e_646f);

/// The idempotency key of one undo or redo of an event.
pub fn undo_key(event_id: Uuid, action: UndoAction, generation: u32) -> Uuid {
    Uuid::new_v5(&UNDO_KEYS, format!("{event_id}/{action}/{generation}").as_bytes())
}

/// Where an event stands in its undo log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Never undone, or undone and redone `generation` times.
    Done { generation: u32 },
    /// Undone by undo `generation`, not redone.
    Undone { generation: u32 },
}

fn standing(log: &[UndoLogEntry]) -> Standing {
    let last = log.iter().map(|e| (e.generation, e.action)).max();
    match last {
        None => Standing::Done { generation: 0 },
        Some((generation, UndoAction::Undo)) => Standing::Undone { generation },
        Some((generation, UndoAction::Redo)) => Standing::Done { generation },
    }
}

impl Mediator {
    /// Undoes event `event_id` of the current tenant: sends the command its type's
    /// [`Undo`] builds from it, and logs the undo in the same commit. Refused when the
    /// event is undone already, too old, or not undoable; see [`crate::undo`].
    pub async fn undo(&self, event_id: Uuid) -> Result<Undone> {
        self.reverse(event_id, UndoAction::Undo).await
    }

    /// Redoes the last undo of event `event_id` of the current tenant: sends the command
    /// its type's [`Redo`] builds from it, and logs the redo in the same commit; after
    /// it, the event can be undone again. See [`crate::undo`].
    pub async fn redo(&self, event_id: Uuid) -> Result<Undone> {
        self.reverse(event_id, UndoAction::Redo).await
    }

    /// The undo log of event `event_id` of the current tenant, oldest first.
    pub async fn undo_log(&self, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        let tenant = RequestContext::current().and_then(|r| r.tenant_id);
        self.store().undo_log(tenant.as_deref(), event_id).await
    }

    /// The undo log of the events of one stream of the current tenant (`stream_type`,
    /// `stream_id`), oldest first.
    pub async fn undo_log_of_stream(&self, stream_type: &str, stream_id: &str) -> Result<Vec<UndoLogEntry>> {
        let tenant = RequestContext::current().and_then(|r| r.tenant_id);
        self.store().undo_log_of_stream(&StreamKey::new(stream_type, stream_id).with_tenant(tenant)).await
    }

    async fn reverse(&self, event_id: Uuid, action: UndoAction) -> Result<Undone> {
        let tenant = RequestContext::current().and_then(|r| r.tenant_id);
        check_tenant(tenant.as_deref())?;
        let store: &dyn EventStore = self.store();
        let log = store.undo_log(tenant.as_deref(), event_id).await?;
        let event = store
            .event(tenant.as_deref(), event_id)
            .await?
            .ok_or_else(|| Error::Missing { what: format!("event {event_id}") })?;
        let registration = UndoRuntime::of(self)
            .and_then(|u| u.events.get(event.event_type.as_str()))
            .ok_or_else(|| UndoError::NotUndoable { event_type: event.event_type.clone() })?;
        let (generation, build) = match (action, standing(&log)) {
            (UndoAction::Undo, Standing::Undone { generation }) => {
                return Err(UndoError::AlreadyUndone { event_id, generation }.into());
            }
            (UndoAction::Undo, Standing::Done { generation }) => {
                self.check_window(&event, registration)?;
                (generation.saturating_add(1), registration.undo)
            }
            (UndoAction::Redo, Standing::Done { .. }) => return Err(UndoError::NotUndone { event_id }.into()),
            (UndoAction::Redo, Standing::Undone { generation }) => {
                let redo =
                    registration.redo.ok_or_else(|| UndoError::NoRedo { event_type: event.event_type.clone() })?;
                (generation, redo)
            }
        };
        let inverse = build(&event)?.ok_or_else(|| UndoError::Refused {
            event_id,
            event_type: event.event_type.clone(),
            action,
        })?;
        let key = undo_key(event_id, action, generation);
        let entry = UndoLogEntry {
            event_id,
            stream: event.stream.clone(),
            event_type: event.event_type.clone(),
            generation,
            action,
            command_type: inverse.command.to_owned(),
            command_key: key,
            recorded_at: self.clock().now(),
        };
        // The caller's headers (trace context and the like), and what this undoes.
        let mut request_headers = RequestContext::current().map(|r| r.headers).unwrap_or_default();
        request_headers.insert(headers::UNDO_OF.to_owned(), event_id.to_string());
        request_headers.insert(headers::UNDO_ACTION.to_owned(), action.to_string());
        request_headers.insert(headers::UNDO_GENERATION.to_owned(), generation.to_string());
        let metadata = Metadata { headers: request_headers, ..Metadata::default() };
        let command = inverse.command;
        let refused = match action {
            UndoAction::Undo => UndoError::AlreadyUndone { event_id, generation },
            UndoAction::Redo => UndoError::AlreadyRedone { event_id, generation },
        };
        match (inverse.send)(self.clone(), metadata, entry).await {
            Ok(()) => {
                tracing::info!(event = %event_id, %action, generation, command, "undo log: command sent and logged");
                Ok(Undone { event_id, action, generation, command, key })
            }
            // Another undo of the same generation committed first, under the same key.
            Err(Error::AlreadyProcessed { key: taken }) if taken == key => Err(refused.into()),
            // The command failed: when another undo of the same generation committed
            // meanwhile (the command then met the state it left), say so.
            Err(e) => {
                let log = store.undo_log(tenant.as_deref(), event_id).await.unwrap_or_default();
                if log.iter().any(|l| (l.generation, l.action) == (generation, action)) {
                    return Err(refused.into());
                }
                Err(e)
            }
        }
    }

    fn check_window(&self, event: &StoredEvent, registration: &crate::registry::UndoRegistration) -> Result<()> {
        let window =
            registration.within_ms.map(Duration::from_millis).or_else(|| UndoRuntime::of(self).and_then(|u| u.window));
        let Some(window) = window else { return Ok(()) };
        let age = self.clock().now().signed_duration_since(event.occurred_at);
        let too_old = chrono::Duration::from_std(window).is_ok_and(|w| age > w);
        if too_old {
            return Err(UndoError::Expired { event_id: event.event_id, occurred_at: event.occurred_at, window }.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u32, action: UndoAction) -> UndoLogEntry {
        UndoLogEntry {
            event_id: Uuid::nil(),
            stream: StreamKey::new("A", "1"),
            event_type: "E".to_owned(),
            generation,
            action,
            command_type: "C".to_owned(),
            command_key: Uuid::nil(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_last_entry_says_where_an_event_stands() {
        use UndoAction::{Redo, Undo};
        assert_eq!(standing(&[]), Standing::Done { generation: 0 });
        assert_eq!(standing(&[entry(1, Undo)]), Standing::Undone { generation: 1 });
        assert_eq!(standing(&[entry(1, Undo), entry(1, Redo)]), Standing::Done { generation: 1 });
        assert_eq!(standing(&[entry(1, Redo), entry(2, Undo), entry(1, Undo)]), Standing::Undone { generation: 2 });
    }

    #[test]
    fn every_action_and_generation_has_its_own_key() {
        let id = Uuid::now_v7();
        let keys = [
            undo_key(id, UndoAction::Undo, 1),
            undo_key(id, UndoAction::Redo, 1),
            undo_key(id, UndoAction::Undo, 2),
            undo_key(Uuid::now_v7(), UndoAction::Undo, 1),
        ];
        assert_eq!(keys[0], undo_key(id, UndoAction::Undo, 1));
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
