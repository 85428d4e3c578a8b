//! Procedural macros of [cqrs-ddd](https://docs.rs/cqrs-ddd). Depend on `cqrs-ddd`, which
//! re-exports them; the generated code refers to `::cqrs_ddd` (or the path given with
//! `crate = ..`).
//!
//! Every macro parses its arguments with one small parser (`common/args.rs`) rather than
//! `syn::Meta`, so type-valued arguments such as `response = Vec<u64>` need no quotes, and
//! every mistake in one call (unknown, duplicate or malformed keys, wrong item kinds,
//! generics) is reported at once, spanned on the offending tokens.

mod aggregate;
mod command;
mod common;
mod event;
mod handler;
mod projection;
mod query;
mod upcaster;

use proc_macro::TokenStream;

use handler::Kind;

/// Marks a domain event: a stable stored name (`name = ".."`, default the type name) and
/// a payload schema version (`version = N`, default 1).
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
