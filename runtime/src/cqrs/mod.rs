//! Commands, queries, their handlers, and the mediator that routes them.

pub(crate) mod by_name;
mod context;
mod deps;
pub(crate) mod mediator;
mod message;

pub use context::{CommandContext, EventContext, QueryContext};
pub use deps::Dep;
pub(crate) use deps::Deps;
pub use mediator::{Mediator, RetryPolicy};
pub use message::{AggregateCommand, Command, CommandHandler, DynCommandHandler, DynEventHandler, Query, QueryHandler};
