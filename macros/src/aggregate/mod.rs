//! `#[aggregate]`: on the struct, the event enum and the `Aggregate` impl; on the impl
//! block, one `Handle<C>` per `#[handle]` method and one `Apply<E>` per `#[apply]` method.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::common::{fallback, wrong_item};

pub(crate) fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(ref parsed @ (syn::Item::Struct(_) | syn::Item::Enum(_))) => match parse::parse_struct(args, parsed) {
            Ok(model) => expand::expand_struct(&model, item),
            Err(e) => fallback(item, &e),
        },
        Ok(syn::Item::Impl(imp)) => {
            let original = imp.to_token_stream();
            match parse::parse_impl(args, imp) {
                Ok(model) => expand::expand_impl(&model),
                Err(e) => fallback(strip_markers(original), &e),
            }
        }
        _ => fallback(item.clone(), &wrong_item("aggregate", "a struct (with `id`, `events` and `error`) or on its impl block", &item)),
    }
}

/// The impl block without `#[handle]`/`#[apply]`, so a failed expansion adds no
/// "cannot find attribute" errors on top of the real one.
fn strip_markers(item: TokenStream) -> TokenStream {
    let Ok(mut imp) = syn::parse2::<syn::ItemImpl>(item.clone()) else { return item };
    for it in &mut imp.items {
        if let syn::ImplItem::Fn(f) = it {
            f.attrs.retain(|a| !a.path().is_ident("handle") && !a.path().is_ident("apply"));
        }
    }
    imp.to_token_stream()
}
