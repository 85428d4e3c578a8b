//! `#[upcaster(event = .., from = N, to = M)]`: a function over the JSON payload that
//! turns schema version `from` of an event into version `to`, registered for loading.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn};

use crate::common::args::Value;
use crate::common::{Args, Errors, fallback, wrong_item};

const KNOWN: &[&str] = &["event", "from", "to", "crate"];
const USAGE: &str = "#[upcaster(event = Deposited, from = 1, to = 2)]";

pub(crate) fn upcaster(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse(args, &item) {
        Ok(model) => expand(&model),
        Err(e) => fallback(item, &e),
    }
}

struct Upcaster {
    krate: syn::Path,
    item: ItemFn,
    /// `<T as Event>::NAME` or a string literal.
    event: TokenStream,
    from: u32,
    to: u32,
}

fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<Upcaster> {
    let f: ItemFn = syn::parse2(item.clone())
        .map_err(|_| wrong_item("upcaster", "a function `fn(serde_json::Value) -> serde_json::Value`", item))?;
    let mut args = Args::parse("upcaster", args);
    let krate = args.krate();
    let event = args.ty_or_string("event", "Deposited");
    let from = args.int("from", 1);
    let to = args.int("to", 2);
    let mut errors = Errors::default();
    errors.extend(args.finish(KNOWN));
    for (key, missing) in [("event = ..", event.is_none()), ("from = ..", from.is_none()), ("to = ..", to.is_none())] {
        if missing {
            errors.spanned(&f.sig.ident, format!("`#[upcaster]` needs `{key}`; write `{USAGE}`"));
        }
    }
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        errors.spanned(
            &f.sig.ident,
            format!("an upcaster goes forward: `to` ({to}) must be greater than `from` ({from})"),
        );
    }
    check_signature(&mut errors, &f);
    let event = match event {
        Some(Value::Type(ty)) => quote!(<#ty as #krate::Event>::NAME),
        Some(Value::Lit(lit)) => lit.to_token_stream(),
        _ => quote!(""),
    };
    errors.finish(Upcaster { krate, item: f, event, from: from.unwrap_or(1), to: to.unwrap_or(2) })
}

fn check_signature(errors: &mut Errors, f: &ItemFn) {
    if let Some(a) = f.sig.asyncness {
        errors.spanned(a, "an upcaster is a plain function over the payload; remove `async`");
    }
    if !f.sig.generics.params.is_empty() {
        errors.spanned(&f.sig.generics, "an upcaster cannot be generic");
    }
    let typed = f.sig.inputs.iter().filter(|a| matches!(a, FnArg::Typed(_))).count();
    if let Some(r) = f.sig.receiver() {
        errors.spanned(r, "an upcaster is a free function; remove `self`");
    } else if typed != 1 {
        errors.spanned(
            &f.sig.inputs,
            "an upcaster takes the payload as its one argument: `fn(payload: serde_json::Value) -> serde_json::Value`",
        );
    }
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(
            &f.sig.ident,
            "an upcaster returns the new payload: `-> serde_json::Value` or `-> Result<serde_json::Value, E>`",
        );
    }
}

fn expand(model: &Upcaster) -> TokenStream {
    let Upcaster { krate: k, item, event, from, to } = model;
    let p = quote!(#k::__private);
    let ident = &item.sig.ident;
    let out = &item.sig.output;
    let call = quote_spanned!(out.span() => #p::UpcastResult::into_upcast(#ident(payload)));
    quote! {
        #item
        #[doc(hidden)]
        const _: () = {
            fn __cqrs_ddd_upcast(
                payload: #p::serde_json::Value,
            ) -> #p::Result<#p::serde_json::Value, #p::String> {
                #call
            }
            #p::inventory::submit! {
                #p::UpcasterRegistration {
                    event_type: #event,
                    from: #from,
                    to: #to,
                    name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    upcast: __cqrs_ddd_upcast,
                }
            }
        };
    }
}
