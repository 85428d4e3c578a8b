//! Middleware: an ordered chain around every command and query, like tower layers.
//!
//! Lower priority is outer: with priorities 10, 0 and 5 the code before `next.run` runs
//! in the order 0, 5, 10 and the code after it in the order 10, 5, 0. Nested commands go
//! through the chain too ([`Message::nested`] tells them apart).

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

use crate::context::RequestContext;
use crate::error::{Error, Result};

/// What kind of message is flowing through the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A command (`send`).
    Command,
    /// A query (`query`).
    Query,
}

/// The reply of a handler, erased while it travels back through the chain.
pub type Reply = Box<dyn Any + Send>;

/// A message on its way to its handler.
pub struct Message {
    /// Command or query.
    pub kind: MessageKind,
    /// The stable name of the message type.
    pub name: &'static str,
    /// The Rust type of the message.
    pub type_id: TypeId,
    /// Whether it was sent from inside another command's unit of work.
    pub nested: bool,
    /// Correlation, causation, tenant, principal.
    pub request: RequestContext,
    pub(crate) payload: Box<dyn Any + Send>,
}

impl Message {
    /// The message itself, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.payload.downcast_ref()
    }

    /// The message itself, erased.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    pub(crate) fn into_payload<T: 'static>(self) -> Result<T> {
        let name = self.name;
        self.payload.downcast::<T>().map(|b| *b).map_err(|_| {
            Error::handler(format!("a middleware replaced the `{name}` message with a value of another type"))
        })
    }
}

/// One layer of the chain.
pub trait Middleware: Send + Sync + 'static {
    /// Position in the chain; lower runs outer (first on the way in, last on the way out).
    fn priority(&self) -> i32 {
        0
    }

    /// Handles the message; call `next.run(msg)` to pass it on.
    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>>;
}

type Terminal<'a> = Box<dyn FnOnce(Message) -> BoxFuture<'a, Result<Reply>> + Send + 'a>;

/// The rest of the chain.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Middleware>],
    terminal: Terminal<'a>,
}

impl<'a> Next<'a> {
    pub(crate) fn new(chain: &'a [Arc<dyn Middleware>], terminal: Terminal<'a>) -> Self {
        Next { rest: chain, terminal }
    }

    /// Runs the rest of the chain and the handler.
    pub async fn run(self, msg: Message) -> Result<Reply> {
        match self.rest.split_first() {
            Some((first, rest)) => first.handle(msg, Next { rest, terminal: self.terminal }).await,
            None => (self.terminal)(msg).await,
        }
    }
}

/// Opens a `tracing` span per message, `cqrs_ddd.command` or `cqrs_ddd.query`, with the
/// message's `name`, its `correlation_id` and whether it is `nested`; logs failures.
///
/// A root command commits inside its span, so the outbox rows it writes carry the span's
/// trace context when a [`crate::telemetry::Propagator`] is installed.
#[derive(Debug, Clone, Default)]
pub struct TracingMiddleware;

impl Middleware for TracingMiddleware {
    fn priority(&self) -> i32 {
        -100
    }

    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>> {
        use tracing::Instrument;
        let (name, correlation_id, nested) = (msg.name, &msg.request.correlation_id, msg.nested);
        let span = match msg.kind {
            MessageKind::Command => {
                tracing::info_span!("cqrs_ddd.command", name, correlation_id = %correlation_id, nested)
            }
            MessageKind::Query => tracing::info_span!("cqrs_ddd.query", name, correlation_id = %correlation_id, nested),
        };
        Box::pin(
            async move {
                let result = next.run(msg).await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "message failed");
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Counts commands and queries and records their latency through the `metrics` facade:
/// [`crate::metrics::MESSAGES_TOTAL`] by `kind` (`command`, `query`), `name` and
/// `outcome` (`ok`, `rejected`, `conflict`, `error`), and
/// [`crate::metrics::MESSAGE_SECONDS`] by `kind` and `name`.
#[derive(Debug, Clone, Default)]
pub struct MetricsMiddleware;

impl Middleware for MetricsMiddleware {
    fn priority(&self) -> i32 {
        -90
    }

    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>> {
        use crate::metrics as m;
        Box::pin(async move {
            let name = msg.name;
            let kind = match msg.kind {
                MessageKind::Command => "command",
                MessageKind::Query => "query",
            };
            let started = Instant::now();
            let result = next.run(msg).await;
            let outcome = m::outcome(&result);
            metrics::counter!(m::MESSAGES_TOTAL, "kind" => kind, "name" => name, "outcome" => outcome).increment(1);
            metrics::histogram!(m::MESSAGE_SECONDS, "kind" => kind, "name" => name)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// A rule a message must satisfy before it reaches its handler.
pub trait Validate {
    /// `Err(reason)` rejects the message with [`Error::Validation`].
    fn validate(&self) -> std::result::Result<(), String>;
}

type Rule = fn(&Message) -> std::result::Result<(), String>;

/// Rejects messages whose [`Validate`] rule fails; register one per message type with
/// [`ValidationMiddleware::rule`].
#[derive(Default)]
pub struct ValidationMiddleware {
    rules: std::collections::HashMap<TypeId, Rule>,
}

impl ValidationMiddleware {
    /// An empty validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates every `T` with its [`Validate`] implementation.
    pub fn rule<T: Validate + 'static>(mut self) -> Self {
        self.rules.insert(TypeId::of::<T>(), |msg| msg.downcast_ref::<T>().map_or(Ok(()), Validate::validate));
        self
    }
}

impl Middleware for ValidationMiddleware {
    fn priority(&self) -> i32 {
        -50
    }

    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            if let Some(rule) = self.rules.get(&msg.type_id) {
                rule(&msg).map_err(|reason| Error::Validation { message: msg.name, reason, fields: Vec::new() })?;
            }
            next.run(msg).await
        })
    }
}
