//! Domain-Driven Design, CQRS and event sourcing for Rust, driven by procedural macros:
//! annotate plain structs, and the macros generate the event dispatch, the registries and
//! the repository glue, with wiring mistakes reported at compile time.
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::prelude::*;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum AccountError { #[error("amounts must be positive")] ZeroAmount }
//!
//! #[aggregate(id = String, events(Deposited), error = AccountError)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Account { balance: u64 }
//!
//! #[aggregate]
//! impl Account {
//!     #[handle(create_if_missing)]          // decide: pure, returns events
//!     fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
//!         if cmd.amount == 0 { return Err(AccountError::ZeroAmount) }
//!         Ok(vec![Deposited { amount: cmd.amount }.into()])
//!     }
//!     #[apply]                              // evolve: one per listed event
//!     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
//! }
//!
//! #[command(aggregate = Account)]           // routed by its `#[id]` field
//! pub struct Deposit { #[id] pub account: String, pub amount: u64 }
//!
//! #[query]
//! pub struct GetBalance { pub account: String }
//!
//! #[query_handler]
//! async fn balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
//!     Ok(ctx.load::<Account>(&q.account).await?.state.balance)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! let app = App::builder().build()?;        // in-memory store by default
//! app.send(Deposit { account: "a-1".into(), amount: 70 }).await?;
//! app.send(Deposit { account: "a-1".into(), amount: 30 }).await?;
//! assert_eq!(app.query(GetBalance { account: "a-1".into() }).await?, 100);
//!
//! let err = app.send(Deposit { account: "a-1".into(), amount: 0 }).await.unwrap_err();
//! assert!(matches!(err.domain_error::<AccountError>(), Some(AccountError::ZeroAmount)));
//! # Ok(())
//! # }
//! ```
//!
//! # Testing a domain
//!
//! Start with the test kits in [`testing`]: they run the code the macros generate, with
//! no store and no runtime. [`testing::AggregateFixture`] takes past events, sends a
//! command through the aggregate's `#[handle]` method (checking its creation policy and
//! that each event would store), applies what it decided, and lets the test check the
//! events or the typed error:
//!
//! ```rust,standalone_crate
//! # use cqrs_ddd::prelude::*;
//! # #[event]
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # pub struct Deposited { pub amount: u64 }
//! # #[derive(Debug, PartialEq, thiserror::Error)]
//! # pub enum AccountError { #[error("amounts must be positive")] ZeroAmount }
//! # #[aggregate(id = String, events(Deposited), error = AccountError)]
//! # #[derive(Debug, Default, Serialize, Deserialize)]
//! # pub struct Account { balance: u64 }
//! # #[aggregate]
//! # impl Account {
//! #     #[handle(create_if_missing)]
//! #     fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
//! #         if cmd.amount == 0 { return Err(AccountError::ZeroAmount) }
//! #         Ok(vec![Deposited { amount: cmd.amount }.into()])
//! #     }
//! #     #[apply]
//! #     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
//! # }
//! # #[command(aggregate = Account)]
//! # pub struct Deposit { #[id] pub account: String, pub amount: u64 }
//! use cqrs_ddd::testing::AggregateFixture;
//!
//! let mut account = AggregateFixture::<Account>::new().given([Deposited { amount: 70 }]);
//! account.when(Deposit { account: "a-1".into(), amount: 30 }).then_events(&["Deposited"]);
//! assert_eq!(account.events_of::<Deposited>(), [Deposited { amount: 30 }]);
//! account.when(Deposit { account: "a-1".into(), amount: 0 });
//! assert_eq!(account.then_error::<AccountError>(), &AccountError::ZeroAmount);
//! ```
//!
//! [`testing::ProjectionFixture`] feeds a projection events and answers its documents
//! and the queries that read them; [`testing::SagaFixture`] runs a saga's steps and
//! records the commands it would send. Then test the wiring through
//! [`App::builder()`](AppBuilder) on the in-memory stores, and the adapters against real
//! databases.
//!
//! # What the macros check at compile time
//!
//! | mistake | where the error points |
//! | --- | --- |
//! | an event in `events(..)` without an `#[apply]` method | the event in the list |
//! | `send` of a command nobody handles | the `send` call |
//! | two handlers for one command or query | the second handler |
//! | a command routed to an aggregate that has no `#[handle]` for it | `aggregate = ..` |
//! | a handler whose return type is not the command's `response` | the return type |
//! | an event type without `Serialize`/`Deserialize`, a saga state without `Default` | the type |
//! | a deadline scheduled with no `#[deadline]` method for its payload; a saga arming a deadline it does not declare | the value scheduled; the name armed |
//! | a handler taking `Dep<dyn Trait>` (take `Dep<Arc<dyn Trait>>`) | the parameter |
//! | `#[event(undo = C)]` without an [`undo::Undo`] impl, or with one that builds another command | the event type |
//! | an undo (or redo) command nobody handles | the impl's `type Command` |
//! | unknown, duplicate or malformed macro arguments (with a did-you-mean), a missing comma, wrong item kinds, generics | the offending tokens |
//!
//! What only the running program knows (two event types with one stored name, a
//! `Dep<T>` never provided, a handler for an unregistered event) is reported by
//! [`AppBuilder::build`] as one [`Error::Build`] listing every problem, each a
//! [`BuildProblem`] to match on.
//!
//! # The command path
//!
//! [`Mediator::send`] runs the command's one handler inside a [`UnitOfWork`]. For an
//! aggregate command the aggregate is loaded (replaying its stream, or reading its state
//! row when it is `state_stored`), its `#[handle]` method decides, the events are applied
//! and staged. The unit of work commits everything it staged (events of every stream,
//! state rows, outbox messages) in one [`ports::CommitBatch`], atomically, each stream at
//! its expected version: a concurrent writer gets [`Error::Conflict`], never a silent
//! overwrite. After the commit, `#[event_handler]`s run, then after-commit hooks, in
//! order; on any error nothing is written and no hook runs. A `send` from inside a handler
//! joins the outer unit of work. [`AppBuilder::retry_on_conflict`] makes root aggregate
//! commands reload and decide again on a conflict; [`AppBuilder::retry_transient`] (or
//! [`AppBuilder::retry_transient_for`] one command) does the same after a transient
//! failure, a store or broker out of reach, with exponential or fixed waits
//! ([`TransientRetry`]), under an idempotency key so that a commit whose answer was lost
//! is not applied twice. A state-stored aggregate may merge instead of deciding again:
//! `#[aggregate(state_stored, on_conflict = merge(..))]` merges its state with the one
//! the other writer stored (see [`conflict`]).
//!
//! `#[command(validate)]` and `#[query(validate)]` check a message with its
//! `#[derive(garde::Validate)]` rules before anything runs (root and nested sends,
//! messages by name): a refusal is one [`Error::Validation`] listing every failing field
//! ([`InvalidField`]: path and message), and nothing is written.
//!
//! Correlation id, causation id, tenant and principal travel in a task-local
//! [`RequestContext`]: taken from the command's [`Metadata`] (see [`Mediator::send_with`]),
//! else from the surrounding context, else fresh; every event records them, with the
//! command's id as causation id. With a tenant in context, streams are per tenant.
//!
//! # Tenancy
//!
//! The tenant of the [`RequestContext`] is an isolation boundary, the same on every store
//! (in memory, SQLite, PostgreSQL; one contract suite checks all three):
//!
//! - streams, state rows, snapshots, idempotency keys, projection documents, saga
//!   instances and scheduled command ids are kept per tenant: tenant B may use an id or
//!   a key tenant A uses, and never sees A's;
//! - readers of all events ([`ports::EventStore::read_all`]: projections, relays, sagas)
//!   read every tenant whatever scope they run in; [`ports::EventStore::read_tenant`]
//!   reads one. A projection writes each event's documents under that event's tenant,
//!   and [`ports::ProjectionStore::document`] inside a tenant's scope reads that tenant's;
//! - an empty tenant id (`Some("")`) is refused everywhere with [`TenantError::Empty`];
//! - inside a tenant's scope, a command whose [`Metadata`] names another tenant is
//!   refused with [`TenantError::CrossTenant`]; work that crosses tenants on purpose runs
//!   in [`RequestContext::system`].
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::{RequestContext, TenantError};
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Noted { pub text: String }
//! # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//! #[aggregate(id = String, events(Noted), error = Never)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Pad { notes: Vec<String> }
//! #[aggregate]
//! impl Pad {
//!     #[handle(create_if_missing)]
//!     fn note(&self, cmd: &Note) -> Result<Vec<PadEvent>, Never> { Ok(vec![Noted { text: cmd.text.clone() }.into()]) }
//!     #[apply]
//!     fn noted(&mut self, e: &Noted) { self.notes.push(e.text.clone()) }
//! }
//! #[command(aggregate = Pad)]
//! pub struct Note { #[id] pub pad: String, pub text: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! let app = App::builder().build()?;
//! let acme = RequestContext::new().with_tenant("acme");
//! acme.clone().scope(app.send(Note { pad: "p".into(), text: "acme's".into() })).await?;
//! // One id, two tenants, two aggregates.
//! RequestContext::new().with_tenant("globex").scope(app.send(Note { pad: "p".into(), text: "globex's".into() })).await?;
//! let notes = acme.clone().scope(app.load::<Pad>(&"p".to_owned())).await?.state.notes;
//! assert_eq!(notes, ["acme's"]);
//!
//! // Naming another tenant from inside acme's scope is refused...
//! let to_globex = Metadata { tenant_id: Some("globex".into()), ..Metadata::default() };
//! let err = acme.scope(app.send_with(Note { pad: "p".into(), text: "x".into() }, Some(to_globex.clone()))).await;
//! assert!(matches!(err, Err(Error::Tenant(TenantError::CrossTenant { .. }))));
//! // ...and allowed from a system scope.
//! RequestContext::system().scope(app.send_with(Note { pad: "p".into(), text: "ops".into() }, Some(to_globex))).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Loading: snapshots, upcasters, cache
//!
//! An event-sourced aggregate is rebuilt by streaming its events (bounded memory). With
//! a snapshot store and a [`SnapshotPolicy`] (`AppBuilder::snapshot::<A>(SnapshotPolicy::every(100))`)
//! loading starts from the newest snapshot; a snapshot that no longer deserializes is
//! ignored with a warning and the stream replayed. Stored payloads older than an event's
//! `version` go through the `#[upcaster]` chain (a missing step is [`Error::Upcast`],
//! naming type and versions). [`AppBuilder::aggregate_cache`] keeps loaded aggregates
//! in process, so a command on a hot aggregate reads nothing; the expected-version append
//! keeps that safe (a stale entry conflicts, is dropped, and the command reloads).
//!
//! # Projections and the outbox
//!
//! A `#[projection]` impl block with `#[on]` methods is run by a [`ProjectionWorker`]: it
//! reads all events from its checkpoint in batches and writes the read model (the JSON
//! document store of [`ProjectionTx::docs`], or your own tables through
//! [`ProjectionTx::connection`]) in the transaction that moves the checkpoint, so an event
//! is applied exactly once even across crashes. Leases keep one worker active per
//! partition; error policies are stop, retry, retry then dead-letter, and skip;
//! [`ProjectionWorker::status`], [`ProjectionWorker::rebuild`] and
//! [`ProjectionWorker::retry_dead_letter`] are the operations a CLI needs.
//!
//! Read models are queried with specifications ([`spec`]): `store.find("books", &query)`
//! and `store.count(..)` on any [`ports::ProjectionStore`] take a [`spec::QueryOptions`]
//! (filter, order, page, selected fields) and answer for the tenant in scope.
//! `#[derive(ReadModel)]` gives a read model typed fields (`Book::fields().status.eq("lent")`,
//! an operator that does not fit the field's type is a compile error), the allow-list of
//! HTTP filter strings and its indexes; see [`spec::ReadModel`].
//!
//! Every long-running loop (projection worker, outbox relay, scheduler, saga recovery,
//! job worker) survives transient failures such as a database restart: it retries with capped
//! exponential backoff and jitter ([`Backoff`]), reports a [`WorkerHealth`] (running, or
//! retrying since when, with the last error) that any task can read while it runs, and
//! returns only on shutdown or on an error retrying cannot heal; see [`worker`].
//!
//! Outbox messages (`CommandContext::outbox`, and the events of `#[event_handler(async)]`
//! handlers) commit with the command. An [`OutboxRelay`] claims them, hands them to a
//! [`ports::Publisher`] ([`outbox::InProcessPublisher`] for async handlers, or a broker:
//! see [`broker`] and [`AppBuilder::bus`]), retries with backoff and marks a message dead
//! after its last attempt; a stream's messages leave in order. Delivery is at least once
//! and the effect exactly once: each async handler runs in a unit of work of its own,
//! committed under an idempotency key of the event and the handler, so a redelivered
//! event changes nothing ([`Mediator::deliver`]).
//!
//! ```rust,standalone_crate
//! use std::sync::Arc;
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::{MemoryProjectionStore, MemoryStore, ProjectionWorker};
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposited { pub amount: u64 }
//!
//! pub struct Totals;
//!
//! #[projection(name = "totals")]
//! impl Totals {
//!     #[on]
//!     async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
//!         let amount = e.amount;
//!         tx.docs("totals").update(&e.header.stream_id, |t: &mut u64| *t += amount).await?;
//!         Ok(())
//!     }
//! }
//! # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//! # #[aggregate(id = String, events(Deposited), error = Never)]
//! # #[derive(Debug, Default, Serialize, Deserialize)]
//! # pub struct Account;
//! # #[aggregate]
//! # impl Account {
//! #     #[handle(create_if_missing)]
//! #     fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, Never> { Ok(vec![Deposited { amount: c.amount }.into()]) }
//! #     #[apply] fn deposited(&mut self, _: &Deposited) {}
//! # }
//! # #[command(aggregate = Account)]
//! # pub struct Deposit { #[id] pub account: String, pub amount: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cqrs_ddd::Result<()> {
//! let events = MemoryStore::new();
//! let read_models = MemoryProjectionStore::new();
//! let app = App::builder().event_store(events.clone()).build()?;
//! app.send(Deposit { account: "a".into(), amount: 5 }).await?;
//!
//! let worker = ProjectionWorker::new(Totals, Arc::new(events), Arc::new(read_models.clone()));
//! assert_eq!(worker.catch_up().await?, 1);     // a service would `worker.run(shutdown)`
//! use cqrs_ddd::ports::ProjectionStore;
//! assert_eq!(read_models.document("totals", "a").await?.unwrap().json, "5");
//! # Ok(()) }
//! ```
//!
//! # Running it: the worker host and health
//!
//! One call runs every background loop the wiring implies: `app.run(shutdown)` (or
//! [`Mediator::host`] to choose) starts the outbox relay when there are async handlers,
//! sagas or a bus, a consumer of the bus, a worker per projection registered with
//! [`AppBuilder::projection`] (woken by local commits), and saga recovery or the
//! scheduler, and the job worker and sweeper when there are `#[job]` types; when
//! `shutdown` completes, each finishes its round and `run` returns. The
//! event store supplies the outbox and the read models' document store (every store of
//! cqrs-ddd is both); [`AppBuilder::build`] refuses wiring that could not run (async
//! handlers without an outbox, projections without a document store). See [`host`].
//!
//! [`Mediator::health`] is readiness: the event store and the bus answer, each hosted
//! loop runs with a fresh heartbeat, projections within their lag, the outbox and the
//! schedule without dead rows, and the checks added with [`AppBuilder::health_check`];
//! [`Mediator::liveness`] says whether a loop stopped for good. See [`health`].
//!
//! Outside Rust, commands and queries are sent by name with JSON
//! ([`Mediator::send_json`], [`Mediator::query_json`], the catalogue
//! [`Mediator::messages`]; `cqrs-ddd-axum` serves them over HTTP). A command sent so
//! answers the position it committed, and [`Mediator::wait_for_position`] waits until the
//! read models a query reads (`#[query(reads = Projection)]`) have caught up with it:
//! read-your-writes across processes.
//!
//! # Deadlines
//!
//! An aggregate's `#[handle]` method that takes `&mut Deadlines<Self>` schedules or
//! cancels deadlines, stored with the command's events in one transaction (a refused or
//! conflicting command schedules nothing) and surviving restarts; each fires the
//! aggregate's `#[deadline]` method, decided and committed like a command, unless a
//! command cancelled it first. A saga's `#[deadline(after = "14d", ..)]` steps are armed
//! and disarmed by its steps and saved with its instance. The test kits move time:
//! [`testing::AggregateFixture::advance`], [`testing::SagaFixture::advance`]. See
//! [`mod@deadline`] and [`mod@saga`]; `examples/library` is a whole program.
//!
//! # Sagas and scheduled commands
//!
//! A `#[saga]` reacts to events with `#[step]` methods that send commands, compensate
//! them last-first on failure, run TCC transactions and suspend with timeouts; its
//! instances, with the commands they still have to send, are kept in a
//! [`ports::SagaStore`]. [`Mediator::schedule`] sends a command later through a
//! [`scheduling::Scheduler`]. See [`mod@saga`] for the syntax and the guarantees, and
//! [`testing::SagaFixture`] to test a saga without a database. On a database, give the
//! builder the adapter: `App::builder().event_store(db.clone()).sagas_on(db)`.
//!
//! # Undo and redo
//!
//! An event type names the command that undoes it, `#[event(undo = RevokeGrant)]`, and
//! builds it from the event with an [`undo::Undo`] impl (`None`: this one cannot be
//! undone). [`Mediator::undo`] sends that command for one stored event of the current
//! tenant, at most once: an undo log entry commits with the command's events, so a second
//! undo, or a concurrent one, is refused with [`undo::UndoError::AlreadyUndone`]. An undo
//! window (`undo_within = "1h"`, or [`AppBuilder::undo_window`]) is measured on the
//! application's clock; `redo = GrantAgain` with [`undo::Redo`] takes an undo back with
//! [`Mediator::redo`]. See [`undo`].
//! # Background jobs
//!
//! A `#[job]` type with a [`jobs::JobHandler`] impl is work that runs outside the
//! request: [`CommandContext::enqueue`] stores it with the command's events (a command
//! that fails enqueues nothing), [`Mediator::enqueue`] on its own. The host's
//! [`jobs::JobWorker`] claims due jobs under a lease renewed by heartbeats and runs each
//! in its request's tenant, correlation and principal; a job reports progress
//! ([`jobs::JobContext::progress`]), stops at its next check when an operator cancels it,
//! is retried with exponential backoff up to its attempts, and is put back by the
//! [`jobs::JobSweeper`] when its worker dies. Operators list, count, cancel, retry and
//! purge jobs through [`admin::Admin`] (and the CLI's `jobs`). See [`jobs`].
//!
//! # Locks and caching
//!
//! [`lock`] takes leases on resources (TTL, heartbeat, fencing tokens, read/write modes)
//! through a [`lock::LockBackend`] (in memory here; Redis, Redlock and PostgreSQL
//! advisory locks in the adapters), several at once without deadlock and re-entered by
//! the root command that holds them; `#[command(lock = [from, to])]` with
//! [`lock::LockMiddleware`] holds a command's resources around its unit of work.
//! [`cache`] is a port for caches whose keys carry the tenant by construction.
//!
//! # Dispatch by name
//!
//! Every `#[command]` registers its stored name (`name = ".."`, default the type name)
//! with a function that decodes it from JSON and sends it, so
//! [`Mediator::dispatch_by_name`] sends a command known only by name, in a program that
//! never mentions its type. The scheduler sends due commands this way: a command
//! scheduled before a restart is sent by the new process. A name no type registers is
//! [`Error::UnknownMessage`]; two command types with one name are a [`AppBuilder::build`]
//! problem. A command must derive `Deserialize` to be sent by name (else
//! [`Error::Decode`] names the type); one implementing `Command` by hand is registered
//! with [`AppBuilder::schedulable`].
//!
//! # Metrics and traces
//!
//! Counters, gauges and histograms go through the `metrics` facade, so any exporter
//! records them (`cqrs-ddd-axum` serves them to Prometheus); [`metrics`] is the table of
//! every name, kind and label. [`TracingMiddleware`] opens a `cqrs_ddd.command` or
//! `cqrs_ddd.query` span per message, and [`Mediator::deliver`] a `cqrs_ddd.deliver` span
//! per delivered event. With a [`telemetry::Propagator`] installed (`cqrs-ddd-axum`'s
//! `otel` module installs one), outbox rows carry the W3C `traceparent` of the span that
//! committed them and each delivery span is that span's child, so one trace runs from the
//! request through the outbox and the brokers to the async handlers.
//!
//! # Cargo features
//!
//! | feature | default | what it gives |
//! | --- | --- | --- |
//! | `macros` | yes | re-exports `#[event]`, `#[aggregate]`, `#[command]`, `#[query]`, `#[command_handler]`, `#[query_handler]`, `#[event_handler]`, `#[upcaster]`, `#[projection]`, `#[saga]`, `#[job]`, the method markers `#[handle]`, `#[apply]`, `#[deadline]`, `#[step]`, `#[on]`, `#[reset]`, and `#[derive(ReadModel)]` ([`spec::ReadModel`]) |
//! | `geo` | no | the geometry operators of specifications in memory ([`spec`], "Geometry"), through the `geo` crate |
//! | `openapi` | no | the JSON schemas of commands and queries deriving `utoipa::ToSchema` in [`Mediator::messages`] (`cqrs-ddd-axum` turns it on) |
//!
//! The test kit ([`testing`]) is always compiled: it has no dependencies of its own.
//!
//! # Caveats
//!
//! - Handlers register through `inventory` when their crate is linked. A crate holding
//!   only handlers must be referenced from the binary (`use my_handlers as _;`).
//! - A command's handler lives in the crate that defines the command (the orphan rule);
//!   that is what lets a second handler be a compile error.
//! - Event handlers run after the commit, in process; a failing one is logged (and
//!   counted in `cqrs_ddd_event_handler_failures_total`) and does not undo the command.

extern crate self as cqrs_ddd;

pub mod admin;
mod app;
mod backoff;
pub mod broker;
pub mod cache;
pub mod conflict;
pub mod context;
pub mod cqrs;
pub mod deadline;
pub mod domain;
mod error;
pub mod es;
pub mod health;
pub mod host;
pub mod jobs;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod middleware;
pub mod outbox;
pub mod ports;
pub mod projection;
mod registry;
pub mod saga;
pub mod scheduling;
pub mod spec;
pub mod telemetry;
pub mod testing;
pub mod undo;
pub mod uow;
pub mod worker;

pub use app::{App, AppBuilder};
pub use backoff::{Backoff, Growth};
pub use context::RequestContext;
pub use cqrs::{
    AggregateCommand, Command, CommandContext, CommandHandler, Dep, DynCommandHandler, DynEventHandler, EventContext,
    Mediator, Query, QueryContext, QueryHandler, ReadModels, RetryPolicy, TransientRetry,
};
pub use domain::{
    Aggregate, AggregateEvent, AggregateId, Apply, CreationPolicy, Envelope, Event, EventHeader, EventOf, Handle,
    Metadata, Payload, Storage, new_correlation_id, new_id,
};
pub use error::{BuildError, BuildProblem, DomainError, Error, InvalidField, Result, TenantError};
pub use es::{AggregateCache, Loaded, SnapshotPolicy, UnknownEventPolicy};
pub use memory::{MemoryProjectionStore, MemorySnapshotStore, MemoryStore};
pub use middleware::{
    Message, MessageKind, MetricsMiddleware, Middleware, Next, Reply, TracingMiddleware, ValidationMiddleware,
};
pub use outbox::{InProcessPublisher, OutboxRelay, RelayOptions, RelayStatus};
pub use projection::{Projection, ProjectionTx, ProjectionWorker};
pub use spec::ReadModel;
pub use uow::UnitOfWork;
pub use worker::{WorkerHealth, WorkerState};

/// The boxed future that hand-written handlers, sagas and projections return
/// ([`DynCommandHandler`], [`saga::Saga::send`], [`Projection::apply`]).
pub use futures::future::BoxFuture;

#[cfg(feature = "macros")]
pub use cqrs_ddd_macros::{
    aggregate, apply, command, command_handler, deadline, event, event_handler, handle, job, on, projection, query,
    query_handler, reset, saga, step, upcaster,
};

/// Everything a domain module needs: `use cqrs_ddd::prelude::*;`.
pub mod prelude {
    pub use crate::deadline::Deadlines;
    pub use crate::jobs::{JobContext, JobHandler};
    pub use crate::{
        Aggregate, App, Command, CommandContext, Dep, Envelope, Error, Event, EventContext, Mediator, Metadata,
        ProjectionTx, Query, QueryContext, ReadModel, Result,
    };
    #[cfg(feature = "macros")]
    pub use cqrs_ddd_macros::{
        aggregate, apply, command, command_handler, deadline, event, event_handler, handle, job, on, projection, query,
        query_handler, reset, saga, step, upcaster,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Used by generated code only; not part of the public API.
#[doc(hidden)]
pub mod __private;

/// The README's example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
