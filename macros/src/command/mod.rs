//! `#[command]`: the `Command` impl and, with `aggregate = ..`, the route to the
//! aggregate's `#[handle]` method.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, &item) {
        Ok((model, cleaned, errors)) => errors.emit_with(expand::expand(&model, cleaned)),
        Err(e) => fallback(strip_id(item), &e),
    }
}

/// The item without `#[id]` markers, so a failed expansion adds no unknown-attribute error.
fn strip_id(item: TokenStream) -> TokenStream {
    let Ok(mut input) = syn::parse2::<syn::DeriveInput>(item.clone()) else { return item };
    let strip = |fields: &mut syn::Fields| {
        for f in fields.iter_mut() {
            f.attrs.retain(|a| !a.path().is_ident("id"));
        }
    };
    match &mut input.data {
        syn::Data::Struct(s) => strip(&mut s.fields),
        syn::Data::Enum(e) => e.variants.iter_mut().for_each(|v| strip(&mut v.fields)),
        syn::Data::Union(_) => {}
    }
    quote::ToTokens::to_token_stream(&input)
}
