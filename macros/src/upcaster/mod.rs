//! `#[upcaster(event = .., from = N, to = M)]`: a function over the JSON payload that
//! turns schema version `from` of an event into version `to`, registered for loading.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn upcaster(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok((model, errors)) => errors.emit_with(expand::expand(&model)),
        Err(e) => fallback(item, &e),
    }
}
