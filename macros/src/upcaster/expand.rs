use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Upcaster;

pub(crate) fn expand(model: &Upcaster) -> TokenStream {
    let Upcaster { krate: k, item, event, from, to } = model;
    let p = quote!(#k::__private);
    let ident = &item.sig.ident;
    let out = &item.sig.output;
    let call = quote_spanned!(out.span() => #p::UpcastResult::into_upcast(#ident(payload)));
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            fn __cqrs_ddd_upcast(
                payload: #p::serde_json::Value,
            ) -> #p::Result<#p::serde_json::Value, #p::String> {
                #call
            }
            #p::inventory::submit! {
                #p::UpcasterRegistration {
                    event_type: #event,
                    from: #from,
                    to: #to,
                    name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    upcast: __cqrs_ddd_upcast,
                }
            }
        };
    }
}
