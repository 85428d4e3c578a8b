//! Registrations collected through `inventory`: what the macros submit for every event,
//! aggregate, command, query, handler, upcaster and saga of the program, from every
//! linked crate. [`App::build`](crate::AppBuilder::build) checks them and builds the
//! mediator from them; nothing here checks or builds anything.

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use futures::future::BoxFuture;

use crate::cqrs::by_name::DispatchJson;
use crate::cqrs::{CommandContext, CommandHandler, EventContext};
use crate::error::{Error, Result};
use crate::es::{UpcastStep, Upcasters};
use crate::middleware::Reply;
use crate::saga::SagaSendFn;

/// A type a handler needs as `Dep<T>`.
pub struct DepKey {
    /// `TypeId::of::<T>`.
    pub type_id: fn() -> TypeId,
    /// `type_name::<T>`, for the build problem that says it is missing.
    pub type_name: fn() -> &'static str,
}

/// Submitted by `#[event]`.
pub struct EventRegistration {
    /// The stored name (`Event::NAME`).
    pub name: &'static str,
    /// The current schema version (`Event::VERSION`).
    pub version: u32,
    /// The payload type.
    pub type_id: fn() -> TypeId,
    /// The payload type's Rust name.
    pub type_name: fn() -> &'static str,
    /// Decodes an `Envelope<Self>` from JSON (outbox delivery to async handlers).
    pub decode: fn(&str) -> serde_json::Result<Box<dyn Any + Send + Sync>>,
}

/// Submitted by `#[aggregate]` on the struct.
pub struct AggregateRegistration {
    /// The stream type (`Aggregate::TYPE`).
    pub name: &'static str,
    /// The aggregate's Rust name.
    pub type_name: fn() -> &'static str,
    /// The stored names of the events in its `events(..)` list.
    pub events: &'static [&'static str],
}

/// Submitted by `#[command(aggregate = ..)]` and `#[command_handler]`.
pub struct CommandRegistration {
    /// The command's stored name.
    pub name: &'static str,
    /// The command type.
    pub type_id: fn() -> TypeId,
    /// The handler's name, for build problems.
    pub handler: &'static str,
    /// The handler's `Dep<T>` parameters.
    pub deps: &'static [DepKey],
    /// Handles a boxed command (`Mediator::dispatch`).
    pub call: for<'a> fn(Box<dyn Any + Send>, &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>>,
}

/// Submitted by every `#[command]`: its stored name and how to send it by that name.
pub struct CommandTypeRegistration {
    /// The stored name.
    pub name: &'static str,
    /// The command type.
    pub type_id: fn() -> TypeId,
    /// The command type's Rust name.
    pub type_name: fn() -> &'static str,
    /// Chooses the sending function for the concrete type (see `cqrs::by_name`).
    pub dispatch: fn() -> DispatchJson,
    /// Chooses how its response becomes JSON (see `cqrs::catalog`).
    pub encode: fn() -> crate::cqrs::catalog::EncodeReply,
    /// The JSON schema of the command.
    pub request_schema: fn() -> crate::cqrs::catalog::SchemaFn,
    /// The JSON schema of its response.
    pub response_schema: fn() -> crate::cqrs::catalog::SchemaFn,
}

/// Submitted by every `#[query]`: its stored name and how to ask it by that name.
pub struct QueryTypeRegistration {
    /// The stored name.
    pub name: &'static str,
    /// The query type.
    pub type_id: fn() -> TypeId,
    /// The query type's Rust name.
    pub type_name: fn() -> &'static str,
    /// The projections whose read models it reads (`#[query(reads = [..])]`).
    pub reads: &'static [&'static str],
    /// Chooses the answering function for the concrete type (see `cqrs::catalog`).
    pub ask: fn() -> crate::cqrs::catalog::QueryJson,
    /// The JSON schema of the query.
    pub request_schema: fn() -> crate::cqrs::catalog::SchemaFn,
    /// The JSON schema of its response.
    pub response_schema: fn() -> crate::cqrs::catalog::SchemaFn,
}

/// Submitted by `#[query_handler]`.
pub struct QueryRegistration {
    /// The query's stored name.
    pub name: &'static str,
    /// The query type.
    pub type_id: fn() -> TypeId,
    /// The handler's name, for build problems.
    pub handler: &'static str,
    /// The handler's `Dep<T>` parameters.
    pub deps: &'static [DepKey],
}

/// Submitted by `#[upcaster]`.
pub struct UpcasterRegistration {
    /// The stored name of the event it upcasts.
    pub event_type: &'static str,
    /// The schema version it reads.
    pub from: u32,
    /// The schema version it writes.
    pub to: u32,
    /// The upcaster's name, for errors and build problems.
    pub name: &'static str,
    /// The step itself.
    pub upcast: fn(serde_json::Value) -> std::result::Result<serde_json::Value, String>,
}

/// Submitted by `#[event_handler]`.
pub struct EventHandlerRegistration {
    /// The handler's name, for logs and build problems.
    pub handler: &'static str,
    /// The stored name of the event it handles.
    pub event_name: &'static str,
    /// The event type.
    pub event_type_id: fn() -> TypeId,
    /// The handler's `Dep<T>` parameters.
    pub deps: &'static [DepKey],
    /// Handles an erased `&Envelope<E>`.
    pub call: for<'a> fn(&'a (dyn Any + Send + Sync), &'a EventContext) -> BoxFuture<'a, Result<()>>,
    /// Delivered through the outbox and a relay instead of right after the commit.
    pub asynchronous: bool,
    /// Runs in a unit of work of its own per delivery, committed with the delivered
    /// event's id as idempotency key, so a redelivery changes nothing (every
    /// `#[event_handler(async)]`; not saga steps, which record what they processed in
    /// the saga's state).
    pub unit_of_work: bool,
}

/// Submitted by `#[saga]`.
pub struct SagaRegistration {
    /// The saga's stored name (`Saga::NAME`).
    pub name: &'static str,
    /// The saga's Rust name.
    pub type_name: fn() -> &'static str,
    /// `Saga::send` of the saga type.
    pub send: SagaSendFn,
}

/// Submitted by `#[event(undo = ..)]`.
pub struct UndoRegistration {
    /// The stored name of the event.
    pub event: &'static str,
    /// The undo window of `undo_within = ".."`, in milliseconds.
    pub within_ms: Option<u64>,
    /// Builds the undo command from a stored event.
    pub undo: crate::undo::InverseFn,
    /// Builds the redo command (`redo = ..`).
    pub redo: Option<crate::undo::InverseFn>,
}

inventory::collect!(UndoRegistration);
/// Submitted by `#[job]`.
pub struct JobRegistration {
    /// The job's stored name (`Job::NAME`).
    pub name: &'static str,
    /// The job type.
    pub type_id: fn() -> TypeId,
    /// The job type's Rust name.
    pub type_name: fn() -> &'static str,
    /// Decodes, runs and encodes the result of a stored job of this type.
    pub run: crate::jobs::JobRunFn,
}

inventory::collect!(JobRegistration);
inventory::collect!(SagaRegistration);
inventory::collect!(EventRegistration);
inventory::collect!(AggregateRegistration);
inventory::collect!(CommandRegistration);
inventory::collect!(CommandTypeRegistration);
inventory::collect!(QueryTypeRegistration);
inventory::collect!(QueryRegistration);
inventory::collect!(EventHandlerRegistration);
inventory::collect!(UpcasterRegistration);

/// The erased call of a macro-registered command handler.
pub fn erased_command<C: CommandHandler>(
    cmd: Box<dyn Any + Send>,
    ctx: &mut CommandContext,
) -> BoxFuture<'_, Result<Reply>> {
    Box::pin(async move {
        let cmd = cmd
            .downcast::<C>()
            .map_err(|_| Error::handler(format!("handler of `{}` received another message type", C::NAME)))?;
        let r = C::handle(*cmd, ctx).await?;
        Ok(Box::new(r) as Reply)
    })
}

/// The upcaster steps of the program, as `es` indexes them.
pub(crate) fn upcast_steps() -> impl Iterator<Item = UpcastStep> {
    inventory::iter::<UpcasterRegistration>.into_iter().map(|u| UpcastStep {
        event_type: u.event_type,
        from: u.from,
        to: u.to,
        name: u.name,
        upcast: u.upcast,
    })
}

/// The program's upcasters, for decoding outside a loader (projections). A second
/// upcaster from one version is ignored here; `App::build` reports it.
pub(crate) fn upcasters() -> &'static Upcasters {
    static GLOBAL: OnceLock<Upcasters> = OnceLock::new();
    GLOBAL.get_or_init(|| Upcasters::new(upcast_steps()).0)
}
