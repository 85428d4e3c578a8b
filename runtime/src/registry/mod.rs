//! Registrations collected through `inventory`, and `App::build()`, which checks them.
//!
//! The macros submit one registration per event, aggregate, command, query and event
//! handler. These back the run-time checks of [`AppBuilder::build`]; what can be checked
//! at compile time (a missing `#[apply]`, a command without handler) never gets here.
//! They also back dispatch by name: every `#[command]` registers its stored name and
//! how to send it decoded from JSON ([`Mediator::dispatch_by_name`]).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::cqrs::by_name::DispatchJson;
use crate::cqrs::mediator::{ErasedCommandHandler, ErasedEventHandler, EventHandlerEntry, NamedCommand, Runtime};
use crate::cqrs::{
    Command, CommandContext, CommandHandler, Deps, DynCommandHandler, DynEventHandler, EventContext, Mediator,
    RetryPolicy,
};
use crate::domain::{Aggregate, Envelope, Event};
use crate::error::{BuildError, Error, Result};
use crate::es::{AggregateCache, Loader, SnapshotPolicy, UnknownEventPolicy, Upcasters};
use crate::memory::{MemorySagaStore, MemoryScheduleStore, MemoryStore};
use crate::middleware::{Middleware, Reply};
use crate::ports::{Clock, EventStore, SagaStore, ScheduleStore, SnapshotStore, SystemClock};
use crate::saga::SagaRuntime;
use crate::saga::{SagaOptions, SagaSendFn};

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
}

/// A command sendable by name, resolved.
struct NamedRegistration {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    dispatch: DispatchJson,
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

inventory::collect!(SagaRegistration);
inventory::collect!(EventRegistration);
inventory::collect!(AggregateRegistration);
inventory::collect!(CommandRegistration);
inventory::collect!(CommandTypeRegistration);
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

struct StaticCommand(for<'a> fn(Box<dyn Any + Send>, &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>>);

impl ErasedCommandHandler for StaticCommand {
    fn call<'a>(&'a self, cmd: Box<dyn Any + Send>, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        (self.0)(cmd, ctx)
    }
}

struct HandCommand<C, H>(H, PhantomData<fn(C)>);

impl<C: Command, H: DynCommandHandler<C>> ErasedCommandHandler for HandCommand<C, H> {
    fn call<'a>(&'a self, cmd: Box<dyn Any + Send>, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            let cmd = cmd
                .downcast::<C>()
                .map_err(|_| Error::handler(format!("handler of `{}` received another message type", C::NAME)))?;
            let r = self.0.handle(*cmd, ctx).await?;
            Ok(Box::new(r) as Reply)
        })
    }
}

struct StaticEvent(for<'a> fn(&'a (dyn Any + Send + Sync), &'a EventContext) -> BoxFuture<'a, Result<()>>);

impl ErasedEventHandler for StaticEvent {
    fn call<'a>(&'a self, envelope: &'a (dyn Any + Send + Sync), ctx: &'a EventContext) -> BoxFuture<'a, Result<()>> {
        (self.0)(envelope, ctx)
    }
}

struct HandEvent<E, H>(H, PhantomData<fn(E)>);

impl<E: Event, H: DynEventHandler<E>> ErasedEventHandler for HandEvent<E, H> {
    fn call<'a>(&'a self, envelope: &'a (dyn Any + Send + Sync), ctx: &'a EventContext) -> BoxFuture<'a, Result<()>> {
        match envelope.downcast_ref::<Envelope<E>>() {
            Some(env) => self.0.handle(env, ctx),
            None => {
                Box::pin(async { Err(Error::handler(format!("handler of `{}` received another event type", E::NAME))) })
            }
        }
    }
}

/// The entry point: `App::builder()`.
pub struct App;

impl App {
    /// Starts configuring an application.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }
}

struct HandRegistered {
    message: &'static str,
    message_type: &'static str,
    handler_type: TypeId,
    handler_name: &'static str,
}

/// Configures the store, services, middleware and hand-registered handlers, then
/// verifies everything in [`AppBuilder::build`].
#[derive(Default)]
pub struct AppBuilder {
    store: Option<Arc<dyn EventStore>>,
    deps: Deps,
    middleware: Vec<Arc<dyn Middleware>>,
    commands: HashMap<TypeId, (HandRegistered, Arc<dyn ErasedCommandHandler>)>,
    event_handlers: Vec<(TypeId, &'static str, TypeId, Arc<dyn ErasedEventHandler>)>,
    retry: RetryPolicy,
    problems: Vec<String>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    policies: HashMap<&'static str, SnapshotPolicy>,
    cache: Option<usize>,
    unknown: UnknownEventPolicy,
    saga_store: Option<Arc<dyn SagaStore>>,
    schedule_store: Option<Arc<dyn ScheduleStore>>,
    clock: Option<Arc<dyn Clock>>,
    saga_options: SagaOptions,
    named_commands: Vec<NamedRegistration>,
    hand_sagas: Vec<SagaRegistration>,
}

impl AppBuilder {
    /// The event store (default: a fresh [`MemoryStore`]).
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The event store, already shared.
    pub fn event_store_arc(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Provides a value to handlers that take `Dep<T>`.
    pub fn provide<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.deps.insert(Arc::new(value));
        self
    }

    /// Provides a shared value to handlers that take `Dep<T>`.
    pub fn provide_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.deps.insert(value);
        self
    }

    /// Adds a middleware; the chain is ordered by [`Middleware::priority`], lower outer.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// How root aggregate commands are retried on a version conflict.
    pub fn retry_on_conflict(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Where snapshots are kept; set a [`SnapshotPolicy`] per aggregate with
    /// [`AppBuilder::snapshot`].
    pub fn snapshot_store(mut self, store: impl SnapshotStore) -> Self {
        self.snapshots = Some(Arc::new(store));
        self
    }

    /// Where snapshots are kept, already shared.
    pub fn snapshot_store_arc(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(store);
        self
    }

    /// When to snapshot aggregate `A` (loading then starts from the newest snapshot).
    pub fn snapshot<A: Aggregate>(mut self, policy: SnapshotPolicy) -> Self {
        self.policies.insert(A::TYPE, policy);
        self
    }

    /// Keeps up to `capacity` loaded aggregates in process, so a command on a hot
    /// aggregate reads nothing (see [`AggregateCache`]).
    pub fn aggregate_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(capacity);
        self
    }

    /// What loading does with an event type the aggregate does not know (default: fail).
    pub fn unknown_events(mut self, policy: UnknownEventPolicy) -> Self {
        self.unknown = policy;
        self
    }

    /// Where saga instances are kept (default: in memory, when the event store is the
    /// default in-memory one too).
    pub fn saga_store(mut self, store: impl SagaStore) -> Self {
        self.saga_store = Some(Arc::new(store));
        self
    }

    /// Where scheduled commands and saga deadlines wait (default: in memory, when the
    /// event store is the default in-memory one too).
    pub fn schedule_store(mut self, store: impl ScheduleStore) -> Self {
        self.schedule_store = Some(Arc::new(store));
        self
    }

    /// Keeps saga instances and scheduled commands in `store` (a database adapter
    /// implements both).
    pub fn sagas_on<S: SagaStore + ScheduleStore + Clone>(self, store: S) -> Self {
        self.saga_store(store.clone()).schedule_store(store)
    }

    /// Registers a saga written by hand (implementing [`crate::saga::Saga`] without
    /// `#[saga]`), so that its stored commands can be sent again after a restart.
    /// Deliver its events with `Mediator::sagas().handle::<S, E>(..)`.
    pub fn saga<S: crate::saga::Saga>(mut self) -> Self {
        self.hand_sagas.push(SagaRegistration { name: S::NAME, type_name: std::any::type_name::<S>, send: S::send });
        self
    }

    /// How sagas send and retry their commands.
    pub fn saga_options(mut self, options: SagaOptions) -> Self {
        self.saga_options = options;
        self
    }

    /// The clock of saga timeouts, schedules and retries (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Makes a command that implements [`Command`] by hand (without `#[command]`)
    /// sendable by name, so it can be scheduled ([`Mediator::schedule`]) and sent by
    /// [`Mediator::dispatch_by_name`]. Every `#[command]` type registers itself: it
    /// needs no call (one is harmless).
    pub fn schedulable<C>(mut self) -> Self
    where
        C: crate::cqrs::CommandHandler + serde::de::DeserializeOwned,
    {
        self.named_commands.push(NamedRegistration {
            name: C::NAME,
            type_id: TypeId::of::<C>(),
            type_name: std::any::type_name::<C>(),
            dispatch: crate::cqrs::by_name::via_handler::<C>,
        });
        self
    }

    /// Registers a command handler by hand, reached with `Mediator::dispatch`.
    /// Registering the same handler type twice is harmless; a different second handler
    /// for one command is reported by `build()`.
    pub fn command_handler<C: Command, H: DynCommandHandler<C>>(mut self, handler: H) -> Self {
        let reg = HandRegistered {
            message: C::NAME,
            message_type: std::any::type_name::<C>(),
            handler_type: TypeId::of::<H>(),
            handler_name: std::any::type_name::<H>(),
        };
        match self.commands.get(&TypeId::of::<C>()) {
            Some((existing, _)) if existing.handler_type == reg.handler_type => {}
            Some((existing, _)) => self.problems.push(format!(
                "command `{}` has two handlers: `{}` and `{}`; keep one",
                C::NAME,
                existing.handler_name,
                reg.handler_name
            )),
            None => {
                self.commands.insert(TypeId::of::<C>(), (reg, Arc::new(HandCommand(handler, PhantomData))));
            }
        }
        self
    }

    /// Registers an event handler by hand; it runs after the `#[event_handler]`s of `E`.
    /// Registering the same handler type twice is harmless.
    pub fn event_handler<E: Event, H: DynEventHandler<E>>(mut self, handler: H) -> Self {
        let key = (TypeId::of::<E>(), TypeId::of::<H>());
        if !self.event_handlers.iter().any(|(e, _, h, _)| (*e, *h) == key) {
            self.event_handlers.push((
                key.0,
                std::any::type_name::<H>(),
                key.1,
                Arc::new(HandEvent(handler, PhantomData)),
            ));
        }
        self
    }

    /// Verifies the registries and builds the mediator. Every problem found is listed in
    /// one [`Error::Build`]: duplicate event, command or aggregate names (two command
    /// types with one stored name could not be told apart when sent by name), handlers whose
    /// `Dep<T>` was never provided, handlers for types that are not registered, and
    /// commands with two handlers.
    pub fn build(self) -> Result<Mediator> {
        let AppBuilder {
            store,
            deps,
            mut middleware,
            commands,
            event_handlers,
            retry,
            mut problems,
            snapshots,
            policies,
            cache,
            unknown,
            saga_store,
            schedule_store,
            clock,
            saga_options,
            named_commands,
            hand_sagas,
        } = self;

        // Events: one type per stable name.
        let mut events: BTreeMap<&str, Vec<&EventRegistration>> = BTreeMap::new();
        for e in inventory::iter::<EventRegistration> {
            events.entry(e.name).or_default().push(e);
        }
        let mut event_types = HashSet::new();
        for (name, regs) in &events {
            let mut types: Vec<&str> = regs.iter().map(|r| (r.type_name)()).collect();
            types.sort_unstable();
            types.dedup();
            if types.len() > 1 {
                problems.push(format!(
                    "event name `{name}` is used by {}; give each a unique `#[event(name = \"..\")]`",
                    join(&types)
                ));
            }
            event_types.extend(regs.iter().map(|r| (r.type_id)()));
        }

        // Aggregates: one type per stream type, and only registered events.
        let mut aggregates: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for a in inventory::iter::<AggregateRegistration> {
            aggregates.entry(a.name).or_default().push((a.type_name)());
            for e in a.events {
                if !events.contains_key(e) {
                    problems.push(format!("aggregate `{}` lists event `{e}`, which is not registered", a.name));
                }
            }
        }
        for (name, types) in &mut aggregates {
            types.sort_unstable();
            types.dedup();
            if types.len() > 1 {
                problems.push(format!(
                    "aggregate name `{name}` is used by {}; give each a unique `#[aggregate(name = \"..\")]`",
                    join(types)
                ));
            }
        }

        // Commands: one handler each, unique names, dependencies provided.
        let mut named: Vec<NamedRegistration> = inventory::iter::<CommandTypeRegistration>
            .into_iter()
            .map(|c| NamedRegistration {
                name: c.name,
                type_id: (c.type_id)(),
                type_name: (c.type_name)(),
                dispatch: (c.dispatch)(),
            })
            .collect();
        named.extend(named_commands);
        let mut command_types: HashMap<TypeId, &str> = named.iter().map(|c| (c.type_id, c.type_name)).collect();
        let mut dyn_commands: HashMap<TypeId, Arc<dyn ErasedCommandHandler>> = HashMap::new();
        let mut command_names: BTreeMap<&str, HashSet<TypeId>> = BTreeMap::new();
        for c in &named {
            command_names.entry(c.name).or_default().insert(c.type_id);
        }
        let mut static_handlers: HashMap<TypeId, &str> = HashMap::new();
        for c in inventory::iter::<CommandRegistration> {
            let type_id = (c.type_id)();
            command_names.entry(c.name).or_default().insert(type_id);
            static_handlers.insert(type_id, c.handler);
            check_deps(&deps, c.handler, c.deps, &mut problems);
            dyn_commands.insert(type_id, Arc::new(StaticCommand(c.call)));
        }
        for (type_id, (reg, handler)) in commands {
            if let Some(existing) = static_handlers.get(&type_id) {
                problems.push(format!(
                    "command `{}` has two handlers: `{existing}` and `{}` (registered by hand); keep one",
                    reg.message, reg.handler_name
                ));
            } else {
                command_names.entry(reg.message).or_default().insert(type_id);
                command_types.entry(type_id).or_insert(reg.message_type);
                dyn_commands.insert(type_id, handler);
            }
        }
        for (name, types) in &command_names {
            if types.len() > 1 {
                let mut types: Vec<&str> = types
                    .iter()
                    .map(|t| command_types.get(t).copied().unwrap_or("a type without `#[command]`"))
                    .collect();
                types.sort_unstable();
                problems.push(format!(
                    "command name `{name}` is used by {}; give each a unique `#[command(name = \"..\")]`",
                    join(&types)
                ));
            }
        }
        let commands_by_name =
            named.into_iter().map(|c| (c.name, NamedCommand { type_id: c.type_id, dispatch: c.dispatch })).collect();

        // Queries: unique names, dependencies provided.
        let mut query_names: BTreeMap<&str, HashSet<TypeId>> = BTreeMap::new();
        for q in inventory::iter::<QueryRegistration> {
            query_names.entry(q.name).or_default().insert((q.type_id)());
            check_deps(&deps, q.handler, q.deps, &mut problems);
        }
        for (name, types) in &query_names {
            if types.len() > 1 {
                problems.push(format!(
                    "query name `{name}` is used by {} types; give each a unique `#[query(name = \"..\")]`",
                    types.len()
                ));
            }
        }

        // Event handlers: for registered events, dependencies provided; in a stable order.
        let mut statics: Vec<&EventHandlerRegistration> =
            inventory::iter::<EventHandlerRegistration>.into_iter().collect();
        statics.sort_by_key(|h| h.handler);
        let mut handlers: HashMap<TypeId, Vec<EventHandlerEntry>> = HashMap::new();
        let mut async_handlers: HashMap<TypeId, Vec<EventHandlerEntry>> = HashMap::new();
        for h in statics {
            let type_id = (h.event_type_id)();
            if !event_types.contains(&type_id) {
                problems.push(format!(
                    "event handler `{}` handles `{}`, which is not registered; mark it with `#[event]`",
                    h.handler, h.event_name
                ));
            }
            check_deps(&deps, h.handler, h.deps, &mut problems);
            let target = if h.asynchronous { &mut async_handlers } else { &mut handlers };
            target
                .entry(type_id)
                .or_default()
                .push(EventHandlerEntry { name: h.handler, handler: Arc::new(StaticEvent(h.call)) });
        }
        for (type_id, name, _, handler) in event_handlers {
            handlers.entry(type_id).or_default().push(EventHandlerEntry { name, handler });
        }

        // Upcasters: one per (event, from version), towards a version the event has.
        let upcasters = Upcasters::collect(&mut problems);
        let versions: HashMap<&str, u32> =
            events.iter().flat_map(|(n, regs)| regs.iter().map(move |r| (*n, r.version))).collect();
        for u in upcasters.iter() {
            match versions.get(u.event_type) {
                Some(&current) if u.to > current => problems.push(format!(
                    "upcaster `{}` turns `{}` into schema version {}, but the event is at version {current}",
                    u.name, u.event_type, u.to
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "upcaster `{}` is for event `{}`, which is not registered with `#[event]`",
                    u.name, u.event_type
                )),
            }
        }
        // Sagas: unique names; persisted where the events are.
        let mut saga_types: HashMap<&'static str, SagaSendFn> = HashMap::new();
        let mut saga_names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let statics = inventory::iter::<SagaRegistration>.into_iter().map(|s| (s.name, s.type_name, s.send));
        for (name, type_name, send) in statics.chain(hand_sagas.iter().map(|s| (s.name, s.type_name, s.send))) {
            saga_names.entry(name).or_default().push(type_name());
            saga_types.insert(name, send);
        }
        for (name, types) in &mut saga_names {
            types.sort_unstable();
            types.dedup();
            if types.len() > 1 {
                problems.push(format!(
                    "saga name `{name}` is used by {}; give each a unique `#[saga(name = \"..\")]`",
                    join(types)
                ));
            }
        }
        if !saga_types.is_empty() && store.is_some() && (saga_store.is_none() || schedule_store.is_none()) {
            problems.push(
                "sagas are registered and the event store is not the in-memory one, but saga instances or \
                 deadlines would be kept in memory; add `.sagas_on(store.clone())` (or `.saga_store(..)` and \
                 `.schedule_store(..)`)"
                    .to_owned(),
            );
        }
        if !policies.is_empty() && snapshots.is_none() {
            problems.push("snapshot policies are set but no snapshot store; add `.snapshot_store(..)`".to_owned());
        }

        if !problems.is_empty() {
            return Err(Error::Build(BuildError { problems }));
        }
        middleware.sort_by_key(|m| m.priority());
        Ok(Mediator::from_runtime(Runtime {
            store: store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            deps,
            middleware,
            event_handlers: handlers,
            dyn_commands,
            retry,
            loader: Loader { upcasters, unknown, snapshots, policies },
            cache: cache.map(AggregateCache::new),
            committed: Arc::default(),
            async_handlers,
            event_decoders: events.values().flatten().map(|r| (r.name, ((r.type_id)(), r.decode))).collect(),
            sagas: SagaRuntime {
                store: saga_store.unwrap_or_else(|| Arc::new(MemorySagaStore::new())),
                schedule: schedule_store.unwrap_or_else(|| Arc::new(MemoryScheduleStore::new())),
                clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
                options: saga_options,
                types: saga_types,
            },
            commands_by_name,
        }))
    }
}

fn check_deps(deps: &Deps, handler: &str, needed: &[DepKey], problems: &mut Vec<String>) {
    for d in needed {
        if !deps.contains((d.type_id)()) {
            problems.push(format!(
                "`{handler}` needs `Dep<{}>`, which was never provided; add `.provide(..)` to `App::builder()`",
                (d.type_name)()
            ));
        }
    }
}

fn join(items: &[&str]) -> String {
    items.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" and ")
}
