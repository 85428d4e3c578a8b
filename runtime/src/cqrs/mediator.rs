use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::cqrs::by_name::{DispatchJson, SendOptions};
use crate::cqrs::context::{CommandContext, EventContext, QueryContext};
use crate::cqrs::deps::{Dep, Deps};
use crate::cqrs::extensions::{Extensions, TypeMap};
use crate::cqrs::message::{Command, CommandHandler, QueryHandler};
use crate::cqrs::root::{RetryPolicy, Root};
use crate::domain::{Aggregate, Envelope, Event, Metadata};
use crate::error::{Error, Result};
use crate::es::{AggregateCache, Loaded, Loader};
use crate::middleware::{Message, MessageKind, Middleware, Next, Reply};
use crate::ports::{EventStore, StreamKey, UndoLogEntry};
use crate::uow::UnitOfWork;

pub(crate) trait ErasedCommandHandler: Send + Sync {
    fn call<'a>(&'a self, cmd: Box<dyn Any + Send>, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>>;
}

pub(crate) trait ErasedEventHandler: Send + Sync {
    fn call<'a>(&'a self, envelope: &'a (dyn Any + Send + Sync), ctx: &'a EventContext) -> BoxFuture<'a, Result<()>>;
}

pub(crate) struct EventHandlerEntry {
    pub(crate) name: &'static str,
    pub(crate) handler: Arc<dyn ErasedEventHandler>,
    /// See [`crate::__private::EventHandlerRegistration::unit_of_work`].
    pub(crate) unit_of_work: bool,
}

pub(crate) struct Runtime {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) deps: Deps,
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    pub(crate) event_handlers: TypeMap<Vec<EventHandlerEntry>>,
    pub(crate) dyn_commands: TypeMap<Arc<dyn ErasedCommandHandler>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) transient: crate::cqrs::TransientRetry,
    pub(crate) transient_for: HashMap<&'static str, crate::cqrs::TransientRetry>,
    pub(crate) loader: Loader,
    pub(crate) cache: Option<AggregateCache>,
    /// Notified after each commit that wrote events (wakes projection workers and relays).
    pub(crate) committed: Arc<tokio::sync::Notify>,
    /// `#[event_handler(async)]`s: delivered through the outbox.
    pub(crate) async_handlers: TypeMap<Vec<EventHandlerEntry>>,
    /// Stored event name → (type, envelope decoder), for outbox delivery.
    pub(crate) event_decoders: HashMap<&'static str, (TypeId, EventDecoder)>,
    /// What the application plugs in beside message routing (the saga runtime, the
    /// schedule), opaque to the mediator.
    pub(crate) extensions: Extensions,
    /// Stored command name → its type and how to send it decoded from JSON.
    pub(crate) commands_by_name: BTreeMap<&'static str, NamedCommand>,
    /// Stored query name → how to ask it decoded from JSON.
    pub(crate) queries_by_name: HashMap<&'static str, crate::cqrs::catalog::NamedQuery>,
    /// Every command and query, described (commands first, by name).
    pub(crate) catalog: Vec<crate::cqrs::catalog::Described>,
}

/// A command that can be sent by its stored name.
#[derive(Clone, Copy)]
pub(crate) struct NamedCommand {
    pub(crate) type_id: TypeId,
    pub(crate) dispatch: DispatchJson,
    pub(crate) encode: crate::cqrs::catalog::EncodeReply,
}

pub(crate) type EventDecoder = fn(&str) -> serde_json::Result<Box<dyn Any + Send + Sync>>;

/// Sends commands, runs queries and publishes events: the application's entry point.
///
/// Built by [`crate::App::builder`]; cheap to clone. The mediator routes messages and
/// nothing else: sagas ([`Mediator::sagas`], in [`mod@crate::saga`]) and scheduled commands
/// ([`Mediator::schedule`], in [`crate::scheduling`]) are extensions the application
/// installs into it, and their methods are written beside them.
#[derive(Clone)]
pub struct Mediator {
    pub(super) rt: Arc<Runtime>,
}

impl Mediator {
    pub(crate) fn from_runtime(rt: Runtime) -> Self {
        Mediator { rt: Arc::new(rt) }
    }

    pub(crate) fn store(&self) -> &dyn EventStore {
        &*self.rt.store
    }

    /// The event store this mediator writes to.
    pub fn event_store(&self) -> Arc<dyn EventStore> {
        self.rt.store.clone()
    }

    pub(crate) fn loader(&self) -> &Loader {
        &self.rt.loader
    }

    pub(crate) fn cache(&self) -> Option<&AggregateCache> {
        self.rt.cache.as_ref()
    }

    /// Notified after each local commit that wrote events or outbox rows: projection
    /// workers and outbox relays wait on it instead of polling.
    pub fn commit_signal(&self) -> Arc<tokio::sync::Notify> {
        self.rt.committed.clone()
    }

    /// The command registered under `name` for dispatch by name.
    pub(crate) fn named_command(&self, name: &str) -> Option<NamedCommand> {
        self.rt.commands_by_name.get(name).copied()
    }

    /// The stored names of every command this program can send by name (sorted): every
    /// `#[command]` type, and those registered with `AppBuilder::schedulable`.
    pub fn command_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.rt.commands_by_name.keys().copied()
    }

    /// Sends a command known only by its stored name (its `Command::NAME`), with its
    /// payload as JSON, as [`Mediator::send_with`] would send the decoded command; the
    /// reply is the handler's response, boxed (downcast it to the command's
    /// `Response`). This is how scheduled commands are sent, and how a broker, an HTTP
    /// endpoint or a CLI sends what it received.
    ///
    /// A name no type registers is [`Error::UnknownMessage`]; a payload that does not
    /// decode (or a command type that is not `Deserialize`) is [`Error::Decode`].
    ///
    /// ```rust,standalone_crate
    /// # use cqrs_ddd::prelude::*;
    /// #[command(response = u64)]
    /// #[derive(Serialize, Deserialize)]
    /// pub struct Double { pub n: u64 }
    ///
    /// #[command_handler]
    /// async fn double(cmd: Double, _ctx: &mut CommandContext) -> Result<u64> {
    ///     Ok(cmd.n * 2)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cqrs_ddd::Result<()> {
    /// let app = App::builder().build()?;
    /// let reply = app.dispatch_by_name("Double", r#"{"n": 21}"#, None).await?;
    /// assert_eq!(reply.downcast_ref::<u64>(), Some(&42));
    ///
    /// let err = app.dispatch_by_name("Triple", "{}", None).await.unwrap_err();
    /// assert!(matches!(err, Error::UnknownMessage { .. }), "{err}");
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_by_name(&self, name: &str, payload: &str, metadata: Option<Metadata>) -> Result<Reply> {
        self.send_by_name(name, payload, SendOptions { metadata, idempotency_key: None }).await
    }

    /// [`Mediator::dispatch_by_name`], sent at most once per `key` (see
    /// [`Mediator::send_idempotent`]).
    pub async fn dispatch_by_name_idempotent(
        &self,
        name: &str,
        payload: &str,
        key: Uuid,
        metadata: Option<Metadata>,
    ) -> Result<Reply> {
        self.send_by_name(name, payload, SendOptions { metadata, idempotency_key: Some(key) }).await
    }

    async fn send_by_name(&self, name: &str, payload: &str, options: SendOptions) -> Result<Reply> {
        let Some(command) = self.named_command(name) else {
            return Err(Error::UnknownMessage { kind: "command", name: name.to_owned() });
        };
        (command.dispatch)(self, payload, options).await
    }

    /// The aggregate cache, when one is configured.
    pub fn aggregate_cache(&self) -> Option<&AggregateCache> {
        self.rt.cache.as_ref()
    }

    /// The extension of type `T` the application installed (see [`Extensions`]).
    pub(crate) fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.rt.extensions.get::<T>()
    }

    /// The broker configured with [`crate::AppBuilder::bus`].
    pub fn bus(&self) -> Option<Arc<dyn crate::broker::Bus>> {
        self.extension::<Arc<dyn crate::broker::Bus>>().cloned()
    }

    /// Feeds this program's `#[event_handler(async)]`s and sagas from the configured
    /// bus until `shutdown` ([`crate::broker::Bus::consume`]); [`Error::NoBus`] without one.
    pub async fn consume(
        &self,
        options: crate::broker::ConsumerOptions,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let bus = self.bus().ok_or(Error::NoBus)?;
        bus.consume(self.clone(), options, Box::pin(shutdown)).await
    }

    /// Whether root aggregate commands are retried after a version conflict.
    pub(crate) fn retries_conflicts(&self) -> bool {
        self.rt.retry.max_retries > 0
    }

    /// How command `name` retries a transient failure.
    pub(crate) fn transient_retry(&self, name: &str) -> crate::cqrs::TransientRetry {
        // Most applications set no policy per command: no name to hash on every send.
        if self.rt.transient_for.is_empty() {
            return self.rt.transient;
        }
        self.rt.transient_for.get(name).copied().unwrap_or(self.rt.transient)
    }

    pub(crate) fn dep<T: Send + Sync + 'static>(&self, needed_by: &'static str) -> Result<Dep<T>> {
        self.rt.deps.get::<T>(needed_by)
    }

    /// Sends a command to its one handler. A root command runs in its own unit of work;
    /// sent from inside another command's handler, it joins that unit of work.
    pub async fn send<C: CommandHandler>(&self, cmd: C) -> Result<C::Response> {
        self.send_with(cmd, None).await
    }

    /// Sends a command with metadata (correlation id, tenant, principal, headers).
    pub async fn send_with<C: CommandHandler>(&self, cmd: C, metadata: Option<Metadata>) -> Result<C::Response> {
        self.send_root(cmd, metadata, None).await
    }

    /// Sends a command at most once per `key`: the key is committed with the command's
    /// unit of work (even when it writes nothing else), and a later send with the same
    /// key fails with [`Error::AlreadyProcessed`] having written nothing. Sagas and the
    /// scheduler send this way, so a command re-sent after a crash is not applied twice.
    ///
    /// From inside another command's handler, the command joins that unit of work and
    /// the key is not recorded.
    pub async fn send_idempotent<C: CommandHandler>(
        &self,
        cmd: C,
        key: Uuid,
        metadata: Option<Metadata>,
    ) -> Result<C::Response> {
        self.send_root(cmd, metadata, Some(key)).await
    }

    pub(crate) async fn send_root<C: CommandHandler>(
        &self,
        cmd: C,
        metadata: Option<Metadata>,
        idempotency_key: Option<Uuid>,
    ) -> Result<C::Response> {
        self.send_logging_undo(cmd, metadata, idempotency_key, None).await
    }

    /// [`Mediator::send_root`] that commits `undo` (an undo log entry) with the command's
    /// events: in its own unit of work, or, sent from inside a handler, in the one it
    /// joins once the command succeeded there.
    pub(crate) async fn send_logging_undo<C: CommandHandler>(
        &self,
        cmd: C,
        metadata: Option<Metadata>,
        idempotency_key: Option<Uuid>,
        // Boxed: an entry is large, and every `send` future would carry the room for it.
        undo: Option<Box<UndoLogEntry>>,
    ) -> Result<C::Response> {
        if let Some(uow) = UnitOfWork::current() {
            let request = RequestContext::for_nested(metadata.as_ref())?;
            let response = self.send_nested(cmd, uow.clone(), request).await?;
            if let Some(entry) = undo {
                uow.log_undo(*entry)?;
            }
            return Ok(response);
        }
        cmd.validate()?;
        let request = RequestContext::for_root(metadata.as_ref())?;
        // A command retried after an outage is keyed, so a retry cannot apply it twice.
        let idempotency_key =
            idempotency_key.or_else(|| self.transient_retry(C::NAME).retries().then(crate::domain::new_id));
        if self.rt.middleware.is_empty() {
            return Root::new(self.clone(), request, idempotency_key).logging_undo(undo).run(cmd).await;
        }
        let root = Root::new(self.clone(), request.clone(), idempotency_key).logging_undo(undo);
        let msg = message(MessageKind::Command, C::NAME, request, false, cmd);
        let terminal = Box::new(move |msg: Message| -> BoxFuture<'_, Result<Reply>> {
            Box::pin(async move {
                let cmd = msg.into_payload::<C>()?;
                let r = root.run(cmd).await?;
                Ok(Box::new(r) as Reply)
            })
        });
        downcast_reply::<C::Response>(Next::new(&self.rt.middleware, terminal).run(msg).await, C::NAME)
    }

    pub(crate) async fn send_nested<C: CommandHandler>(
        &self,
        cmd: C,
        uow: UnitOfWork,
        request: RequestContext,
    ) -> Result<C::Response> {
        cmd.validate()?;
        let mut ctx = CommandContext::new(self.clone(), uow, request.clone(), C::NAME);
        if self.rt.middleware.is_empty() {
            return cmd.handle(&mut ctx).await;
        }
        let msg = message(MessageKind::Command, C::NAME, request, true, cmd);
        let ctx = &mut ctx;
        let terminal = Box::new(move |msg: Message| -> BoxFuture<'_, Result<Reply>> {
            Box::pin(async move {
                let cmd = msg.into_payload::<C>()?;
                let r = cmd.handle(ctx).await?;
                Ok(Box::new(r) as Reply)
            })
        });
        downcast_reply::<C::Response>(Next::new(&self.rt.middleware, terminal).run(msg).await, C::NAME)
    }

    /// Sends a command to a handler registered by hand (`AppBuilder::command_handler`) or
    /// by a macro, looked up at run time: [`Error::NoHandler`] when there is none.
    pub async fn dispatch<C: Command>(&self, cmd: C) -> Result<C::Response> {
        let reply = self.dispatch_erased(TypeId::of::<C>(), C::NAME, Box::new(cmd), SendOptions::default()).await;
        downcast_reply::<C::Response>(reply, C::NAME)
    }

    /// [`Mediator::dispatch`] of a command already boxed: `payload` is a value of the
    /// type `type_id`.
    pub(crate) async fn dispatch_erased(
        &self,
        type_id: TypeId,
        name: &'static str,
        payload: Box<dyn Any + Send>,
        options: SendOptions,
    ) -> Result<Reply> {
        let handler = self.rt.dyn_commands.get(&type_id).cloned().ok_or(Error::NoHandler { kind: "command", name })?;
        let nested = UnitOfWork::current();
        let request = match &nested {
            Some(_) => RequestContext::for_nested(options.metadata.as_ref())?,
            None => RequestContext::for_root(options.metadata.as_ref())?,
        };
        let root = Root::new(self.clone(), request.clone(), options.idempotency_key);
        let msg = Message { kind: MessageKind::Command, name, type_id, nested: nested.is_some(), request, payload };
        let terminal = Box::new(move |msg: Message| -> BoxFuture<'_, Result<Reply>> {
            Box::pin(async move {
                let name = msg.name;
                if let Some(uow) = nested {
                    let mut ctx = CommandContext::new(root.mediator().clone(), uow, root.request().clone(), name);
                    return handler.call(msg.payload, &mut ctx).await;
                }
                let (uow, mut ctx) = root.begin(name);
                let result = uow.enter(root.request().clone(), handler.call(msg.payload, &mut ctx)).await;
                root.finish(&uow, result).await
            })
        });
        Next::new(&self.rt.middleware, terminal).run(msg).await
    }

    /// Runs a query on its one handler (no unit of work).
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        query.validate()?;
        let request = RequestContext::current().unwrap_or_default();
        let ctx = QueryContext::new(self.clone(), request.clone(), Q::NAME);
        if self.rt.middleware.is_empty() {
            return query.handle(&ctx).await;
        }
        let msg = message(MessageKind::Query, Q::NAME, request, false, query);
        let ctx = &ctx;
        let terminal = Box::new(move |msg: Message| -> BoxFuture<'_, Result<Reply>> {
            Box::pin(async move {
                let q = msg.into_payload::<Q>()?;
                let r = q.handle(ctx).await?;
                Ok(Box::new(r) as Reply)
            })
        });
        downcast_reply::<Q::Response>(Next::new(&self.rt.middleware, terminal).run(msg).await, Q::NAME)
    }

    /// Delivers an event to every handler registered for its type, in order. Every
    /// handler runs; if some fail, the first error is returned and the others logged.
    pub async fn publish<E: Event>(&self, envelope: &Envelope<E>) -> Result<()> {
        let mut first = None;
        for (name, result) in self.dispatch_event(TypeId::of::<E>(), envelope).await {
            if let Err(e) = result {
                tracing::error!(handler = name, event = E::NAME, error = %e, "event handler failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Loads a committed aggregate; [`Error::NotFound`] when it has no events.
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A>> {
        let request = RequestContext::current().unwrap_or_default();
        self.load_in(id, &request).await
    }

    pub(crate) async fn load_in<A: Aggregate>(&self, id: &A::Id, request: &RequestContext) -> Result<Loaded<A>> {
        let key = StreamKey::new(A::TYPE, id.to_string()).with_tenant(request.tenant_id.clone());
        self.rt.loader.load::<A>(self.store(), &key).await?.ok_or_else(|| Error::NotFound { stream: key.to_string() })
    }

    pub(super) async fn dispatch_event(
        &self,
        type_id: TypeId,
        envelope: &(dyn Any + Send + Sync),
    ) -> Vec<(&'static str, Result<()>)> {
        let Some(handlers) = self.rt.event_handlers.get(&type_id) else {
            return Vec::new();
        };
        let ctx = EventContext::new(self.clone());
        let mut results = Vec::with_capacity(handlers.len());
        for h in handlers {
            results.push((h.name, h.handler.call(envelope, &ctx).await));
        }
        results
    }
}

pub(crate) fn downcast_reply<R: 'static>(reply: Result<Reply>, name: &'static str) -> Result<R> {
    reply?.downcast::<R>().map(|b| *b).map_err(|_| {
        Error::handler(format!("a middleware replaced the reply to `{name}` with a value of another type"))
    })
}

fn message<T: Send + 'static>(
    kind: MessageKind,
    name: &'static str,
    request: RequestContext,
    nested: bool,
    payload: T,
) -> Message {
    Message { kind, name, type_id: TypeId::of::<T>(), nested, request, payload: Box::new(payload) }
}
