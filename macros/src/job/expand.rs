use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::model::JobModel;

pub(crate) fn expand(model: &JobModel, item: TokenStream) -> TokenStream {
    let JobModel { krate, ident, name } = model;
    let p = quote!(#krate::__private);
    // Spanned on the type: a missing `JobHandler` impl is reported there.
    let run = quote_spanned!(ident.span()=> #p::run_job::<#ident>);
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #krate::jobs::Job for #ident {
                const NAME: &'static str = #name;
            }
            #p::inventory::submit! {
                #p::JobRegistration {
                    name: #name,
                    type_id: #p::TypeId::of::<#ident>,
                    type_name: #p::type_name::<#ident>,
                    run: #run,
                }
            }
        };
    }
}
