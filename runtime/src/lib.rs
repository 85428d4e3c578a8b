//! DOCS PLACEHOLDER

extern crate self as cqrs_ddd;

pub mod context;
pub mod cqrs;
pub mod domain;
mod error;
pub mod es;
pub mod memory;
pub mod middleware;
pub mod ports;
pub mod registry;
pub mod uow;

pub use context::RequestContext;
pub use cqrs::{
    AggregateCommand, Command, CommandContext, CommandHandler, Dep, DynCommandHandler, DynEventHandler, EventContext,
    Mediator, Query, QueryContext, QueryHandler, RetryPolicy,
};
pub use domain::{
    Aggregate, AggregateEvent, AggregateId, Apply, CreationPolicy, Envelope, Event, EventHeader, EventOf, Handle,
    Metadata, Storage, new_id,
};
pub use error::{BuildError, DomainError, Error, Result};
pub use es::Loaded;
pub use memory::{MemorySnapshotStore, MemoryStore};
pub use middleware::{Message, MessageKind, Middleware, Next, Reply};
pub use registry::{App, AppBuilder};
pub use uow::UnitOfWork;

#[cfg(feature = "macros")]
pub use cqrs_ddd_macros::{aggregate, command, command_handler, event, event_handler, query, query_handler};

/// Everything a domain module needs: `use cqrs_ddd::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Aggregate, App, Command, CommandContext, Dep, Envelope, Error, Event, EventContext, Mediator, Metadata,
        Query, QueryContext, Result,
    };
    #[cfg(feature = "macros")]
    pub use cqrs_ddd_macros::{aggregate, command, command_handler, event, event_handler, query, query_handler};
    pub use serde::{Deserialize, Serialize};
}

/// Used by generated code only; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use core::any::{Any, TypeId, type_name};
    pub use core::clone::Clone;
    pub use core::convert::{From, Into};
    pub use core::fmt;
    pub use core::marker::{Send, Sync};
    pub use core::future::Future;
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use std::boxed::Box;
    pub use std::string::String;
    pub use std::vec::Vec;

    pub use futures::future::BoxFuture;
    pub use inventory;
    pub use serde;
    pub use serde_json;

    pub use crate::cqrs::Root;
    pub use crate::registry::{
        AggregateRegistration, CommandRegistration, DepKey, EventHandlerRegistration, EventRegistration,
        QueryRegistration, erased_command,
    };

    /// Turns a handler's `Result<T, E>` into the framework's result.
    pub fn into_result<T, E: Into<crate::Error>>(r: Result<T, E>) -> crate::Result<T> {
        r.map_err(Into::into)
    }

    /// The response type a handler returns is the one its message declares.
    #[diagnostic::on_unimplemented(
        message = "this handler returns `{Self}`, but its message responds with `{T}`",
        label = "expected `Result<{T}>` here",
        note = "return `Result<{T}>`, or change `#[command(response = ..)]` on the command (event handlers return `Result<()>`)"
    )]
    pub trait SameResponse<T> {
        /// Identity.
        fn same(self) -> T;
    }

    impl<T> SameResponse<T> for T {
        fn same(self) -> T {
            self
        }
    }

    /// Checks and passes on a handler's result (see [`SameResponse`]).
    pub fn respond<R: SameResponse<E>, E>(r: crate::Result<R>) -> crate::Result<E> {
        r.map(SameResponse::same)
    }

    /// A handler received an envelope of another type (a wiring bug, reported not panicked).
    pub fn wrong_envelope(handler: &'static str) -> crate::Error {
        crate::Error::handler(format!("event handler `{handler}` received an envelope of another event type"))
    }
}
