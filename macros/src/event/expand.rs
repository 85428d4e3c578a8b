use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{EventModel, UndoModel};

pub(crate) fn expand(model: &EventModel, item: TokenStream) -> TokenStream {
    let EventModel { krate, ident, name, version, undo } = model;
    let p = quote!(#krate::__private);
    let undo = undo.as_ref().map(|u| undo_registration(model, u));
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #krate::Event for #ident {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
            }
            #p::inventory::submit! {
                #p::EventRegistration {
                    name: #name,
                    version: #version,
                    type_id: #p::TypeId::of::<#ident>,
                    type_name: #p::type_name::<#ident>,
                    decode: #p::decode_envelope_json::<#ident>,
                }
            }
            #undo
        };
    }
}

/// The registration of the event for `Mediator::undo`, through the one use of the event
/// as `Undo` (and `Redo`), spanned on the command in the attribute: a missing impl, or
/// one that builds another command, is one error there.
fn undo_registration(model: &EventModel, undo: &UndoModel) -> TokenStream {
    let EventModel { krate, ident, name, .. } = model;
    let p = quote!(#krate::__private);
    let UndoModel { undo: command, redo, within_ms } = undo;
    let undo_fn = quote_spanned! {command.span()=> #p::undo_fn::<#ident, #command>() };
    let redo_fn = match redo {
        Some(r) => quote_spanned! {r.span()=> #p::Some(#p::redo_fn::<#ident, #r>()) },
        None => quote!(#p::None),
    };
    let within = match within_ms {
        Some(ms) => quote!(#p::Some(#ms)),
        None => quote!(#p::None),
    };
    quote! {
        #p::inventory::submit! {
            #p::UndoRegistration {
                event: #name,
                within_ms: #within,
                undo: #undo_fn,
                redo: #redo_fn,
            }
        }
    }
}
