use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{HandlerFn, Kind, Param};

pub(crate) fn expand(model: &HandlerFn) -> TokenStream {
    let mut item = model.item.clone();
    // Handlers are `async` by contract, whether or not this one awaits.
    item.attrs.push(syn::parse_quote!(#[allow(clippy::unused_async)]));
    let body = match model.kind {
        Kind::Command => command(model),
        Kind::Query => query(model),
        Kind::Event => event(model),
    };
    quote! {
        #item
        #[doc(hidden)]
        const _: () = { #body };
    }
}

fn handler_name(model: &HandlerFn) -> TokenStream {
    let ident = &model.ident;
    quote!(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)))
}

/// `let __cqrs_ddd_dep0 = __private::dep::<T>(ctx, ..)?;` for each `Dep<T>`, and the call arguments.
fn call(model: &HandlerFn, message: &TokenStream) -> (TokenStream, TokenStream) {
    let name = handler_name(model);
    let mut lets = Vec::new();
    let mut args = Vec::new();
    for (i, p) in model.params.iter().enumerate() {
        match p {
            Param::Message => args.push(message.clone()),
            Param::Context { shared: true } => args.push(quote!(&*ctx)),
            Param::Context { shared: false } => args.push(quote!(ctx)),
            Param::Dep(t) => {
                let v = format_ident!("__cqrs_ddd_dep{}", i);
                let k = &model.krate;
                lets.push(quote_spanned!(t.span() => let #v = #k::__private::dep::<#t>(ctx, #name)?;));
                args.push(quote!(#v));
            }
        }
    }
    let ident = &model.ident;
    let k = &model.krate;
    let out = &model.item.sig.output;
    // Spanned on the return type: a response type that does not match the message's
    // points there, not at the attribute.
    let result = quote!(#k::__private::into_result(#ident(#(#args),*).await));
    let result = match (&model.ok_type, model.kind) {
        (Some(ok), Kind::Command) => {
            let msg = &model.message;
            let expected = quote!(<#msg as #k::Command>::Response);
            quote_spanned!(ok.span() => #k::__private::respond::<#ok, #expected>(#result))
        }
        (Some(ok), Kind::Event) => quote_spanned!(ok.span() => #k::__private::respond::<#ok, ()>(#result)),
        _ => result,
    };
    let invoke = quote_spanned!(out.span() => async move {
        #(#lets)*
        #result
    });
    (quote!(), invoke)
}

fn dep_keys(model: &HandlerFn) -> TokenStream {
    let p = {
        let k = &model.krate;
        quote!(#k::__private)
    };
    let keys = model.params.iter().filter_map(|param| match param {
        Param::Dep(t) => Some(quote!(#p::DepKey { type_id: #p::TypeId::of::<#t>, type_name: #p::type_name::<#t> })),
        _ => None,
    });
    quote!(&[#(#keys),*])
}

fn command(model: &HandlerFn) -> TokenStream {
    let k = &model.krate;
    let p = quote!(#k::__private);
    let msg = &model.message;
    let (lets, invoke) = call(model, &quote!(self));
    let name = handler_name(model);
    let deps = dep_keys(model);
    let impl_head = quote_spanned!(msg.span() => impl #k::CommandHandler for #msg);
    quote! {
        #[automatically_derived]
        #impl_head {
            fn handle(
                self,
                ctx: &mut #k::CommandContext,
            ) -> impl #p::Future<Output = #k::Result<<Self as #k::Command>::Response>> + #p::Send {
                #lets
                #invoke
            }
        }
        #p::inventory::submit! {
            #p::command_handler::<#msg>(#name, #deps)
        }
    }
}

fn query(model: &HandlerFn) -> TokenStream {
    let k = &model.krate;
    let p = quote!(#k::__private);
    let msg = &model.message;
    let ok = model.ok_type.clone().unwrap_or_else(|| syn::parse_quote!(()));
    let (lets, invoke) = call(model, &quote!(self));
    let name = handler_name(model);
    let deps = dep_keys(model);
    let impl_head = quote_spanned!(msg.span() => impl #k::QueryHandler for #msg);
    quote! {
        #[automatically_derived]
        #impl_head {
            type Response = #ok;
            fn handle(
                self,
                ctx: &#k::QueryContext,
            ) -> impl #p::Future<Output = #k::Result<#ok>> + #p::Send {
                #lets
                #invoke
            }
        }
        #p::inventory::submit! {
            #p::query_handler::<#msg>(#name, #deps)
        }
    }
}

fn event(model: &HandlerFn) -> TokenStream {
    let k = &model.krate;
    let p = quote!(#k::__private);
    let ev = &model.message;
    let message = if model.envelope { quote!(envelope) } else { quote!(&envelope.payload) };
    let (lets, invoke) = call(model, &message);
    let name = handler_name(model);
    let deps = dep_keys(model);
    let event_name = quote_spanned!(ev.span() => <#ev as #k::Event>::NAME);
    let asynchronous = model.asynchronous;
    quote! {
        fn __cqrs_ddd_call<'a>(
            envelope: &'a (dyn #p::Any + #p::Send + #p::Sync),
            ctx: &'a #k::EventContext,
        ) -> #p::BoxFuture<'a, #k::Result<()>> {
            let #p::Some(envelope) = envelope.downcast_ref::<#k::Envelope<#ev>>() else {
                return #p::Box::pin(async move { #p::Err(#p::wrong_envelope(#name)) });
            };
            #lets
            #p::Box::pin(#invoke)
        }
        #p::inventory::submit! {
            #p::EventHandlerRegistration {
                handler: #name,
                event_name: #event_name,
                event_type_id: #p::TypeId::of::<#ev>,
                deps: #deps,
                call: __cqrs_ddd_call,
                asynchronous: #asynchronous,
                unit_of_work: #asynchronous,
            }
        }
    }
}
