//! `#[job]`: a background job type's stable name, registered for `App::build()` and the
//! job worker.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok((model, errors)) => errors.emit_with(expand::expand(&model, item)),
        Err(e) => fallback(item, &e),
    }
}
