//! Deadlines of aggregates: a `#[handle]` method schedules a deadline that fires the
//! aggregate's `#[deadline]` method later, unless a later command cancels it first
//! (Axon's deadline handlers).
//!
//! ```rust,standalone_crate
//! use std::time::Duration;
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::deadline::Deadlines;
//! use cqrs_ddd::testing::AggregateFixture;
//!
//! #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Lent { pub member: String }
//! #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Returned;
//! #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Reminded;
//!
//! /// What the reminder deadline carries when it fires.
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct ReminderDue { pub member: String }
//!
//! # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//! #[aggregate(id = String, events(Lent, Returned, Reminded), error = Never)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Loan { out: bool }
//!
//! #[aggregate]
//! impl Loan {
//!     #[handle(create)]
//!     fn lend(&self, cmd: &Lend, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, Never> {
//!         deadlines.schedule(Duration::from_secs(14 * 86_400), ReminderDue { member: cmd.member.clone() });
//!         Ok(vec![Lent { member: cmd.member.clone() }.into()])
//!     }
//!     #[handle]
//!     fn give_back(&self, _cmd: &GiveBack, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, Never> {
//!         deadlines.cancel::<ReminderDue>();
//!         Ok(vec![Returned.into()])
//!     }
//!     /// Fired 14 days after the loan, unless the book came back first.
//!     #[deadline]
//!     fn remind(&self, _due: &ReminderDue) -> Result<Vec<LoanEvent>, Never> {
//!         Ok(if self.out { vec![Reminded.into()] } else { vec![] })
//!     }
//!     #[apply] fn lent(&mut self, _: &Lent) { self.out = true }
//!     #[apply] fn returned(&mut self, _: &Returned) { self.out = false }
//!     #[apply] fn reminded(&mut self, _: &Reminded) {}
//! }
//!
//! #[command(aggregate = Loan)] pub struct Lend { #[id] pub loan: String, pub member: String }
//! #[command(aggregate = Loan)] pub struct GiveBack { #[id] pub loan: String }
//!
//! let mut loan = AggregateFixture::<Loan>::new();
//! loan.when(Lend { loan: "l-1".into(), member: "ada".into() }).then_deadline_scheduled("remind");
//! loan.advance(Duration::from_secs(14 * 86_400)).then_events(&["Reminded"]);
//! ```
//!
//! # The rules
//!
//! - A `#[handle]` method takes `&mut Deadlines<Self>` after its command to schedule
//!   ([`Deadlines::schedule`], [`Deadlines::schedule_at`]) or cancel
//!   ([`Deadlines::cancel`]) deadlines; a `#[deadline]` method may take it too, to
//!   schedule the next one.
//! - A deadline is named by its `#[deadline]` method (or `#[deadline(name = "..")]`) and
//!   carries the value the method takes (its payload type: one per deadline). Scheduling
//!   a payload the aggregate has no `#[deadline]` method for is a compile error.
//! - An aggregate has at most one deadline of each name: its id is derived from the
//!   aggregate's stream and the name, so scheduling it again replaces it and cancelling
//!   names it. Ids are per tenant, like every scheduled command.
//! - Deadlines are written with the command's events, in the same transaction
//!   ([`crate::ports::CommitBatch::deadlines`]): a command that fails, rolls back or
//!   conflicts schedules and cancels nothing. They wait in the event store's schedule
//!   ([`crate::ports::EventStore::schedule`], also the application's default schedule
//!   store), so they survive restarts, and a [`crate::scheduling::Scheduler`] (or the
//!   worker host) fires them. An application given another schedule store
//!   (`AppBuilder::schedule_store`) must give it the event store's (`sagas_on(db)` with
//!   the event store's database does), else its scheduler never sees them; an event
//!   store that keeps no schedule refuses a command that schedules a deadline.
//! - A fired deadline runs like a command on the aggregate, in its own unit of work
//!   (conflicts are decided again under the application's retry policy): the
//!   `#[deadline]` method decides, its events are applied and committed, and the
//!   deadline is removed in that same commit. A deadline cancelled or scheduled again
//!   in the meantime does nothing; neither does one whose aggregate has no events. A
//!   domain error from the method is logged and the deadline is dropped (it would fail
//!   the same way again).
//! - A deadline is fired with the correlation id, tenant and principal of the command
//!   that scheduled it; that command's id is its causation id.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cqrs::{Command, CommandContext, CommandHandler, Mediator};
use crate::domain::Aggregate;
use crate::error::{Error, Result};
use crate::ports::{ScheduledCommand, StreamKey};
use crate::scheduling::Completion;

/// The command type of scheduled aggregate deadlines (the runtime fires them itself).
pub(crate) const AGGREGATE_DEADLINE: &str = "cqrs_ddd.aggregate_deadline";

/// An aggregate's handler of deadlines that carry a `P`: implemented by a `#[deadline]`
/// method.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no `#[deadline]` method taking what this deadline carries",
    label = "no `#[deadline]` method of `{Self}` takes this type",
    note = "add `#[deadline] fn on_it(&self, due: &TheType) -> Result<Vec<..>, ..>` to the aggregate's `#[aggregate] impl` block"
)]
pub trait OnDeadline<P: Send + Sync + 'static>: Aggregate {
    /// The deadline's name (the method's, unless `#[deadline(name = "..")]`): with the
    /// aggregate's stream, its identity.
    const NAME: &'static str;

    /// Decides what the fired deadline causes, like a `#[handle]` method.
    fn on_deadline(&self, due: &P, deadlines: &mut Deadlines<Self>) -> Result<Vec<Self::Event>, Self::Error>;

    /// How the payload is stored and read back.
    #[doc(hidden)]
    fn codec() -> DeadlineCodec<P>;

    /// The payload as stored (JSON that reads back).
    #[doc(hidden)]
    fn encode_due(due: &P) -> serde_json::Result<String> {
        (Self::codec().encode)(due)
    }

    /// The payload read back.
    #[doc(hidden)]
    fn decode_due(json: &str) -> serde_json::Result<P> {
        (Self::codec().decode)(json)
    }
}

/// How a deadline's payload is stored and read back.
#[doc(hidden)]
pub struct DeadlineCodec<P> {
    /// As JSON that reads back.
    pub encode: fn(&P) -> serde_json::Result<String>,
    /// Read back.
    pub decode: fn(&str) -> serde_json::Result<P>,
}

impl<P: DeadlinePayload> DeadlineCodec<P> {
    /// The codec of a payload type with serde.
    pub fn of() -> Self {
        DeadlineCodec { encode: P::encode, decode: P::decode }
    }
}

/// What a deadline carries: stored as JSON until it fires.
#[diagnostic::on_unimplemented(
    message = "deadline payload `{Self}` must be `Serialize` and `Deserialize`",
    label = "a deadline is stored as JSON until it fires",
    note = "add `#[derive(Serialize, Deserialize)]` to `{Self}`"
)]
pub trait DeadlinePayload: Sized + Send + Sync + 'static {
    /// As JSON that reads back.
    fn encode(&self) -> serde_json::Result<String>;
    /// Read back.
    fn decode(json: &str) -> serde_json::Result<Self>;
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> DeadlinePayload for T {
    fn encode(&self) -> serde_json::Result<String> {
        crate::domain::encode_checked(self)
    }

    fn decode(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }
}

/// A change a decision made to its aggregate's deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineChange {
    /// The deadline `name` fires at `at` with `payload` (JSON text).
    Schedule {
        /// The deadline's name.
        name: &'static str,
        /// When it fires.
        at: DateTime<Utc>,
        /// What it carries, as JSON text.
        payload: String,
    },
    /// The deadline `name` is cancelled.
    Cancel {
        /// The deadline's name.
        name: &'static str,
    },
}

impl DeadlineChange {
    /// The deadline it changes.
    pub fn name(&self) -> &'static str {
        match self {
            DeadlineChange::Schedule { name, .. } | DeadlineChange::Cancel { name } => name,
        }
    }
}

/// The deadlines of one aggregate, as a decision sees them: schedule and cancel. Handed
/// to `#[handle]` and `#[deadline]` methods that take `&mut Deadlines<Self>`; what they
/// do is committed with their events.
pub struct Deadlines<A: Aggregate> {
    now: DateTime<Utc>,
    changes: Vec<DeadlineChange>,
    /// How to decide each deadline scheduled here without a store (the test kit).
    deciders: Deciders<A>,
    error: Option<Error>,
}

/// Decides a deadline of `A` from its stored payload: what the test kit fires.
pub(crate) type Decider<A> = fn(&A, &str, &mut Deadlines<A>) -> Result<Vec<<A as Aggregate>::Event>>;

/// The deadlines a decision scheduled, by name, with how each decides.
pub(crate) type Deciders<A> = Vec<(&'static str, Decider<A>)>;

fn decider<A, P>(state: &A, payload: &str, deadlines: &mut Deadlines<A>) -> Result<Vec<A::Event>>
where
    A: OnDeadline<P>,
    P: Send + Sync + 'static,
{
    let due: P = A::decode_due(payload).map_err(|source| Error::Serialization {
        stream: format!("{}/(the fixture)", A::TYPE),
        version: 0,
        event_type: format!("deadline `{}`", <A as OnDeadline<P>>::NAME),
        source,
    })?;
    state.on_deadline(&due, deadlines).map_err(|e| {
        let fields = A::error_fields(&e);
        Error::Domain(crate::DomainError::with_fields(e, fields))
    })
}

impl<A: Aggregate> std::fmt::Debug for Deadlines<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlines").field("now", &self.now).field("changes", &self.changes).finish_non_exhaustive()
    }
}

impl<A: Aggregate> Deadlines<A> {
    /// Deadlines decided at `now` (the application's clock).
    pub fn new(now: DateTime<Utc>) -> Self {
        Deadlines { now, changes: Vec::new(), deciders: Vec::new(), error: None }
    }

    /// Deadlines decided now on the system clock, whose changes go nowhere: what
    /// [`crate::Handle::handle`] hands a method that takes deadlines.
    #[doc(hidden)]
    pub fn detached() -> Self {
        Self::new(Utc::now())
    }

    /// The time of the decision: `schedule(after, ..)` counts from it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Schedules the deadline that carries `due` to fire `after` from now, replacing the
    /// aggregate's deadline of that name if it has one.
    pub fn schedule<P>(&mut self, after: Duration, due: P)
    where
        P: Send + Sync + 'static,
        A: OnDeadline<P>,
    {
        self.schedule_at(crate::ports::after(self.now, after), due);
    }

    /// Schedules the deadline that carries `due` to fire at `at`.
    pub fn schedule_at<P>(&mut self, at: DateTime<Utc>, due: P)
    where
        P: Send + Sync + 'static,
        A: OnDeadline<P>,
    {
        let name = <A as OnDeadline<P>>::NAME;
        match A::encode_due(&due) {
            Ok(payload) => {
                self.changes.push(DeadlineChange::Schedule { name, at, payload });
                self.deciders.push((name, decider::<A, P>));
            }
            Err(source) => {
                self.error.get_or_insert(Error::Encode { what: format!("deadline `{name}` of `{}`", A::TYPE), source });
            }
        }
    }

    /// Cancels the deadline that carries a `P`, if it is scheduled (a later fire does
    /// nothing).
    pub fn cancel<P>(&mut self)
    where
        P: Send + Sync + 'static,
        A: OnDeadline<P>,
    {
        self.changes.push(DeadlineChange::Cancel { name: <A as OnDeadline<P>>::NAME });
    }

    /// What was scheduled and cancelled so far, in order.
    pub fn changes(&self) -> &[DeadlineChange] {
        &self.changes
    }

    /// The changes, or the error of a payload that could not be stored.
    pub(crate) fn into_changes(self) -> Result<Vec<DeadlineChange>> {
        self.into_parts().map(|(changes, _)| changes)
    }

    /// The changes with how to decide each deadline scheduled, or the error of a payload
    /// that could not be stored.
    pub(crate) fn into_parts(self) -> Result<(Vec<DeadlineChange>, Deciders<A>)> {
        match self.error {
            Some(e) => Err(e),
            None => Ok((self.changes, self.deciders)),
        }
    }
}

/// The id of an aggregate's deadline: derived from its stream (type and id) and the
/// deadline's name, so that a name is scheduled once and cancelled by name.
pub fn deadline_id(stream_type: &str, stream_id: &str, name: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6a0f_3c1e_9d2b_4e57_8c61_2f4b_7d90_a3e5);
    let mut key = Vec::with_capacity(stream_type.len() + stream_id.len() + name.len() + 2);
    for part in [stream_type, stream_id, name] {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    Uuid::new_v5(&NAMESPACE, &key)
}

/// The stored payload of an aggregate deadline.
#[doc(hidden)]
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredDeadline {
    /// The aggregate's stream type.
    pub aggregate: String,
    /// The aggregate's id.
    pub id: String,
    /// The deadline's name.
    pub name: String,
    /// What it carries.
    pub due: serde_json::Value,
}

/// The schedule writes of a decision's deadline changes on `key`, stamped `now`, with
/// the command's metadata (its id as causation id: what a fire checks it against).
pub(crate) fn writes(
    key: &StreamKey,
    changes: Vec<DeadlineChange>,
    metadata: &crate::domain::Metadata,
    now: DateTime<Utc>,
) -> Result<Vec<crate::ports::DeadlineWrite>> {
    use crate::ports::DeadlineWrite;
    changes
        .into_iter()
        .map(|change| {
            let id = deadline_id(&key.stream_type, &key.stream_id, change.name());
            Ok(match change {
                DeadlineChange::Cancel { .. } => DeadlineWrite::Cancel { tenant_id: key.tenant_id.clone(), id },
                DeadlineChange::Schedule { name, at, payload } => {
                    let stored = StoredDeadline {
                        aggregate: key.stream_type.clone(),
                        id: key.stream_id.clone(),
                        name: name.to_owned(),
                        due: serde_json::from_str(&payload)
                            .map_err(|source| Error::Encode { what: format!("deadline `{name}`"), source })?,
                    };
                    let payload = serde_json::to_string(&stored)
                        .map_err(|source| Error::Encode { what: format!("deadline `{name}`"), source })?;
                    DeadlineWrite::Schedule(ScheduledCommand {
                        id,
                        command_type: AGGREGATE_DEADLINE.to_owned(),
                        payload,
                        due_at: at,
                        metadata: crate::domain::Metadata { tenant_id: key.tenant_id.clone(), ..metadata.clone() },
                        attempts: 0,
                        last_error: None,
                        created_at: now,
                    })
                }
            })
        })
        .collect()
}

/// How a deadline of one aggregate type and name is fired (collected from `#[deadline]`
/// methods).
#[doc(hidden)]
pub struct DeadlineRegistration {
    /// The aggregate's stream type.
    pub aggregate: &'static str,
    /// The deadline's name.
    pub name: &'static str,
    /// Fires it.
    pub fire: FireFn,
}

inventory::collect!(DeadlineRegistration);

/// The erased firing of one aggregate deadline.
#[doc(hidden)]
pub type FireFn = for<'a> fn(&'a Mediator, &'a ScheduledCommand, StoredDeadline) -> BoxFuture<'a, Result<Completion>>;

/// Fires a scheduled aggregate deadline (the scheduler's handler of [`AGGREGATE_DEADLINE`]).
pub(crate) fn fire_scheduled<'a>(
    mediator: &'a Mediator,
    cmd: &'a ScheduledCommand,
) -> BoxFuture<'a, Result<Completion>> {
    Box::pin(async move {
        let stored: StoredDeadline = serde_json::from_str(&cmd.payload).map_err(|source| Error::Serialization {
            stream: "<schedule>".to_owned(),
            version: 0,
            event_type: AGGREGATE_DEADLINE.to_owned(),
            source,
        })?;
        let found = inventory::iter::<DeadlineRegistration>
            .into_iter()
            .find(|r| r.aggregate == stored.aggregate && r.name == stored.name);
        match found {
            Some(r) => (r.fire)(mediator, cmd, stored).await,
            None => {
                Err(Error::UnknownMessage { kind: "deadline", name: format!("{}::{}", stored.aggregate, stored.name) })
            }
        }
    })
}

/// Fires a deadline of aggregate `A` carrying a `P`: the body of each
/// [`DeadlineRegistration::fire`].
#[doc(hidden)]
pub fn fire<'a, A, P>(
    mediator: &'a Mediator,
    cmd: &'a ScheduledCommand,
    stored: StoredDeadline,
) -> BoxFuture<'a, Result<Completion>>
where
    A: OnDeadline<P>,
    P: Send + Sync + 'static,
{
    Box::pin(async move {
        let due: P = A::decode_due(&stored.due.to_string()).map_err(|source| Error::Serialization {
            stream: format!("{}/{}", stored.aggregate, stored.id),
            version: 0,
            event_type: format!("deadline `{}`", stored.name),
            source,
        })?;
        let fired = FireDeadline::<A, P> {
            stream_id: stored.id,
            due,
            deadline: cmd.id,
            scheduled_by: cmd.metadata.causation_id,
            aggregate: PhantomData,
        };
        match mediator.send_with(fired, Some(cmd.metadata.clone())).await {
            // The commit removed the deadline.
            Ok(()) => Ok(Completion::Removed),
            Err(e) if e.is_conflict() => {
                let tenant = cmd.metadata.tenant_id.as_deref();
                let live = mediator
                    .schedule_store()
                    .get(tenant, cmd.id)
                    .await?
                    .is_some_and(|c| c.metadata.causation_id == cmd.metadata.causation_id);
                if live {
                    Err(e)
                } else {
                    tracing::debug!(deadline = %cmd.id, "a deadline cancelled or scheduled again meanwhile; ignored");
                    Ok(Completion::Removed)
                }
            }
            Err(e @ Error::Domain(_)) => {
                tracing::warn!(aggregate = A::TYPE, deadline = <A as OnDeadline<P>>::NAME, error = %e, "a deadline's method refused; the deadline is dropped");
                Ok(Completion::Done)
            }
            Err(e) => Err(e),
        }
    })
}

/// A fired deadline, run as a command on its aggregate (internal: never sent by name).
pub(crate) struct FireDeadline<A, P> {
    pub(crate) stream_id: String,
    pub(crate) due: P,
    pub(crate) deadline: Uuid,
    pub(crate) scheduled_by: Option<Uuid>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, P: Send + Sync + 'static> Command for FireDeadline<A, P> {
    const NAME: &'static str = AGGREGATE_DEADLINE;
    type Response = ();
}

impl<A, P> CommandHandler for FireDeadline<A, P>
where
    A: OnDeadline<P>,
    P: Send + Sync + 'static,
{
    async fn handle(self, ctx: &mut CommandContext) -> Result<()> {
        ctx.execute_deadline::<A, P>(self).await
    }
}
