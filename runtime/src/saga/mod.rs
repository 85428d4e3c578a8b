//! Sagas: long-running processes that react to events and send commands, with
//! compensation, TCC steps, timeouts and recovery.
//!
//! A saga is declared with `#[saga]` on a struct (its state) and on an `impl` block
//! whose `#[step(..)]` methods each react to one event type. See the crate docs for
//! the attribute syntax; this module holds what the generated code calls into and the
//! runtime that persists instances and sends their commands.

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cqrs::Mediator;
use crate::domain::{Envelope, Event, Metadata};
use crate::error::Result;

mod engine;
pub(crate) mod instance;
mod recovery;
mod step;

pub use engine::{SagaManager, SagaOptions};
pub use instance::{CommandKind, SagaCommand, SagaInstance, UndoEntry, UndoKind};
pub use recovery::{RecoveryReport, SagaRecovery};
pub use step::{PlannedCommand, Step, Transition};

pub(crate) use engine::{DEADLINE_COMMAND, SagaRuntime, SagaSendFn};

/// A saga type: its state is the struct, persisted as JSON between events.
/// Implemented by `#[saga]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a saga",
    label = "not marked `#[saga]`",
    note = "mark the state struct with `#[saga(name = \"..\", associate = field)]` and its impl block with `#[saga]`"
)]
pub trait Saga: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name, stored with every instance.
    const NAME: &'static str;

    /// Sends one of the commands this saga plans (found by its stored name) through the
    /// mediator, at most once per command id.
    fn send<'a>(mediator: &'a Mediator, command: &'a SagaCommand, metadata: Metadata) -> BoxFuture<'a, Result<()>>;
}

/// A saga's reaction to events of type `E`. Implemented by `#[saga]`, one per `#[step]`.
#[diagnostic::on_unimplemented(
    message = "saga `{Self}` has no step for event `{E}`",
    label = "`{Self}` does not react to `{E}`",
    note = "add a `#[step] fn on_it(&mut self, e: &{E}) -> ..` to the saga's `#[saga] impl` block"
)]
pub trait SagaHandles<E: Event>: Saga {
    /// Whether this event starts an instance when none exists for its association.
    const STARTS: bool;

    /// Which instance the event belongs to; `None` when it belongs to none.
    fn associate(event: &Envelope<E>) -> Option<String>;

    /// The step: updates the state and says what to send and where to go next.
    fn on_event(&mut self, event: &Envelope<E>) -> Step;
}

/// The erased `Saga::send` of a registered saga type.
#[doc(hidden)]
pub fn send_fn<S: Saga>() -> SagaSendFn {
    S::send
}

/// Sends a stored saga command of type `C` (used by the code `#[saga]` generates).
#[doc(hidden)]
pub fn send_command<'a, C>(
    mediator: &'a Mediator,
    command: &'a SagaCommand,
    metadata: Metadata,
) -> BoxFuture<'a, Result<()>>
where
    C: crate::cqrs::CommandHandler + DeserializeOwned,
{
    Box::pin(async move {
        let cmd: C = serde_json::from_str(&command.payload).map_err(|source| crate::Error::Serialization {
            stream: format!("saga command {}", command.id),
            version: 0,
            event_type: command.command_type.clone(),
            source,
        })?;
        mediator.send_idempotent(cmd, command.id, Some(metadata)).await.map(drop)
    })
}

/// The error for a stored command type the saga does not send (renamed or removed).
#[doc(hidden)]
pub fn unknown_command<'a, S: Saga>(command: &'a SagaCommand) -> BoxFuture<'a, Result<()>> {
    let e = crate::Error::NoHandler { kind: "saga command", name: "unknown" };
    tracing::error!(saga = S::NAME, command = %command.command_type, "a stored saga command has a type this saga does not send");
    Box::pin(async move { Err(e) })
}

/// Routes an event delivered to an async handler into the saga runtime (generated code).
#[doc(hidden)]
pub fn on_event<'a, S, E>(
    envelope: &'a (dyn std::any::Any + Send + Sync),
    ctx: &'a crate::cqrs::EventContext,
) -> BoxFuture<'a, Result<()>>
where
    S: SagaHandles<E>,
    E: Event,
{
    Box::pin(async move {
        let env = envelope.downcast_ref::<Envelope<E>>().ok_or_else(|| {
            crate::Error::handler(format!("saga `{}` received another event type than `{}`", S::NAME, E::NAME))
        })?;
        ctx.mediator().sagas().handle::<S, E>(env).await
    })
}
