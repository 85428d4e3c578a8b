//! `#[projection]` on an impl block: `#[on]` methods receive typed envelopes and a
//! `&mut ProjectionTx`; an optional `#[reset]` method drops the read model for rebuilds.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::{fallback, wrong_item};

pub(crate) fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(imp) = syn::parse2::<syn::ItemImpl>(item.clone()) else {
        return fallback(item.clone(), &wrong_item("projection", "an impl block with `#[on]` methods", &item));
    };
    let (model, errors) = parse::parse(args, imp);
    errors.emit_with(expand::expand(&model))
}
