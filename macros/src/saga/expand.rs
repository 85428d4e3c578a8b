//! The struct's `#[saga]` implements `Saga` (name, registration) and defines a hidden
//! macro beside the struct, `__cqrs_ddd_saga_<Struct>!(payload, missing)`, that hands its
//! default association to the impl block: a proc macro sees one item, so the field named
//! in `#[saga(associate = order_id)]` reaches the steps' `associate` functions only this
//! way. The impl block's `#[saga]` generates one `SagaHandles<E>` per step and the hidden
//! `SagaSteps` impl that `Saga::send` calls: the commands are known there only (a struct
//! without its impl block gets the trait's "has no steps" error).

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Index, Type};

use super::model::{Association, Codegen, DefaultAssociation, SagaImpl, SagaStruct, Sends, StepFn, Tcc, Transition};
use super::parse::bridge_name;
use crate::common::last_segment;

pub(crate) fn expand_struct(model: &SagaStruct, item: TokenStream) -> TokenStream {
    let SagaStruct { krate: k, ident, associate, generic, .. } = model;
    let p = quote!(#k::__private);
    let bridge = bridge_name(ident);
    let association = match associate {
        DefaultAssociation::Field(field) => {
            // Spanned on the field in `#[saga(associate = ..)]`: an event without it errors there.
            let access = quote_spanned!(field.span() => &$payload.#field);
            quote!(#p::Some(::std::string::ToString::to_string(#access)))
        }
        DefaultAssociation::Missing => quote!($missing),
        DefaultAssociation::Broken => quote!(#p::None),
    };
    let saga = (!generic).then(|| saga_impl(model));
    quote! {
        #item
        #saga

        #[doc(hidden)]
        #[allow(unused_macros)]
        macro_rules! #bridge {
            ($payload:expr, $missing:expr) => { #association };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use #bridge;
    }
}

/// `Saga` (its `send` is generated on the impl block, which knows the commands) and
/// the registration.
fn saga_impl(model: &SagaStruct) -> TokenStream {
    let SagaStruct { krate: k, ident, name, .. } = model;
    let p = quote!(#k::__private);
    quote! {
        #[doc(hidden)]
        const _: () = {
            // A free function rather than `<Self as Saga>::send` in the registration:
            // a struct missing `Default` (a supertrait) then errors once, at the struct.
            fn __cqrs_ddd_send<'a>(
                mediator: &'a #k::Mediator,
                command: &'a #k::saga::SagaCommand,
                metadata: #k::Metadata,
            ) -> #p::BoxFuture<'a, #k::Result<()>> {
                match <#ident as #p::SagaSteps>::__cqrs_ddd_saga_send(mediator, command, metadata) {
                    #p::Some(sent) => sent,
                    #p::None => #p::saga_unknown_command::<#ident>(command),
                }
            }

            #[automatically_derived]
            impl #k::saga::Saga for #ident {
                const NAME: &'static str = #name;

                fn send<'a>(
                    mediator: &'a #k::Mediator,
                    command: &'a #k::saga::SagaCommand,
                    metadata: #k::Metadata,
                ) -> #p::BoxFuture<'a, #k::Result<()>> {
                    __cqrs_ddd_send(mediator, command, metadata)
                }
            }

            #p::inventory::submit! {
                #p::SagaRegistration {
                    name: #name,
                    type_name: #p::type_name::<#ident>,
                    send: __cqrs_ddd_send,
                }
            }
        };
    }
}

pub(crate) fn expand_impl(model: &SagaImpl) -> TokenStream {
    let item = model.item.to_token_stream();
    if model.bridge.is_none() {
        return item;
    }
    let live: Vec<&StepFn> =
        model.steps.iter().filter(|s| s.codegen != Codegen::Duplicate && s.event.is_some()).collect();
    let timers: Vec<&StepFn> = model.steps.iter().filter(|s| s.timer.is_some()).collect();
    let sending: Vec<&StepFn> = live.iter().chain(&timers).copied().collect();
    let send = send_fn(model, &sending, &timers);
    let steps = live.iter().map(|s| step_impl(model, s));
    let k = &model.krate;
    let p = quote!(#k::__private);
    let self_ty = &model.self_ty;
    let deadlines = (!timers.is_empty()).then(|| {
        quote! {
            #p::inventory::submit! {
                #p::SagaDeadlineRegistration {
                    saga: <#self_ty as #k::saga::Saga>::NAME,
                    fire: #p::saga_deadline_step::<#self_ty>,
                }
            }
        }
    });
    quote! {
        #item

        #[doc(hidden)]
        const _: () = {
            // What a saga may send. Called first wherever a command is used, spanned on
            // the command in the attribute: rustc then reports a missing handler (or
            // serde impl) once, there, and drops the same error of the later uses.
            fn __cqrs_ddd_sendable<C>()
            where
                C: #k::CommandHandler + __CqrsDddStored,
            {
            }

            #[diagnostic::on_unimplemented(
                message = "saga command `{Self}` must be `Serialize` and `Deserialize`",
                label = "a saga stores the commands it sends as JSON until they are handled",
                note = "add `#[derive(Serialize, Deserialize)]` to `{Self}`"
            )]
            trait __CqrsDddStored {}
            impl<C: #p::serde::Serialize + #p::serde::de::DeserializeOwned> __CqrsDddStored for C {}

            #[diagnostic::on_unimplemented(
                message = "this step returns `{Self}`, but its `#[step(..)]` options send `{Sent}`",
                label = "expected `{Sent}` here",
                note = "a step returns what it sends: nothing → `()`; `send = C` → `C`; with `compensate = K` → `(C, K)`; `send_all = [A, B]` → `(A, B)`; with `compensate = [KA, KB]` → `((A, B), (KA, KB))`; `tcc(try = T, confirm = C, cancel = K)` → `(T, C, K)`"
            )]
            trait __CqrsDddReturns<Sent> {
                fn __cqrs_ddd_sent(self) -> Sent;
            }
            impl<Sent> __CqrsDddReturns<Sent> for Sent {
                #[inline]
                fn __cqrs_ddd_sent(self) -> Sent {
                    self
                }
            }

            #send
            #(#steps)*
            #deadlines
        };
    }
}

/// `__cqrs_ddd_sendable::<C>();`, spanned on `C`.
fn sendable(command: &Type) -> TokenStream {
    quote_spanned!(command.span() => __cqrs_ddd_sendable::<#command>();)
}

/// The commands the saga's steps can send, each once, in the order first named.
fn commands<'a>(steps: &[&'a StepFn]) -> Vec<&'a Type> {
    let mut seen: Vec<&Type> = Vec::new();
    for c in steps.iter().filter(|s| s.codegen == Codegen::Full).flat_map(|s| s.sends.commands()) {
        let key = c.to_token_stream().to_string();
        if !seen.iter().any(|s| s.to_token_stream().to_string() == key) {
            seen.push(c);
        }
    }
    seen
}

/// `__cqrs_ddd_saga_send`: sends a stored command by its type name; `None` for a name
/// no step sends.
fn send_fn(model: &SagaImpl, steps: &[&StepFn], timers: &[&StepFn]) -> TokenStream {
    let SagaImpl { krate: k, self_ty, .. } = model;
    let p = quote!(#k::__private);
    let deadlines = timers.iter().filter_map(|t| {
        let name = &t.timer.as_ref()?.name;
        let body = if t.codegen == Codegen::Full { body(model, t) } else { stub_body(model, t) };
        Some(quote! {
            if name == #name {
                return #p::Some({ #body });
            }
        })
    });
    let arms = commands(steps).into_iter().map(|c| {
        let sendable = sendable(c);
        quote_spanned! { c.span() =>
            #sendable
            if command.command_type == <#c as #k::Command>::NAME {
                return #p::Some(#p::saga_send_command::<#c>(mediator, command, metadata));
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #p::SagaSteps for #self_ty {
            fn __cqrs_ddd_saga_send<'a>(
                mediator: &'a #k::Mediator,
                command: &'a #k::saga::SagaCommand,
                metadata: #k::Metadata,
            ) -> #p::Option<#p::BoxFuture<'a, #k::Result<()>>> {
                #(#arms)*
                let _ = (mediator, command, metadata);
                #p::None
            }

            fn __cqrs_ddd_saga_deadline(&mut self, name: &str) -> #p::Option<#p::SagaStep> {
                #(#deadlines)*
                let _ = name;
                #p::None
            }
        }
    }
}

fn step_impl(model: &SagaImpl, step: &StepFn) -> TokenStream {
    let SagaImpl { krate: k, self_ty, ident, .. } = model;
    let p = quote!(#k::__private);
    let Some(ev) = &step.event else { return TokenStream::new() };
    let starts = step.start;
    let (associate, on_event) = if step.codegen == Codegen::Stub {
        (quote!(let _ = event; #p::None), stub_body(model, step))
    } else {
        (association(model, step, ev), body(model, step))
    };
    let handler = format!("{ident} saga");
    // One use of the event type outside the impl, spanned on it: a type that is not an
    // `#[event]` is one error, at the step's argument.
    let registration = quote_spanned! {ev.span() =>
        #p::saga_step::<#self_ty, #ev>(::core::concat!(::core::module_path!(), "::", #handler))
    };
    // Spanned on the event: a type that is not an `#[event]` errors at the step's argument.
    let handles = respan(quote!(#k::saga::SagaHandles<#ev>), ev.span());
    quote! {
        #[automatically_derived]
        impl #handles for #self_ty {
            const STARTS: bool = #starts;

            fn associate(event: &#k::Envelope<#ev>) -> #p::Option<#p::String> {
                #associate
            }

            fn on_event(&mut self, event: &#k::Envelope<#ev>) -> #p::SagaStep {
                #on_event
            }
        }

        #p::inventory::submit! {
            #registration
        }
    }
}

/// The body of `associate`: a field of the payload, the correlation id, or the struct's
/// default through its hidden macro.
fn association(model: &SagaImpl, step: &StepFn, ev: &Type) -> TokenStream {
    let SagaImpl { krate: k, ident, bridge, .. } = model;
    let p = quote!(#k::__private);
    match &step.association {
        Association::Field(field) => {
            // Spanned on `associate = field`: an event without that field errors there.
            let access = quote_spanned!(field.span() => &event.payload.#field);
            quote!(#p::Some(::std::string::ToString::to_string(#access)))
        }
        Association::Correlation => quote! {
            #p::Option::map(event.header.metadata.correlation_id, |id| ::std::string::ToString::to_string(&id))
        },
        Association::Default => {
            let message = format!(
                "step `{}` does not say which `{ident}` instance its event belongs to; write `#[step(associate = field)]` with a field of `{}`, or `#[step(by_correlation)]`, or give the struct a default: `#[saga(associate = field)]`",
                step.method,
                ev.to_token_stream(),
            );
            let missing = quote_spanned!(step.method.span() => ::core::compile_error!(#message));
            quote_spanned!(ev.span() => #bridge!(event.payload, #missing))
        }
    }
}

/// The body of `on_event`: calls the step method, checking its return type against the
/// options, and builds the `Step`.
fn body(model: &SagaImpl, step: &StepFn) -> TokenStream {
    let SagaImpl { krate: k, self_ty, .. } = model;
    let p = quote!(#k::__private);
    let method = &step.method;
    let name = method.unraw().to_string();
    let arg = match (&step.timer, step.envelope) {
        (Some(_), _) => TokenStream::new(),
        (None, true) => quote!(, event),
        (None, false) => quote!(, &event.payload),
    };
    // Spanned on the user's return type: a method returning the wrong commands errors there.
    let span = step.output.as_ref().map_or_else(|| method.span(), Spanned::span);
    let expected = respan(expected(&step.sends), span);
    let (binding, sends) = match &step.sends {
        Sends::Nothing => (quote!(_), TokenStream::new()),
        sends => (quote!(sent), plan(model, sends)),
    };
    let call = quote_spanned! { span =>
        #[allow(clippy::let_unit_value)]
        let #binding: #expected = <_ as __CqrsDddReturns<#expected>>::__cqrs_ddd_sent(<#self_ty>::#method(self #arg));
    };
    let tcc_begin = step.tcc_begin.map(|s| quote_spanned!(s => .tcc_begin()));
    let tcc_confirm = step.tcc_confirm.map(|s| quote_spanned!(s => .tcc_confirm()));
    let transition = match step.transition {
        Transition::Continue => TokenStream::new(),
        Transition::Complete => quote!(.complete()),
        Transition::Suspend(None) => quote!(.suspend(#p::None)),
        Transition::Suspend(Some(ms)) => quote!(.suspend(#p::Some(#p::Duration::from_millis(#ms)))),
        Transition::Fail if step.timer.is_some() => {
            let reason = format!("deadline `{name}` failed the saga");
            quote!(.fail(#reason))
        }
        Transition::Fail => {
            let event = step.event.as_ref().and_then(last_segment).map_or_else(String::new, |(e, _)| e.to_string());
            let reason = format!("step `{name}` failed the saga on `{event}`");
            quote!(.fail(#reason))
        }
    };
    let arms = step.arms.iter().filter_map(|armed| {
        let timer = model.steps.iter().find_map(|s| s.timer.as_ref().filter(|t| *armed == t.name))?;
        let (armed, after) = (&timer.name, timer.after);
        Some(quote!(.arm(#armed, #p::Duration::from_millis(#after))))
    });
    let disarms = step.disarms.iter().map(|d| {
        let d = d.unraw().to_string();
        quote!(.disarm(#d))
    });
    let sendable = step.sends.commands().into_iter().map(sendable);
    quote! {
        #(#sendable)*
        #call
        let step = #p::SagaStep::new(#name) #tcc_begin;
        #sends
        step #tcc_confirm #transition #(#arms)* #(#disarms)*
    }
}

/// What the step method returns for these options.
fn expected(sends: &Sends) -> TokenStream {
    match sends {
        Sends::Nothing => quote!(()),
        Sends::One { command, compensate: None } => quote!(#command),
        Sends::One { command, compensate: Some(k) } => quote!((#command, #k)),
        Sends::All { commands, compensate: None } => quote!((#(#commands,)*)),
        Sends::All { commands, compensate: Some(ks) } => quote!(((#(#commands,)*), (#(#ks,)*))),
        Sends::Tcc(tcc) => {
            let Tcc { attempt, confirm, cancel, .. } = tcc;
            quote!((#attempt, #confirm, #cancel))
        }
    }
}

/// `let step = SagaStep::send::<C>(step, &sent);` and the like, one per planned command.
/// Explicit generics make rustc point a command without handler (or not serializable)
/// at that command in the attribute, where `__cqrs_ddd_sendable` already reported it.
fn plan(model: &SagaImpl, sends: &Sends) -> TokenStream {
    let k = &model.krate;
    let p = quote!(#k::__private);
    let step = quote!(#p::SagaStep);
    match sends {
        Sends::Nothing => TokenStream::new(),
        Sends::One { command, compensate: None } => quote!(let step = #step::send::<#command>(step, &sent);),
        Sends::One { command, compensate: Some(undo) } => {
            quote!(let step = #step::send_compensated::<#command, #undo>(step, &sent.0, &sent.1);)
        }
        Sends::All { commands, compensate } => {
            let calls = commands.iter().enumerate().map(|(i, c)| {
                let index = Index::from(i);
                match compensate.as_ref().and_then(|undo| undo.get(i)) {
                    None => quote!(let step = #step::send::<#c>(step, &sent.#index);),
                    Some(undo) => quote! {
                        let step = #step::send_compensated::<#c, #undo>(step, &sent.0.#index, &sent.1.#index);
                    },
                }
            });
            quote!(#(#calls)* let step = step.send_all();)
        }
        Sends::Tcc(tcc) => {
            let Tcc { attempt, confirm, cancel, deadline } = tcc;
            let deadline = match deadline {
                Some(ms) => quote!(#p::Some(#p::Duration::from_millis(#ms))),
                None => quote!(#p::None),
            };
            quote! {
                let step = #step::tcc_try::<#attempt, #confirm, #cancel>(step, &sent.0, &sent.1, &sent.2, #deadline);
            }
        }
    }
}

/// A step with a reported mistake: plans nothing (the mistake is reported once).
fn stub_body(model: &SagaImpl, step: &StepFn) -> TokenStream {
    let p = {
        let k = &model.krate;
        quote!(#k::__private)
    };
    let name = step.method.unraw().to_string();
    let used = step.event.is_some().then(|| quote!(let _ = event;));
    quote! {
        #used
        #p::SagaStep::new(#name)
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let TokenTree::Group(g) = &t {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                t = TokenTree::Group(group);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}
