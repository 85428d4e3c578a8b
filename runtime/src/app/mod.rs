//! The application: [`App::builder`] configures it, [`AppBuilder::build`] verifies every
//! registration of the program against that configuration and builds the running
//! [`Mediator`].

mod build;
mod handlers;

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::cqrs::by_name::DispatchJson;
use crate::cqrs::mediator::{ErasedCommandHandler, ErasedEventHandler};
use crate::cqrs::{Command, Deps, DynCommandHandler, DynEventHandler, Mediator, RetryPolicy};
use crate::domain::{Aggregate, Event};
use crate::error::{BuildProblem, Result};
use crate::es::{SnapshotPolicy, UnknownEventPolicy};
use crate::middleware::Middleware;
use crate::ports::{Clock, EventStore, SagaStore, ScheduleStore, SnapshotStore};
use crate::registry::SagaRegistration;
use crate::saga::SagaOptions;
use handlers::{HandCommand, HandEvent};

/// A command sendable by name, resolved.
struct NamedRegistration {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    dispatch: DispatchJson,
    encode: crate::cqrs::catalog::EncodeReply,
    request_schema: crate::cqrs::catalog::SchemaFn,
    response_schema: crate::cqrs::catalog::SchemaFn,
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
    transient: crate::cqrs::TransientRetry,
    transient_for: HashMap<&'static str, crate::cqrs::TransientRetry>,
    problems: Vec<BuildProblem>,
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
    hand_saga_deadlines: Vec<(&'static str, crate::saga::SagaDeadlineFn)>,
    bus: Option<Arc<dyn crate::broker::Bus>>,
    read_models: Option<Arc<dyn crate::ports::ProjectionStore>>,
    outbox: Option<Arc<dyn crate::ports::Outbox>>,
    projections: Vec<crate::host::ProjectionPlan>,
    relay: Option<crate::outbox::RelayOptions>,
    consumer: Option<crate::broker::ConsumerOptions>,
    health: crate::health::HealthChecks,
    undo_window: Option<std::time::Duration>,
    hand_jobs: Vec<crate::registry::JobRegistration>,
    job_options: Option<crate::jobs::JobWorkerOptions>,
}

impl AppBuilder {
    /// The event store (default: a fresh [`MemoryStore`](crate::MemoryStore)).
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The event store, already shared.
    pub fn event_store_arc(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The document store of the read models, for query handlers
    /// ([`QueryContext::read_models`](crate::QueryContext::read_models)).
    pub fn read_models(self, store: impl crate::ports::ProjectionStore) -> Self {
        self.read_models_arc(Arc::new(store))
    }

    /// The document store of the read models, already shared.
    pub fn read_models_arc(mut self, store: Arc<dyn crate::ports::ProjectionStore>) -> Self {
        self.read_models = Some(store);
        self
    }

    /// A projection the [worker host](crate::host) runs, writing to the read-model store
    /// ([`AppBuilder::read_models`], else the event store's own, else in memory with the
    /// default in-memory event store); woken by local commits.
    pub fn projection<P: crate::Projection>(self, projection: P) -> Self {
        self.projection_with(projection, crate::projection::WorkerOptions::default())
    }

    /// [`AppBuilder::projection`] with its worker's options (partitions, batch size,
    /// error policy, one tenant).
    pub fn projection_with<P: crate::Projection>(
        mut self,
        projection: P,
        options: crate::projection::WorkerOptions,
    ) -> Self {
        self.projections.push(crate::host::ProjectionPlan::of(projection, options));
        self
    }

    /// The outbox the [worker host](crate::host) relays (default: the event store's own;
    /// every store of cqrs-ddd keeps one).
    pub fn outbox(mut self, outbox: impl crate::ports::Outbox) -> Self {
        self.outbox = Some(Arc::new(outbox));
        self
    }

    /// [`AppBuilder::outbox`], already shared.
    pub fn outbox_arc(mut self, outbox: Arc<dyn crate::ports::Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The options of the outbox relay the [worker host](crate::host) runs.
    pub fn relay_options(mut self, options: crate::outbox::RelayOptions) -> Self {
        self.relay = Some(options);
        self
    }

    /// The consumer group (and its retries) in which the [worker host](crate::host)
    /// consumes the bus (default: `ConsumerOptions::group("default")`).
    pub fn consumer(mut self, options: crate::broker::ConsumerOptions) -> Self {
        self.consumer = Some(options);
        self
    }

    /// Adds a check to [`Mediator::health`] (a cache, a lock backend, a service the
    /// handlers call); see [`crate::health::check_fn`].
    pub fn health_check(mut self, check: impl crate::health::HealthCheck) -> Self {
        self.health.checks.push(Arc::new(check));
        self
    }

    /// Where [`Mediator::health`]'s checks draw their lines.
    pub fn health_thresholds(mut self, thresholds: crate::health::HealthThresholds) -> Self {
        self.health.thresholds = thresholds;
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

    /// How root aggregate commands retry a transient failure (the store unreachable,
    /// a lost connection); see [`TransientRetry`](crate::cqrs::TransientRetry).
    pub fn retry_transient(mut self, policy: crate::cqrs::TransientRetry) -> Self {
        self.transient = policy;
        self
    }

    /// [`AppBuilder::retry_transient`] for command `C` only (over the application's).
    pub fn retry_transient_for<C: crate::cqrs::Command>(mut self, policy: crate::cqrs::TransientRetry) -> Self {
        self.transient_for.insert(C::NAME, policy);
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
    /// aggregate reads nothing (see [`AggregateCache`](crate::AggregateCache)).
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
        self.hand_saga_deadlines.push((S::NAME, crate::saga::on_deadline::<S>));
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

    /// How long after an event [`Mediator::undo`] may undo it, for event types without
    /// `#[event(undo_within = "..")]` of their own (default: no limit), measured on the
    /// application's [`clock`](AppBuilder::clock). See [`crate::undo`].
    pub fn undo_window(mut self, window: std::time::Duration) -> Self {
        self.undo_window = Some(window);
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
            encode: crate::cqrs::catalog::not_encodable::<C>,
            request_schema: crate::cqrs::catalog::no_schema,
            response_schema: crate::cqrs::catalog::no_schema,
        });
        self
    }

    /// Registers a background job type that implements [`Job`](crate::jobs::Job) by
    /// hand (without `#[job]`), so that it can be enqueued and run. Every `#[job]` type
    /// registers itself: it needs no call (one is harmless).
    pub fn job<J: crate::jobs::Job + crate::jobs::JobHandler>(mut self) -> Self {
        self.hand_jobs.push(crate::registry::JobRegistration {
            name: J::NAME,
            type_id: TypeId::of::<J>,
            type_name: std::any::type_name::<J>,
            run: crate::jobs::run_job::<J>,
        });
        self
    }

    /// How the [worker host](crate::host)'s job worker and sweeper work (concurrency,
    /// lease, heartbeat, backoff); [`JobWorker::new`](crate::jobs::JobWorker::new) takes
    /// them too.
    pub fn job_options(mut self, options: crate::jobs::JobWorkerOptions) -> Self {
        self.job_options = Some(options);
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
            Some((existing, _)) => self.problems.push(BuildProblem::DuplicateCommandHandler {
                command: C::NAME,
                first: existing.handler_name,
                second: reg.handler_name,
                first_by_macro: false,
            }),
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

    /// A message broker as the bus between processes (`cqrs-ddd-nats`,
    /// `cqrs-ddd-rabbitmq`): [`OutboxRelay::for_app`](crate::OutboxRelay::for_app)
    /// publishes to it, and [`Mediator::consume`](crate::Mediator::consume) feeds this
    /// program's async handlers and sagas from it. Without one, the relay delivers in
    /// this process ([`InProcessPublisher`](crate::InProcessPublisher)).
    pub fn bus(mut self, bus: impl crate::broker::Bus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// [`AppBuilder::bus`] of a shared bus.
    pub fn bus_arc(mut self, bus: Arc<dyn crate::broker::Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Verifies the registries and builds the mediator. Every problem found is listed in
    /// one [`Error::Build`](crate::Error::Build), each a [`BuildProblem`]: duplicate event,
    /// command, query, aggregate or saga names (two command types with one stored name
    /// could not be told apart when sent by name), handlers whose `Dep<T>` was never
    /// provided, handlers and upcasters for types that are not registered, commands with
    /// two handlers, sagas or snapshot policies without a store to keep them.
    pub fn build(self) -> Result<Mediator> {
        build::build(self)
    }
}
