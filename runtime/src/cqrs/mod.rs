//! Commands, queries, their handlers, and the mediator that routes them.

pub(crate) mod by_name;
pub mod catalog;
mod context;
mod delivery;
mod deps;
pub(crate) mod extensions;
pub(crate) mod mediator;
mod message;
mod read_models;
mod root;

pub use by_name::SendOptions;
pub use catalog::{MessageInfo, Payload, Receipt};
pub use context::{CommandContext, EventContext, QueryContext};
pub use deps::Dep;
pub(crate) use deps::Deps;
pub use mediator::Mediator;
pub use message::{AggregateCommand, Command, CommandHandler, DynCommandHandler, DynEventHandler, Query, QueryHandler};
pub(crate) use read_models::ReadModelStore;
pub use read_models::ReadModels;
pub use root::{RetryPolicy, TransientRetry};
