//! `#[command_handler]`, `#[query_handler]` and `#[event_handler]`: one parser for the
//! three, since they differ only in the message parameter and the context type.

mod expand;
mod model;
mod parse;
mod validate;

pub(crate) use model::Kind;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn handler(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(kind, args, &item) {
        Ok((model, errors)) => errors.emit_with(expand::expand(&model)),
        Err(e) => fallback(parse::repair(item), &e),
    }
}
