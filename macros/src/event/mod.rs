//! `#[event]`: a stable type name and schema version, registered for `App::build()`.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok((model, errors)) => errors.emit_with(expand::expand(&model, item)),
        Err(e) => fallback(item, &e),
    }
}
