//! `#[query]`: the `Query` impl (its stable name); the response type comes from its
//! `#[query_handler]`.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn query(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok((model, errors)) => errors.emit_with(expand::expand(&model, item)),
        Err(e) => fallback(item, &e),
    }
}
