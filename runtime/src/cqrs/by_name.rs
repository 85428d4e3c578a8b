//! Dispatch by name: every `#[command]` registers its stored name with a function that
//! decodes the command from JSON and sends it, so the scheduler (and brokers, HTTP, the
//! CLI) can send a command it only knows by name, in a process that never mentioned its
//! type.
//!
//! Which function a command gets is decided where the macro expands, for its concrete
//! type, by method resolution on [`Probe`] (each step an extra reference, so the first
//! that applies wins):
//!
//! 1. the command has a handler known at compile time and is `Deserialize`: it is sent
//!    like [`Mediator::send`] (retry on conflict included);
//! 2. it is `Deserialize` only: it goes to a handler registered by hand
//!    (`AppBuilder::command_handler`), like [`Mediator::dispatch`];
//! 3. it is not `Deserialize`: sending it by name fails with [`Error::Decode`] naming the
//!    type and the derive it lacks.

use std::any::TypeId;
use std::marker::PhantomData;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::cqrs::{Command, CommandHandler, Mediator};
use crate::domain::Metadata;
use crate::error::{Error, Result};
use crate::middleware::Reply;

/// How a command known by name is sent.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Correlation id, tenant, principal, headers.
    pub metadata: Option<Metadata>,
    /// Sends at most once per key (see [`Mediator::send_idempotent`]).
    pub idempotency_key: Option<Uuid>,
}

/// Decodes a command from its JSON payload and sends it; the reply is the handler's
/// response, boxed.
pub type DispatchJson = for<'a> fn(&'a Mediator, &'a str, SendOptions) -> BoxFuture<'a, Result<Reply>>;

/// Chooses the [`DispatchJson`] of a concrete command type (see the module docs), and
/// what `cqrs::catalog` chooses per type.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// The probe of `T`; call `(&&&Probe::<T>::new()).__cqrs_ddd_dispatch_json()`.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// First choice: the command's compile-time handler.
pub trait ViaHandler {
    /// The sending function.
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson;
}

/// Second choice: a handler registered by hand, found at run time.
pub trait ViaDynHandler {
    /// The sending function.
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson;
}

/// Last resort: the command cannot be decoded.
pub trait NotDecodable {
    /// The sending function.
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson;
}

impl<T: CommandHandler + DeserializeOwned> ViaHandler for &&Probe<T> {
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson {
        via_handler::<T>
    }
}

impl<T: Command + DeserializeOwned> ViaDynHandler for &Probe<T> {
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson {
        via_dyn_handler::<T>
    }
}

impl<T: Command> NotDecodable for Probe<T> {
    fn __cqrs_ddd_dispatch_json(&self) -> DispatchJson {
        not_decodable::<T>
    }
}

fn decode<T: Command + DeserializeOwned>(json: &str) -> Result<T> {
    crate::cqrs::catalog::decode("command", T::NAME, crate::cqrs::catalog::Payload::Json(json))
}

pub(crate) fn via_handler<'a, T: CommandHandler + DeserializeOwned>(
    mediator: &'a Mediator,
    json: &'a str,
    options: SendOptions,
) -> BoxFuture<'a, Result<Reply>> {
    Box::pin(async move {
        let cmd = decode::<T>(json)?;
        let response = mediator.send_root(cmd, options.metadata, options.idempotency_key).await?;
        Ok(Box::new(response) as Reply)
    })
}

fn via_dyn_handler<'a, T: Command + DeserializeOwned>(
    mediator: &'a Mediator,
    json: &'a str,
    options: SendOptions,
) -> BoxFuture<'a, Result<Reply>> {
    Box::pin(async move {
        let cmd = decode::<T>(json)?;
        mediator.dispatch_erased(TypeId::of::<T>(), T::NAME, Box::new(cmd), options).await
    })
}

fn not_decodable<'a, T: Command>(_: &'a Mediator, _: &'a str, _: SendOptions) -> BoxFuture<'a, Result<Reply>> {
    Box::pin(async {
        Err(Error::Decode {
            kind: "command",
            name: T::NAME.to_owned(),
            reason: format!(
                "`{}` does not implement `serde::Deserialize`; derive it to send the command by name (scheduled, from a broker or over HTTP)",
                std::any::type_name::<T>()
            ),
            path: None,
        })
    })
}
