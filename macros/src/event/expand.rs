use proc_macro2::TokenStream;
use quote::quote;

use super::model::EventModel;

pub(crate) fn expand(model: &EventModel, item: TokenStream) -> TokenStream {
    let EventModel { krate, ident, name, version } = model;
    let p = quote!(#krate::__private);
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
        };
    }
}
