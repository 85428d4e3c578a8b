use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::ProjectionImpl;

pub(crate) fn expand(model: &ProjectionImpl) -> TokenStream {
    let ProjectionImpl { krate: k, self_ty, name, item, handlers, reset, prefetch } = model;
    let prefetch = prefetch.iter();
    let p = quote!(#k::__private);
    let item = item.to_token_stream();
    let events: Vec<_> = handlers.iter().map(|h| &h.event).collect();
    let arms = handlers.iter().map(|h| {
        let (method, ev) = (&h.method, &h.event);
        let arg = if h.envelope { quote!(&envelope) } else { quote!(&envelope.payload) };
        let tx = if h.takes_tx { quote!(, tx) } else { quote!() };
        let decode = quote_spanned!(ev.span() => #p::decode_envelope::<#ev>(event));
        quote! {
            if event.event_type == <#ev as #k::Event>::NAME {
                let envelope = #decode?;
                return #p::into_result(<#self_ty>::#method(self, #arg #tx).await);
            }
        }
    });
    let reset = reset.as_ref().map(|m| {
        quote! {
            fn reset<'a>(
                &'a self,
                tx: &'a mut #k::ProjectionTx,
            ) -> #p::BoxFuture<'a, #k::Result<()>> {
                #p::Box::pin(async move { #p::into_result(<#self_ty>::#m(self, tx).await) })
            }
        }
    });
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #k::Projection for #self_ty {
                const NAME: &'static str = #name;
                const EVENT_TYPES: &'static [&'static str] = &[#(<#events as #k::Event>::NAME),*];
                const PREFETCH: &'static [&'static str] = &[#(#prefetch),*];

                fn apply<'a>(
                    &'a self,
                    event: &'a #k::ports::StoredEvent,
                    tx: &'a mut #k::ProjectionTx,
                ) -> #p::BoxFuture<'a, #k::Result<()>> {
                    #p::Box::pin(async move {
                        let _ = &tx;
                        #(#arms)*
                        #p::Ok(())
                    })
                }

                #reset
            }
        };
    }
}
