//! `#[aggregate]`: on the struct, the event enum and the `Aggregate` impl; on the impl
//! block, one `Handle<C>` per `#[handle]` method and one `Apply<E>` per `#[apply]` method.

mod expand;
mod merge;
mod model;
mod parse;
mod validate;

use crate::common::{fallback, wrong_item};
use proc_macro2::TokenStream;

pub(crate) fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(ref parsed @ (syn::Item::Struct(_) | syn::Item::Enum(_))) => match parse::parse_struct(args, parsed) {
            Ok((model, errors)) => errors.emit_with(expand::expand_struct(&model, item)),
            Err(e) => fallback(item, &e),
        },
        Ok(syn::Item::Impl(imp)) => {
            let (model, errors) = parse::parse_impl(args, imp);
            errors.emit_with(expand::expand_impl(&model))
        }
        _ => fallback(
            item.clone(),
            &wrong_item("aggregate", "a struct (with `id`, `events` and `error`) or on its impl block", &item),
        ),
    }
}
