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

/// The checks of `undo = C` (and `redo = R`), spanned on the command in the attribute,
/// and the registration of the event for `Mediator::undo`. Every use of the event as
/// `Undo` (or `Redo`) is spanned there too, so a missing impl is reported once.
fn undo_registration(model: &EventModel, undo: &UndoModel) -> TokenStream {
    let EventModel { krate, ident, name, .. } = model;
    let p = quote!(#krate::__private);
    let UndoModel { undo: command, redo, within_ms } = undo;
    let undo_span = command.span();
    let undo_check = quote_spanned! {undo_span=> #p::assert_undo::<#ident, #command>(); };
    let undo_fn = quote_spanned! {undo_span=> #p::undo_of::<#ident> };
    let (redo_check, redo_fn) = match redo {
        Some(r) => {
            let span = r.span();
            (
                quote_spanned! {span=> #p::assert_redo::<#ident, #r>(); },
                quote_spanned! {span=> #p::Some(#p::redo_of::<#ident>) },
            )
        }
        None => (TokenStream::new(), quote!(#p::None)),
    };
    let within = match within_ms {
        Some(ms) => quote!(#p::Some(#ms)),
        None => quote!(#p::None),
    };
    quote! {
        const _: () = {
            #undo_check
            #redo_check
        };
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
