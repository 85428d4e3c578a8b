//! `#[query]`: the `Query` impl (its stable name); the response type comes from its
//! `#[query_handler]`.

mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn query(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok(model) => expand::expand(&model, item),
        Err(e) => fallback(item, &e),
    }
}

/// A `#[query]` type.
pub(crate) struct QueryModel {
    pub(crate) krate: syn::Path,
    pub(crate) ident: syn::Ident,
    pub(crate) name: syn::LitStr,
}
