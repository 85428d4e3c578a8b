//! Procedural macros of [cqrs-ddd](https://docs.rs/cqrs-ddd). Depend on `cqrs-ddd`, which
//! re-exports them; the generated code refers to `::cqrs_ddd` (or the path given with
//! `crate = ..`).
//!
//! Each macro is one folder with the same four steps: `parse.rs` reads the arguments into
//! one darling options struct (each key declared once, with what it means), `model.rs`
//! holds what was read, `validate.rs` the rules across items, `expand.rs` the generated
//! code. `common/options.rs` adds what darling alone does not give: type-valued arguments
//! such as `response = Vec<u64>` or `id = HashMap<String, u64>` need no quotes; every
//! mistake in one call (unknown, duplicate or malformed keys, a missing comma) is reported
//! at once, spanned on the offending tokens, with a did-you-mean for a misspelled key.
//!
//! One mistake is one error: a macro whose arguments are wrong still expands with what it
//! could read (a misspelled key counts as its suggestion, a missing key gets a stand-in),
//! so the code that uses what it generates does not fail a second time.

mod aggregate;
mod command;
mod common;
mod event;
mod handler;
mod job;
mod projection;
mod query;
mod read_model;
mod saga;
mod upcaster;

use proc_macro::TokenStream;

use handler::Kind;

/// Marks a domain event: a stable stored name (`name = ".."`, default the type name) and
/// a payload schema version (`version = N`, default 1). `undo = Command` (with its `Undo`
/// impl) makes its events undoable with `Mediator::undo`; `redo = Command` (with `Redo`)
/// redoable; `undo_within = "1h"` bounds the undo in time.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::event(args.into(), item.into()).into()
}

/// On a struct: `id = Type, events(..), error = Type` (and optionally `name`,
/// `event_enum`, `state_stored`). On its impl block: collects `#[handle]` (decide) and
/// `#[apply]` (evolve) methods.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    aggregate::aggregate(args.into(), item.into()).into()
}

/// Marks a command; `aggregate = Type` routes it to that aggregate by its `#[id]` field,
/// `response = Type` sets what a `#[command_handler]` returns.
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    command::command(args.into(), item.into()).into()
}

/// Marks a background job type (`Serialize` + `Deserialize`, its fields the job's
/// input) with a stable stored name (`name = ".."`, default the type name); what it does
/// is its `impl JobHandler`. Registered for `App::build()` and the job worker.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    job::job(args.into(), item.into()).into()
}

/// Marks a query; its `#[query_handler]` gives the response type.
#[proc_macro_attribute]
pub fn query(args: TokenStream, item: TokenStream) -> TokenStream {
    query::query(args.into(), item.into()).into()
}

/// The one handler of a command: `async fn(cmd, &mut CommandContext, Dep<T>..) -> Result<R>`.
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::handler(Kind::Command, args.into(), item.into()).into()
}

/// The one handler of a query: `async fn(query, &QueryContext, Dep<T>..) -> Result<R>`.
#[proc_macro_attribute]
pub fn query_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::handler(Kind::Query, args.into(), item.into()).into()
}

/// A reaction to a committed event: `async fn(&Envelope<E> or &E, &EventContext, Dep<T>..) -> Result<()>`.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::handler(Kind::Event, args.into(), item.into()).into()
}

/// Turns schema version `from` of an event's JSON payload into version `to`:
/// `#[upcaster(event = Deposited, from = 1, to = 2)] fn f(v: serde_json::Value) -> serde_json::Value`
/// (or `-> Result<serde_json::Value, E>`). Loading chains upcasters from the stored
/// version to the current one.
#[proc_macro_attribute]
pub fn upcaster(args: TokenStream, item: TokenStream) -> TokenStream {
    upcaster::upcaster(args.into(), item.into()).into()
}

/// A read model fed by events, on an impl block: `#[on]` methods take `(&self,
/// &Envelope<E> or &E, &mut ProjectionTx)`, an optional `#[reset]` method drops the
/// read model before a rebuild; `name = ".."` names its checkpoints (default the type name).
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::projection(args.into(), item.into()).into()
}

/// A long-running process that reacts to events and sends commands, with compensation,
/// TCC and timeouts. On the state struct (`Default`, `Serialize`, `Deserialize`):
/// `#[saga(name = "..", associate = field)]`, both optional (`name` defaults to the type
/// name; `associate` names the field of the events whose `to_string()` finds the
/// instance). On its impl block, `#[saga]` and one `#[step(..)]` method per event:
///
/// ```text
/// #[saga(name = "order-fulfilment", associate = order_id)]
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct Fulfilment { reserved: bool }
///
/// #[saga]
/// impl Fulfilment {
///     #[step(start, send = ReserveStock, compensate = ReleaseStock)]
///     fn placed(&mut self, e: &OrderPlaced) -> (ReserveStock, ReleaseStock) { .. }
///     #[step(send_all = [ChargePayment, NotifyWarehouse], suspend, timeout = "30m")]
///     fn reserved(&mut self, e: &Envelope<StockReserved>) -> (ChargePayment, NotifyWarehouse) { .. }
///     #[step(complete)]
///     fn paid(&mut self, e: &PaymentTaken) { .. }
///     #[step(fail)]
///     fn declined(&mut self, e: &PaymentDeclined) { .. }
/// }
/// ```
///
/// A step method takes `&mut self` and `&E` or `&Envelope<E>`, and returns what its
/// options send:
///
/// | option | the method returns |
/// | --- | --- |
/// | none | `()` |
/// | `send = C` | `C` |
/// | `send = C, compensate = K` (`K` undoes `C` if the saga fails) | `(C, K)` |
/// | `send_all = [A, B]` (sent at once) | `(A, B)` |
/// | `send_all = [A, B], compensate = [KA, KB]` | `((A, B), (KA, KB))` |
/// | `tcc(try = T, confirm = C, cancel = K, deadline = "30s")` (`deadline` optional) | `(T, C, K)` |
///
/// Other options: `start` (the event starts an instance when none exists; at least one
/// step has it), `associate = field` or `by_correlation` (the envelope's correlation id)
/// instead of the struct's default (a step with neither and no default is an error),
/// `tcc_begin` (opens the TCC transaction; a saga with `tcc(..)` needs it on some step),
/// `tcc_confirm` (confirms every try so far), and where the saga goes next: `complete`,
/// `fail` (sends nothing; compensations run), or `suspend` with an optional
/// `timeout = ".."`. Durations are `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`.
/// Every command a step names must have a handler and be `Serialize` + `Deserialize`;
/// the error points at the command in the attribute.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, item: TokenStream) -> TokenStream {
    saga::saga(args.into(), item.into()).into()
}

/// Typed fields for a read model: `#[derive(ReadModel)]` with
/// `#[read_model(collection = "books", index(status, title))]` on the struct and
/// `#[read_model(filter, sort, select, index)]`, `filter(eq, in_)` or `skip` on fields;
/// `owner = field` (each caller sees the documents holding their principal there) and
/// `tenant_required` on the struct shape what `parse_query_in` allows. Generates `{Type}Fields` (one handle per field, at its serialized path), the `Field`
/// impl that nests the type in others and, with `collection`, the `ReadModel` impl.
/// See `cqrs_ddd::spec::ReadModel`.
#[proc_macro_derive(ReadModel, attributes(read_model))]
pub fn read_model(input: TokenStream) -> TokenStream {
    read_model::read_model(input.into()).into()
}

/// Marks a method of an `#[aggregate]` impl block that evolves the state from one event:
/// `#[apply] fn deposited(&mut self, e: &Deposited)`. Read by `#[aggregate]` on the impl
/// block; an impl block without it is not read, and the aggregate then reports the
/// event as never applied.
#[proc_macro_attribute]
pub fn apply(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Marks a method of an `#[aggregate]` impl block that decides on one command:
/// `#[handle] fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError>`,
/// `#[handle(create)]` when the command creates the aggregate. Read by `#[aggregate]` on
/// the impl block; an impl block without it is not read, and the command then reports
/// that no method handles it.
#[proc_macro_attribute]
pub fn handle(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Marks a method of an `#[aggregate]` impl block that decides on a fired deadline:
/// `#[deadline] fn remind(&self, due: &ReminderDue) -> Result<Vec<LoanEvent>, LoanError>`
/// (`#[deadline(name = "..")]` to name it otherwise than the method). Read by
/// `#[aggregate]` on the impl block; see `cqrs_ddd::deadline`.
#[proc_macro_attribute]
pub fn deadline(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Marks a method of a `#[saga]` impl block that reacts to one event:
/// `#[step(start, send = ReserveStock)]`. Read by `#[saga]` on the impl block; an impl
/// block without it is not read, and the saga then reports that it has no steps.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Marks a method of a `#[projection]` impl block that handles one event. Read by
/// `#[projection]`; an impl block without it is not read, and the type is then not a
/// projection.
#[proc_macro_attribute]
pub fn on(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Marks the method of a `#[projection]` impl block that drops the read model before a
/// rebuild. Read by `#[projection]`.
#[proc_macro_attribute]
pub fn reset(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
