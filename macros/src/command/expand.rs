use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{CommandModel, Target};

pub(crate) fn expand(model: &CommandModel, item: TokenStream) -> TokenStream {
    let CommandModel { krate: k, ident, name, response, target, stub_handler, .. } = model;
    // An aggregate's command responds with `()`; a `response` beside it is reported.
    let response = match response {
        Some(r) if target.is_none() => quote!(#r),
        _ => quote!(()),
    };
    let by_name = by_name(model);
    let routed = target.as_ref().map(|t| routed(model, t));
    let stub = stub_handler.then(|| stub_handler_impl(model));
    let locks = (!model.lock.is_empty()).then(|| locks(model));
    let (checker, validate) =
        model.validate.as_ref().map(|key| crate::common::validate_method(k, key, "Command")).unzip();
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #k::Command for #ident {
                const NAME: &'static str = #name;
                type Response = #response;
                #validate
            }
            #checker
            #by_name
            #routed
            #stub
            #locks
        };
    }
}

/// The resources `lock = [..]` names, registered for the lock middleware.
fn locks(model: &CommandModel) -> TokenStream {
    let CommandModel { krate: k, ident, name, lock, lock_kind, .. } = model;
    let p = quote!(#k::__private);
    let kind = match lock_kind {
        Some(aggregate) => quote!(<#aggregate as #k::Aggregate>::TYPE),
        None => quote!(#name),
    };
    let resources = lock.iter().map(|field| {
        quote_spanned! {field.span()=>
            (#k::lock::Resource::new(#kind, #p::ToString::to_string(&cmd.#field)), #k::lock::LockMode::Write)
        }
    });
    quote! {
        fn __cqrs_ddd_locks(any: &dyn #p::Any) -> #p::Vec<(#k::lock::Resource, #k::lock::LockMode)> {
            match any.downcast_ref::<#ident>() {
                #p::Some(cmd) => #p::vec![#(#resources),*],
                #p::None => #p::Vec::new(),
            }
        }

        #p::inventory::submit! {
            #p::CommandLocks { type_id: #p::TypeId::of::<#ident>, resources: __cqrs_ddd_locks }
        }
    }
}

/// A handler that never runs (the crate does not compile): the route's mistake is
/// reported once, not again at each `send` of the command.
fn stub_handler_impl(model: &CommandModel) -> TokenStream {
    let CommandModel { krate: k, ident, .. } = model;
    let p = quote!(#k::__private);
    quote! {
        #[automatically_derived]
        impl #k::CommandHandler for #ident {
            fn handle(
                self,
                _: &mut #k::CommandContext,
            ) -> impl #p::Future<Output = #k::Result<()>> + #p::Send {
                async { ::core::unreachable!() }
            }
        }
    }
}

/// The registration of the stored name, for dispatch by name. Which way the command is
/// sent (its compile-time handler, a handler registered by hand, or an error when it is
/// not `Deserialize`) is chosen by method resolution on the concrete type: the first of
/// the three traits whose impl applies wins.
fn by_name(model: &CommandModel) -> TokenStream {
    let CommandModel { krate: k, ident, name, .. } = model;
    let p = quote!(#k::__private);
    quote! {
        fn __cqrs_ddd_dispatch_json() -> #p::DispatchJson {
            #[allow(unused_imports)]
            use #p::{DispatchNotDecodable as _, DispatchViaDynHandler as _, DispatchViaHandler as _};
            (&&&#p::DispatchProbe::<#ident>::new()).__cqrs_ddd_dispatch_json()
        }

        fn __cqrs_ddd_encode() -> #p::catalog::EncodeReply {
            #[allow(unused_imports)]
            use #p::catalog::{EncodeNot as _, EncodeSerialize as _};
            (&&#p::catalog::Probe::<#ident>::new()).__cqrs_ddd_encode()
        }

        fn __cqrs_ddd_request_schema() -> #p::catalog::SchemaFn {
            #k::__cqrs_ddd_schema!(request, #ident)
        }

        fn __cqrs_ddd_response_schema() -> #p::catalog::SchemaFn {
            #k::__cqrs_ddd_schema!(command_response, #ident)
        }

        #p::inventory::submit! {
            #p::CommandTypeRegistration {
                name: #name,
                type_id: #p::TypeId::of::<#ident>,
                type_name: #p::type_name::<#ident>,
                dispatch: __cqrs_ddd_dispatch_json,
                encode: __cqrs_ddd_encode,
                request_schema: __cqrs_ddd_request_schema,
                response_schema: __cqrs_ddd_response_schema,
            }
        }
    }
}

/// The aggregate route: `AggregateCommand`, the `CommandHandler` that loads, decides and
/// stages, and its registration.
fn routed(model: &CommandModel, target: &Target) -> TokenStream {
    let CommandModel { krate: k, ident, name, .. } = model;
    let p = quote!(#k::__private);
    let Target { aggregate, id_field, id_ty } = target;
    let id_ref = quote_spanned!(id_ty.span() => &self.#id_field);
    // One check of the route, on the aggregate the user named; the handler itself goes
    // through a probe that needs no bound, so a missing `#[handle]` is one error.
    let assert = quote_spanned!(aggregate.span() => #p::assert_routed::<#aggregate, #ident>());
    let execute = quote! {{
        #[allow(unused_imports)]
        use #p::{RouteMissing as _, RouteViaHandle as _};
        (&&#p::Route::<#aggregate, Self>::new()).execute(ctx, self)
    }};
    let handler = format!("#[handle] of {}", quote!(#aggregate));
    quote! {
        #[automatically_derived]
        impl #k::AggregateCommand for #ident {
            type Aggregate = #aggregate;
            fn aggregate_id(&self) -> &<#aggregate as #k::Aggregate>::Id {
                #id_ref
            }
        }

        const _: () = #assert;

        #[automatically_derived]
        impl #k::CommandHandler for #ident {
            fn handle(
                self,
                ctx: &mut #k::CommandContext,
            ) -> impl #p::Future<Output = #k::Result<()>> + #p::Send {
                async move {
                    let route = #execute;
                    route.await
                }
            }
        }

        #p::inventory::submit! {
            #p::CommandRegistration {
                name: #name,
                type_id: #p::TypeId::of::<#ident>,
                handler: #handler,
                deps: &[],
                call: #p::erased_command::<#ident>,
            }
        }
    }
}
