use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::QueryModel;

pub(crate) fn expand(model: &QueryModel, item: TokenStream) -> TokenStream {
    let QueryModel { krate: k, ident, name, reads, validate } = model;
    let (checker, validate) = validate.as_ref().map(|key| crate::common::validate_method(k, key, "Query")).unzip();
    let p = quote!(#k::__private);
    let reads = reads.iter().map(|t| quote_spanned!(t.span()=> <#t as #k::Projection>::NAME));
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #k::Query for #ident {
                const NAME: &'static str = #name;
                #validate
            }
            #checker

            fn __cqrs_ddd_ask() -> #p::catalog::QueryJson {
                #[allow(unused_imports)]
                use #p::catalog::{AskNot as _, AskViaHandler as _};
                (&&#p::catalog::Probe::<#ident>::new()).__cqrs_ddd_ask()
            }

            fn __cqrs_ddd_request_schema() -> #p::catalog::SchemaFn {
                #k::__cqrs_ddd_schema!(request, #ident)
            }

            fn __cqrs_ddd_response_schema() -> #p::catalog::SchemaFn {
                #k::__cqrs_ddd_schema!(query_response, #ident)
            }

            #p::inventory::submit! {
                #p::QueryTypeRegistration {
                    name: #name,
                    type_id: #p::TypeId::of::<#ident>,
                    type_name: #p::type_name::<#ident>,
                    reads: &[#(#reads),*],
                    ask: __cqrs_ddd_ask,
                    request_schema: __cqrs_ddd_request_schema,
                    response_schema: __cqrs_ddd_response_schema,
                }
            }
        };
    }
}
