use proc_macro2::TokenStream;
use quote::quote;

use super::model::QueryModel;

pub(crate) fn expand(model: &QueryModel, item: TokenStream) -> TokenStream {
    let QueryModel { krate: k, ident, name } = model;
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #k::Query for #ident {
                const NAME: &'static str = #name;
            }
        };
    }
}
