//! What the code the macros generate reaches, and nothing else.
//!
//! Generated code names every item through `::cqrs_ddd::__private::…`: the standard items
//! it uses (so a user's `struct Result;` next to an annotated type changes nothing), the
//! crates it needs (so users never add `inventory` or `serde_json` themselves), the
//! registrations it submits and the helpers it calls. None of it is public API: any item
//! may change in any release.

pub use core::any::{Any, TypeId, type_name};
pub use core::clone::Clone;
pub use core::convert::{From, Into};
pub use core::fmt;
pub use core::future::Future;
pub use core::marker::{Send, Sync};
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use core::time::Duration;
pub use std::boxed::Box;
pub use std::string::{String, ToString};
pub use std::sync::LazyLock;
pub use std::vec;
pub use std::vec::Vec;

pub use futures::future::BoxFuture;
pub use inventory;
pub use serde;
pub use serde_json;

pub use crate::conflict::MergeStrategy;
pub use crate::cqrs::by_name::{
    DispatchJson, NotDecodable as DispatchNotDecodable, Probe as DispatchProbe, ViaDynHandler as DispatchViaDynHandler,
    ViaHandler as DispatchViaHandler,
};
pub use crate::cqrs::catalog;
pub use crate::domain::encode_checked;
pub use crate::jobs::run_job;
pub use crate::lock::CommandLocks;
pub use crate::registry::{
    AggregateRegistration, CommandRegistration, CommandTypeRegistration, DepKey, EventHandlerRegistration,
    EventRegistration, JobRegistration, QueryRegistration, QueryTypeRegistration, SagaRegistration, UndoRegistration,
    UpcasterRegistration, erased_command,
};
pub use crate::saga::{
    SagaDeadlineRegistration, Step as SagaStep, send_command as saga_send_command,
    unknown_command as saga_unknown_command,
};
/// How `#[event(undo = C)]` undoes an event: its `Undo` impl, which must build `C` (the
/// trait's own bound checks that `C` has a handler). The one use of the event as `Undo`,
/// so a missing impl is one error.
pub const fn undo_fn<E, C>() -> crate::undo::InverseFn
where
    E: crate::undo::Undo<Command = C>,
{
    crate::undo::undo_of::<E>
}

/// How `#[event(redo = C)]` redoes an event (see [`undo_fn`]).
pub const fn redo_fn<E, C>() -> crate::undo::InverseFn
where
    E: crate::undo::Redo<Command = C>,
{
    crate::undo::redo_of::<E>
}
pub use crate::spec::field::{
    BoolHasNoOrder, JsonIsNotCompared, ListIsNotCompared, NotAList, ObjectIsNotCompared, field_path, intern, op_fits,
    refusal, refusal_len, refusal_text,
};

use crate::cqrs::{AggregateCommand, CommandContext, Dep, EventContext, Mediator, QueryContext};
use crate::domain::{Envelope, Event, EventHeader, Handle, Metadata};
use crate::ports::StoredEvent;
use crate::saga::{Saga, SagaCommand, SagaHandles};

/// The body of the `CommandHandler` of a command routed to an aggregate: loads (or finds
/// staged) the aggregate, runs its `#[handle]` method and stages the events it decides.
pub async fn execute<A, C>(ctx: &mut CommandContext, cmd: C) -> crate::Result<()>
where
    A: Handle<C>,
    C: AggregateCommand<Aggregate = A> + Sync,
{
    ctx.execute_aggregate::<A, C>(cmd).await
}

/// Checks, once and where the user can fix it, that command `C` can be routed to
/// aggregate `A`: the same bounds as [`RouteViaHandle`]'s impl, so the route never falls
/// back to [`RouteMissing`] in a program that compiles.
pub const fn assert_routed<A, C>()
where
    A: Handle<C>,
    C: AggregateCommand<Aggregate = A> + Sync,
{
}

/// Chooses how a routed command runs, by method resolution on `(&&Route::<A, C>::new())`:
/// through the aggregate's `#[handle]` when it has one ([`RouteViaHandle`]), else a stub
/// ([`RouteMissing`]) so that a missing `#[handle]` is reported once, by [`assert_routed`],
/// instead of again at each use.
pub struct Route<A, C>(core::marker::PhantomData<fn() -> (A, C)>);

impl<A, C> Route<A, C> {
    /// The probe.
    #[allow(clippy::new_without_default)] // only ever built by generated code
    pub const fn new() -> Self {
        Route(core::marker::PhantomData)
    }
}

/// The route through the aggregate's `#[handle]` method.
pub trait RouteViaHandle<C> {
    /// Runs the command (see [`execute`]).
    fn execute<'a>(&self, ctx: &'a mut CommandContext, cmd: C) -> impl Future<Output = crate::Result<()>> + Send + 'a
    where
        C: 'a;
}

impl<A, C> RouteViaHandle<C> for &Route<A, C>
where
    A: Handle<C>,
    C: AggregateCommand<Aggregate = A> + Sync,
{
    fn execute<'a>(&self, ctx: &'a mut CommandContext, cmd: C) -> impl Future<Output = crate::Result<()>> + Send + 'a
    where
        C: 'a,
    {
        execute::<A, C>(ctx, cmd)
    }
}

/// The stub route of a command whose aggregate has no `#[handle]` for it; never compiled
/// into a program, since [`assert_routed`] fails first.
pub trait RouteMissing<C> {
    /// Fails: the command has no route.
    fn execute<'a>(&self, ctx: &'a mut CommandContext, cmd: C) -> impl Future<Output = crate::Result<()>> + Send + 'a
    where
        C: 'a;
}

impl<A, C: Send> RouteMissing<C> for Route<A, C> {
    #[allow(clippy::manual_async_fn)] // `async fn` would capture `&self`, which the trait does not allow
    fn execute<'a>(&self, _: &'a mut CommandContext, _: C) -> impl Future<Output = crate::Result<()>> + Send + 'a
    where
        C: 'a,
    {
        async { Err(crate::Error::handler(format!("command `{}` has no route", type_name::<C>()))) }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::CommandContext {}
    impl Sealed for crate::QueryContext {}
    impl Sealed for crate::EventContext {}
}

/// The contexts handlers receive: each resolves the handler's `Dep<T>` parameters.
pub trait HandlerContext: sealed::Sealed {
    /// The mediator holding the provided values.
    fn __cqrs_ddd_mediator(&self) -> &Mediator;
}

impl HandlerContext for CommandContext {
    fn __cqrs_ddd_mediator(&self) -> &Mediator {
        self.mediator()
    }
}

impl HandlerContext for QueryContext {
    fn __cqrs_ddd_mediator(&self) -> &Mediator {
        self.mediator()
    }
}

impl HandlerContext for EventContext {
    fn __cqrs_ddd_mediator(&self) -> &Mediator {
        self.mediator()
    }
}

/// A handler's `Dep<T>` parameter; the error names the handler (`needed_by`).
pub fn dep<T: Send + Sync + 'static>(ctx: &impl HandlerContext, needed_by: &'static str) -> crate::Result<Dep<T>> {
    ctx.__cqrs_ddd_mediator().dep::<T>(needed_by)
}

/// The steps of a saga, implemented by `#[saga]` on its impl block.
#[diagnostic::on_unimplemented(
    message = "saga `{Self}` has no steps",
    label = "`#[saga]` is on this struct, but no `#[saga] impl {Self}` block declares its steps",
    note = "add `#[saga] impl {Self} {{ #[step(start, send = ..)] fn on_it(&mut self, e: &TheEvent) -> .. }}`"
)]
pub trait SagaSteps {
    /// Sends a stored command by its type name; `None` for a name no step sends.
    fn __cqrs_ddd_saga_send<'a>(
        mediator: &'a Mediator,
        command: &'a SagaCommand,
        metadata: Metadata,
    ) -> Option<BoxFuture<'a, crate::Result<()>>>;

    /// The step of the `#[deadline]` method named `name`; `None` for another name.
    fn __cqrs_ddd_saga_deadline(&mut self, name: &str) -> Option<crate::saga::Step>;
}

/// The [`crate::saga::SagaDeadlineFn`] of a `#[saga]`: its `#[deadline]` methods.
pub fn saga_deadline_step<S: Saga + SagaSteps>(
    instance: &mut crate::saga::SagaInstance,
    name: &str,
) -> crate::Result<Option<crate::saga::Step>> {
    crate::saga::run_deadline::<S>(instance, name, S::__cqrs_ddd_saga_deadline)
}

/// Routes an event delivered to an async handler into the saga runtime.
pub fn saga_on_event<'a, S, E>(
    envelope: &'a (dyn Any + Send + Sync),
    ctx: &'a EventContext,
) -> BoxFuture<'a, crate::Result<()>>
where
    S: Saga + SagaHandles<E>,
    E: Event,
{
    Box::pin(async move {
        let env = envelope.downcast_ref::<Envelope<E>>().ok_or_else(|| {
            crate::Error::handler(format!("saga `{}` received another event type than `{}`", S::NAME, E::NAME))
        })?;
        ctx.mediator().sagas().handle::<S, E>(env).await
    })
}

/// The registration of a command's handler: one use of the command type, so a handler
/// of a type that is not a `#[command]` is reported at its impl and here once.
pub const fn command_handler<C: crate::CommandHandler>(
    handler: &'static str,
    deps: &'static [DepKey],
) -> CommandRegistration {
    CommandRegistration { name: C::NAME, type_id: TypeId::of::<C>, handler, deps, call: erased_command::<C> }
}

/// The registration of a query's handler: one use of the query type, so a handler of a
/// type that is not a `#[query]` is reported at its impl and nowhere else.
pub const fn query_handler<Q: crate::QueryHandler>(
    handler: &'static str,
    deps: &'static [DepKey],
) -> QueryRegistration {
    QueryRegistration { name: Q::NAME, type_id: TypeId::of::<Q>, handler, deps }
}

/// The registration of saga `S`'s step for event `E`: one use of both types, so an
/// argument that is not an event is one error.
pub const fn saga_step<S, E>(handler: &'static str) -> EventHandlerRegistration
where
    S: Saga + SagaHandles<E>,
    E: Event,
{
    EventHandlerRegistration {
        handler,
        event_name: E::NAME,
        event_type_id: TypeId::of::<E>,
        deps: &[],
        call: saga_on_event::<S, E>,
        asynchronous: true,
        unit_of_work: false,
    }
}

/// Decodes an `Envelope<E>` from JSON, erased (outbox delivery).
pub fn decode_envelope_json<E: Event>(json: &str) -> serde_json::Result<Box<dyn Any + Send + Sync>> {
    Ok(Box::new(E::envelope_from_json(json)?))
}

/// Decodes a stored event into a typed envelope, upcasting its payload to `E::VERSION`.
pub fn decode_envelope<E: Event>(stored: &StoredEvent) -> crate::Result<Envelope<E>> {
    let serialization = |source| crate::Error::Serialization {
        stream: stored.stream.to_string(),
        version: stored.version,
        event_type: stored.event_type.clone(),
        source,
    };
    let payload: E = if stored.schema_version == E::VERSION {
        E::from_json(&stored.payload).map_err(serialization)?
    } else {
        let value = serde_json::from_str(&stored.payload).map_err(serialization)?;
        let value = crate::registry::upcasters()
            .upcast(&stored.event_type, stored.schema_version, E::VERSION, value)
            .map_err(|reason| crate::Error::Upcast {
            stream: stored.stream.to_string(),
            version: stored.version,
            event_type: stored.event_type.clone(),
            reason,
        })?;
        E::from_json_value(value).map_err(serialization)?
    };
    let header = EventHeader {
        event_id: stored.event_id,
        stream_type: stored.stream.stream_type.clone(),
        stream_id: stored.stream.stream_id.clone(),
        version: stored.version,
        position: stored.position,
        event_type: stored.event_type.clone(),
        schema_version: E::VERSION,
        occurred_at: stored.occurred_at,
        metadata: stored.metadata.clone(),
    };
    Ok(Envelope::new(header, payload))
}

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

/// What an upcaster may return: the new payload, or a result of it.
#[diagnostic::on_unimplemented(
    message = "an upcaster returns `serde_json::Value` or `Result<serde_json::Value, E>`, not `{Self}`",
    label = "returns `{Self}`"
)]
pub trait UpcastResult {
    /// The payload or the reason it could not be upcast.
    fn into_upcast(self) -> Result<serde_json::Value, String>;
}

impl UpcastResult for serde_json::Value {
    fn into_upcast(self) -> Result<serde_json::Value, String> {
        Ok(self)
    }
}

impl<E: core::fmt::Display> UpcastResult for Result<serde_json::Value, E> {
    fn into_upcast(self) -> Result<serde_json::Value, String> {
        self.map_err(|e| e.to_string())
    }
}

/// A handler received an envelope of another type (a wiring bug, reported not panicked).
pub fn wrong_envelope(handler: &'static str) -> crate::Error {
    crate::Error::handler(format!("event handler `{handler}` received an envelope of another event type"))
}

/// The codec of a deadline's payload; generated code calls it once, spanned on the
/// payload type, so a payload without serde is reported there.
pub fn deadline_codec<P: crate::deadline::DeadlinePayload>() -> crate::deadline::DeadlineCodec<P> {
    crate::deadline::DeadlineCodec::of()
}
