use std::future::Future;

use futures::future::BoxFuture;

use crate::cqrs::context::{CommandContext, QueryContext};
use crate::domain::{Aggregate, Envelope, Event};
use crate::error::Result;

/// A request to change state. Implemented by `#[command]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not marked `#[command]`",
    note = "mark the type with `#[command]` (add `aggregate = ..` when an aggregate handles it)"
)]
pub trait Command: Send + 'static {
    /// Stable name (the Rust type name unless `name = ".."` is given).
    const NAME: &'static str;
    /// What a successful `send` returns.
    type Response: Send + 'static;

    /// Checks the command before anything runs: [`crate::Error::Validation`] listing
    /// every field that failed. `#[command(validate)]` runs the type's
    /// `garde::Validate` derive here; by default every command is valid.
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// A command handled by an aggregate, routed by its `#[id]` field.
#[diagnostic::on_unimplemented(
    message = "command `{Self}` does not name the aggregate that handles it",
    label = "handled by an aggregate but not routed to it",
    note = "write `#[command(aggregate = TheAggregate)]` on `{Self}` and mark its id field with `#[id]`"
)]
pub trait AggregateCommand: Command {
    /// The aggregate that handles the command.
    type Aggregate: Aggregate;
    /// The id of the target aggregate.
    fn aggregate_id(&self) -> &<Self::Aggregate as Aggregate>::Id;
}

/// A request for data. Implemented by `#[query]`; its response type is the one its
/// `#[query_handler]` returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a query",
    label = "not marked `#[query]`",
    note = "mark the type with `#[query]`"
)]
pub trait Query: Send + 'static {
    /// Stable name.
    const NAME: &'static str;

    /// Checks the query before its handler runs, as [`Command::validate`] does
    /// (`#[query(validate)]`).
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// The one handler of a command, known at compile time.
///
/// Implemented by `#[command(aggregate = ..)]` (the aggregate's `#[handle]` method) or by
/// `#[command_handler]`. A second handler for the same command is a conflicting
/// implementation, so it cannot compile.
#[diagnostic::on_unimplemented(
    message = "no handler for command `{Self}`",
    label = "`{Self}` has no handler, so it cannot be sent",
    note = "route it to an aggregate with `#[command(aggregate = TheAggregate)]` and a `#[handle]` method, or write `#[command_handler] async fn handle(cmd: {Self}, ctx: &mut CommandContext) -> Result<..>`"
)]
pub trait CommandHandler: Command + Sized {
    /// Handles the command inside the context's unit of work.
    fn handle(self, ctx: &mut CommandContext) -> impl Future<Output = Result<Self::Response>> + Send;
}

/// The one handler of a query, known at compile time. Implemented by `#[query_handler]`.
#[diagnostic::on_unimplemented(
    message = "no handler for query `{Self}`",
    label = "`{Self}` has no handler",
    note = "write `#[query_handler] async fn handle(q: {Self}, ctx: &QueryContext) -> Result<..>`"
)]
pub trait QueryHandler: Query + Sized {
    /// What `query` returns.
    type Response: Send + 'static;
    /// Answers the query.
    fn handle(self, ctx: &QueryContext) -> impl Future<Output = Result<Self::Response>> + Send;
}

/// A command handler registered by hand with `AppBuilder::command_handler`, sent
/// through `Mediator::dispatch`.
pub trait DynCommandHandler<C: Command>: Send + Sync + 'static {
    /// Handles the command inside the context's unit of work.
    fn handle<'a>(&'a self, cmd: C, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<C::Response>>;
}

/// An event handler registered by hand with `AppBuilder::event_handler`.
pub trait DynEventHandler<E: Event>: Send + Sync + 'static {
    /// Reacts to a committed event.
    fn handle<'a>(&'a self, event: &'a Envelope<E>, ctx: &'a crate::cqrs::EventContext) -> BoxFuture<'a, Result<()>>;
}
