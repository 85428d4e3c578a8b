//! Sagas: long-running processes that react to events and send commands, with
//! compensation, TCC steps, timeouts and recovery.
//!
//! # Declaring a saga
//!
//! `#[saga]` goes on a struct (the saga's state, persisted as JSON between events) and
//! on an `impl` block whose `#[step(..)]` methods each react to one event type:
//!
//! ```
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::ports::SagaStatus;
//! use cqrs_ddd::testing::SagaFixture;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct OrderPlaced { pub order_id: String, pub amount: u64 }
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct StockReserved { pub order_id: String }
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct PaymentDeclined { pub order_id: String }
//!
//! # macro_rules! commands { ($($c:ident),*) => {$(
//! #     #[command]
//! #     #[derive(Debug, Clone, Serialize, Deserialize)]
//! #     pub struct $c { pub order_id: String }
//! # )*} }
//! # commands!(ReserveStock, ReleaseStock, ChargePayment);
//! # #[command_handler] async fn reserve(_c: ReserveStock) -> Result<()> { Ok(()) }
//! # #[command_handler] async fn release(_c: ReleaseStock) -> Result<()> { Ok(()) }
//! # #[command_handler] async fn charge(_c: ChargePayment) -> Result<()> { Ok(()) }
//! #[saga(name = "fulfilment", associate = order_id)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Fulfilment { amount: u64 }
//!
//! #[saga]
//! impl Fulfilment {
//!     /// A new order starts an instance: reserve stock, released if a later step fails.
//!     #[step(start, send = ReserveStock, compensate = ReleaseStock)]
//!     fn placed(&mut self, e: &OrderPlaced) -> (ReserveStock, ReleaseStock) {
//!         self.amount = e.amount;
//!         let id = e.order_id.clone();
//!         (ReserveStock { order_id: id.clone() }, ReleaseStock { order_id: id })
//!     }
//!
//!     #[step(send = ChargePayment)]
//!     fn reserved(&mut self, e: &StockReserved) -> ChargePayment {
//!         ChargePayment { order_id: e.order_id.clone() }
//!     }
//!
//!     /// Fails the saga: compensations run, last first.
//!     #[step(fail)]
//!     fn declined(&mut self, _e: &PaymentDeclined) {}
//! }
//!
//! // The test kit runs it without a database.
//! let mut saga = SagaFixture::<Fulfilment>::new();
//! saga.when(OrderPlaced { order_id: "o1".into(), amount: 40 }).then_sends(&["ReserveStock"]);
//! saga.when(StockReserved { order_id: "o1".into() }).then_sends(&["ChargePayment"]);
//! saga.when(PaymentDeclined { order_id: "o1".into() })
//!     .then_sends(&["ReleaseStock"])
//!     .then_status(SagaStatus::Compensated);
//! ```
//!
//! Step options:
//!
//! | option | the method returns | meaning |
//! |---|---|---|
//! | `start` | | the event starts an instance when none exists (other events for no instance are ignored) |
//! | `associate = field` / `by_correlation` | | which instance: the event's field (default: the struct's `associate`), or the correlation id |
//! | `send = C` | `C` | send one command |
//! | `send = C, compensate = K` | `(C, K)` | … and undo it with `K` if the saga fails later |
//! | `send_all = [A, B]` (`compensate = [KA, KB]`) | `(A, B)` (`((A, B), (KA, KB))`) | send at once |
//! | `tcc_begin` | | opens a TCC transaction |
//! | `tcc(try = T, confirm = C, cancel = K, deadline = "30s")` | `(T, C, K)` | a TCC try, cancelled on failure or when its deadline passes unconfirmed |
//! | `tcc_confirm` | | confirms every try so far, in order |
//! | `complete` / `fail` | (`()` for `fail`) | complete once sent / fail and compensate |
//! | `suspend`, `timeout = "1h"` | | wait for the next event; past the timeout, fail and compensate |
//! | `arm = remind` / `arm = [remind, lost]` | | arm the saga's deadlines (below), replacing one already armed |
//! | `disarm = remind` / `disarm = [..]` | | disarm them: they will not fire |
//!
//! # Deadlines: steps fired by time
//!
//! A `#[deadline(after = "14d", ..)]` method is a step that no event fires: a step arms
//! it (`arm = remind`), and unless a later step disarms it (`disarm = remind`) it fires
//! `after` later, with the same `send`, `compensate`, `send_all`, `complete`, `fail`,
//! `arm` and `disarm` options as an event's step. It takes only `&mut self`:
//!
//! ```rust,standalone_crate
//! # use cqrs_ddd::prelude::*;
//! # use cqrs_ddd::ports::SagaStatus;
//! # use cqrs_ddd::testing::SagaFixture;
//! # #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct BookLent { pub loan: String }
//! # #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct BookReturned { pub loan: String }
//! # #[command] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct SendReminder { pub loan: String }
//! # #[command] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct DeclareLost { pub loan: String }
//! # #[command_handler] async fn remind(_c: SendReminder) -> Result<()> { Ok(()) }
//! # #[command_handler] async fn lose(_c: DeclareLost) -> Result<()> { Ok(()) }
//! #[saga(name = "loan", associate = loan)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct LoanWatch { loan: String }
//!
//! #[saga]
//! impl LoanWatch {
//!     #[step(start, arm = [remind, lost])]
//!     fn lent(&mut self, e: &BookLent) { self.loan = e.loan.clone() }
//!
//!     #[step(disarm = [remind, lost], complete)]
//!     fn returned(&mut self, _e: &BookReturned) {}
//!
//!     #[deadline(after = "14d", send = SendReminder)]
//!     fn remind(&mut self) -> SendReminder { SendReminder { loan: self.loan.clone() } }
//!
//!     #[deadline(after = "30d", send = DeclareLost, complete)]
//!     fn lost(&mut self) -> DeclareLost { DeclareLost { loan: self.loan.clone() } }
//! }
//!
//! let mut saga = SagaFixture::<LoanWatch>::new();
//! saga.when(BookLent { loan: "l1".into() });
//! saga.advance(std::time::Duration::from_secs(14 * 86_400)).then_sends(&["SendReminder"]);
//! saga.advance(std::time::Duration::from_secs(16 * 86_400))
//!     .then_sends(&["DeclareLost"])
//!     .then_status(SagaStatus::Completed);
//! ```
//!
//! - An instance has at most one deadline of each name; arming it again replaces it.
//!   Every armed deadline is cancelled when the instance completes, fails or starts
//!   compensating.
//! - The deadlines are saved with the instance, in the same transaction, when the saga
//!   store keeps the schedule too ([`crate::ports::SagaStore::save_with_deadlines`]: the
//!   SQL stores, and [`crate::MemoryStore::saga_store`], which the default application
//!   uses). A conflicting save arms nothing. With another saga store they are scheduled
//!   before the save and cancelled after it; a deadline the saved instance does not know
//!   is ignored when it fires, since the instance is what says a deadline is armed.
//! - A fired deadline is processed once: its id joins the instance's processed events.
//! - Arming or disarming a name the saga has no `#[deadline]` method of, a deadline
//!   without `after` or with a malformed one (`"14d"`, `"30m"`, `"10s"`, `"500ms"`),
//!   event options on a deadline (`start`, `associate`, `suspend`, `tcc..`) and a
//!   deadline sending a command without a handler are compile errors.
//!
//! Aggregates have deadlines of their own ([`mod@crate::deadline`]).
//!
//! Options that make no sense together (`send` with `send_all`, `suspend` with
//! `complete`, a `timeout` without `suspend`, two steps for one event, a TCC try with
//! no `tcc_begin` anywhere) are compile errors, and so is a step that sends a command
//! without a handler.
//!
//! Why an attribute on a struct and an `impl` block rather than a function-like DSL:
//! the steps are ordinary methods, so rust-analyzer, rustfmt, doc comments and unit
//! tests work on them unchanged, the saga's state is an ordinary struct, and the
//! macro still sees every step's options at once to check them against each other.
//!
//! # How it runs
//!
//! - Events reach sagas like `#[event_handler(async)]`s: through the transactional
//!   outbox, so an `OutboxRelay` with an `InProcessPublisher` (or a broker) must run.
//!   Delivery is at least once; an event an instance already processed changes and
//!   sends nothing.
//! - An instance is stored per (saga type, association value) with an optimistic
//!   version; concurrent events for one instance reload and retry, never losing an
//!   update. Status: pending → running → completed | suspended | compensating →
//!   compensated | failed.
//! - A step's commands are stored with the instance first, then sent (each with its id
//!   as idempotency key: see [`Mediator::send_idempotent`]) and marked dispatched. A
//!   crash in between leaves them stored; [`SagaRecovery`] sends them later, and a
//!   command that was in fact committed is refused by the store rather than applied
//!   twice.
//! - A command rejected by its handler fails the saga; a transient failure (store
//!   down, conflicts) is retried with backoff and fails the saga after
//!   [`SagaOptions::max_retries`]. Failing sends the compensation stack last-first and
//!   ends compensated; a failing compensation leaves the saga failed with the error
//!   recorded, and so does failing with nothing to compensate.
//! - Suspension timeouts, TCC deadlines and `#[deadline]` steps are scheduled commands
//!   (see [`crate::scheduling`]), fired by [`SagaRecovery`] (or a `Scheduler`).
//! - [`SagaManager`] (`mediator.sagas()`) reads instances, lists active ones, retries a
//!   stuck one and forces compensation.

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cqrs::Mediator;
use crate::domain::{Envelope, Metadata};
use crate::error::Result;

mod engine;
pub(crate) mod instance;
mod recovery;
mod step;

pub use engine::{SagaManager, SagaOptions};
pub use instance::{CommandKind, SagaCommand, SagaInstance, UndoEntry, UndoKind};
pub use recovery::{RecoveryReport, SagaRecovery};
pub use step::{PlannedCommand, Step, Transition};

pub(crate) use engine::{DEADLINE_COMMAND, SagaRuntime, SagaSendFn, fire_deadline};

/// A saga type: its state is the struct, persisted as JSON between events.
/// Implemented by `#[saga]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a saga",
    label = "not marked `#[saga]`",
    note = "mark the state struct with `#[saga(name = \"..\", associate = field)]` and its impl block with `#[saga]`"
)]
pub trait Saga: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name, stored with every instance.
    const NAME: &'static str;

    /// Sends one of the commands this saga plans (found by its stored name) through the
    /// mediator, at most once per command id.
    fn send<'a>(mediator: &'a Mediator, command: &'a SagaCommand, metadata: Metadata) -> BoxFuture<'a, Result<()>>;

    /// The step of the saga's deadline `name`, fired after a step armed it
    /// ([`Step::arm`]); `None` for a name the saga has no deadline of. `#[saga]` answers
    /// from its `#[deadline]` methods through their registration instead; a saga written
    /// by hand and registered with `AppBuilder::saga` implements this.
    fn on_deadline(&mut self, name: &str) -> Option<Step> {
        let _ = name;
        None
    }
}

/// The erased step of a saga's deadline: updates the instance's state and returns the
/// step, or `None` for a name the saga has no deadline of.
pub type SagaDeadlineFn = fn(&mut SagaInstance, &str) -> Result<Option<Step>>;

/// How a saga type's deadlines fire (registered by `#[saga]` for its `#[deadline]`
/// methods, and by `AppBuilder::saga`).
pub struct SagaDeadlineRegistration {
    /// The saga's stored name.
    pub saga: &'static str,
    /// Fires a deadline by name.
    pub fire: SagaDeadlineFn,
}

inventory::collect!(SagaDeadlineRegistration);

/// Runs `fire` (the step of a deadline) on the state of `instance`.
pub fn run_deadline<S: Saga>(
    instance: &mut SagaInstance,
    name: &str,
    fire: impl FnOnce(&mut S, &str) -> Option<Step>,
) -> Result<Option<Step>> {
    let mut state: S = instance.state()?;
    let step = fire(&mut state, name);
    instance.set_state(&state)?;
    Ok(step)
}

/// [`SagaDeadlineFn`] through [`Saga::on_deadline`].
pub fn on_deadline<S: Saga>(instance: &mut SagaInstance, name: &str) -> Result<Option<Step>> {
    run_deadline::<S>(instance, name, S::on_deadline)
}

/// How the saga type `saga` fires its deadlines, if it has any.
pub(crate) fn deadline_fn(saga: &str) -> Option<SagaDeadlineFn> {
    inventory::iter::<SagaDeadlineRegistration>.into_iter().find(|r| r.saga == saga).map(|r| r.fire)
}

/// A saga's reaction to events of type `E`. Implemented by `#[saga]`, one per `#[step]`.
#[diagnostic::on_unimplemented(
    message = "saga `{Self}` has no step for event `{E}`",
    label = "`{Self}` does not react to `{E}`",
    note = "add a `#[step] fn on_it(&mut self, e: &{E}) -> ..` to the saga's `#[saga] impl` block"
)]
pub trait SagaHandles<E> {
    /// Whether this event starts an instance when none exists for its association.
    const STARTS: bool;

    /// Which instance the event belongs to; `None` when it belongs to none.
    fn associate(event: &Envelope<E>) -> Option<String>;

    /// The step: updates the state and says what to send and where to go next.
    fn on_event(&mut self, event: &Envelope<E>) -> Step;
}

/// Sends a stored saga command as a `C`, at most once per command id: the body of
/// [`Saga::send`] for each command type a saga sends. `#[saga]` writes that `send`;
/// a saga written by hand matches on [`SagaCommand::command_type`]:
///
/// ```rust,standalone_crate
/// # use cqrs_ddd::prelude::*;
/// # use cqrs_ddd::BoxFuture;
/// # use cqrs_ddd::saga::{Saga, SagaCommand, send_command, unknown_command};
/// # #[command] #[derive(Serialize, Deserialize)] pub struct Ping;
/// # #[command_handler] async fn ping(_c: Ping) -> Result<()> { Ok(()) }
/// #[derive(Default, Serialize, Deserialize)]
/// pub struct Pinger;
///
/// impl Saga for Pinger {
///     const NAME: &'static str = "pinger";
///     fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
///         match c.command_type.as_str() {
///             "Ping" => send_command::<Ping>(m, c, meta),
///             _ => unknown_command::<Self>(c),
///         }
///     }
/// }
/// ```
pub fn send_command<'a, C>(
    mediator: &'a Mediator,
    command: &'a SagaCommand,
    metadata: Metadata,
) -> BoxFuture<'a, Result<()>>
where
    C: crate::cqrs::CommandHandler + DeserializeOwned,
{
    Box::pin(async move {
        let cmd: C = serde_json::from_str(&command.payload).map_err(|source| crate::Error::Serialization {
            stream: format!("saga command {}", command.id),
            version: 0,
            event_type: command.command_type.clone(),
            source,
        })?;
        mediator.send_idempotent(cmd, command.id, Some(metadata)).await.map(drop)
    })
}

/// The error [`Saga::send`] returns for a stored command type the saga does not send
/// (renamed or removed): [`Error::NoHandler`](crate::Error::NoHandler), logged with the
/// type.
pub fn unknown_command<S: Saga>(command: &SagaCommand) -> BoxFuture<'_, Result<()>> {
    let e = crate::Error::NoHandler { kind: "saga command", name: "unknown" };
    tracing::error!(saga = S::NAME, command = %command.command_type, "a stored saga command has a type this saga does not send");
    Box::pin(async move { Err(e) })
}
