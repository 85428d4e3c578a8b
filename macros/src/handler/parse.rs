use darling::FromMeta;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use super::model::{HandlerFn, Kind, Param};
use super::validate;
use crate::common::options::Word;
use crate::common::{Arg, Errors, is_named, options, single_arg, wrong_item};

/// `#[command_handler(..)]` and `#[query_handler(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct HandlerOptions {
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// `#[event_handler(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct EventHandlerOptions {
    /// Delivered after commit through the outbox, at least once, in its own unit of work
    /// (needs an outbox relay), instead of inside the command's unit of work.
    #[darling(rename = "async")]
    asynchronous: Option<Arg<Word>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// The handler, and the mistakes in its arguments (reported beside a full expansion);
/// a mistake in the signature is `Err` (nothing can be generated).
pub(crate) fn parse(kind: Kind, args: TokenStream, item: &TokenStream) -> syn::Result<(HandlerFn, Errors)> {
    let name = kind.macro_name();
    let f: ItemFn = syn::parse2(item.clone())
        .map_err(|_| wrong_item(name, &format!("an `async fn`, like `{}`", kind.example()), item))?;
    let mut arg_errors = Errors::default();
    let (krate, asynchronous) = if kind == Kind::Event {
        let o: EventHandlerOptions = options::parse(name, args, &mut arg_errors);
        (options::krate(o.krate), o.asynchronous.is_some())
    } else {
        let o: HandlerOptions = options::parse(name, args, &mut arg_errors);
        (options::krate(o.krate), false)
    };
    let mut errors = Errors::default();
    validate::signature(&mut errors, kind, &f);

    let mut params = Vec::new();
    let mut message: Option<(Type, bool)> = None;
    // A parameter that was reported as a malformed message: no "needs a parameter" on top.
    let mut attempted = false;
    for input in &f.sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        match classify(&mut errors, kind, &pt.ty) {
            Some(Classified::Dep(t)) => params.push(Param::Dep(Box::new(t))),
            Some(Classified::Context(shared)) => params.push(Param::Context { shared }),
            Some(Classified::Message(t, envelope)) => {
                if let Some((first, _)) = &message {
                    errors.spanned(
                        &pt.ty,
                        format!(
                            "a handler receives one {} (already `{}`); other parameters must be `Dep<T>` services or `&{}`",
                            kind.message(),
                            first.to_token_stream(),
                            kind.context()
                        ),
                    );
                } else {
                    message = Some((t, envelope));
                }
                params.push(Param::Message);
            }
            None => attempted = true,
        }
    }
    if message.is_none() && !attempted {
        errors.spanned(
            &f.sig.ident,
            format!("`#[{name}]` needs a parameter for the {} it handles, like `{}`", kind.message(), kind.example()),
        );
    }
    let ok_type = ok_type(&f.sig.output);
    if kind == Kind::Query && ok_type.is_none() {
        errors.spanned(
            &f.sig.output,
            "a `#[query_handler]` returns `Result<T>` (or `Result<T, E>`), where `T` is what the query answers with",
        );
    }
    let ident = f.sig.ident.clone();
    let (message, envelope) = message.unwrap_or_else(|| (syn::parse_quote!(()), false));
    errors.check()?;
    Ok((HandlerFn { krate, kind, item: f, ident, message, envelope, params, ok_type, asynchronous }, arg_errors))
}

enum Classified {
    Message(Type, bool),
    Context(bool),
    Dep(Type),
}

fn classify(errors: &mut Errors, kind: Kind, ty: &Type) -> Option<Classified> {
    if let Some(inner) = single_arg(ty, "Dep") {
        if let Type::TraitObject(t) = inner {
            let bounds = t.bounds.to_token_stream();
            errors.spanned(
                ty,
                format!(
                    "a `Dep` holds a sized service, not `dyn {bounds}`; provide `Arc<dyn {bounds}>` (`.provide(Arc::new(service) as Arc<dyn {bounds}>)`) and take `Dep<Arc<dyn {bounds}>>`"
                ),
            );
            return None;
        }
        return Some(Classified::Dep(inner.clone()));
    }
    if let Type::Reference(r) = ty {
        for ctx in ["CommandContext", "QueryContext", "EventContext"] {
            if is_named(&r.elem, ctx) {
                if ctx != kind.context() {
                    errors.spanned(
                        ty,
                        format!("a `#[{}]` receives `&{}`, not `{ctx}`", kind.macro_name(), kind.context()),
                    );
                    return None;
                }
                return Some(Classified::Context(r.mutability.is_none()));
            }
        }
    }
    if let Type::ImplTrait(_) = ty {
        errors.spanned(ty, format!("the {} parameter needs a concrete type, not `impl Trait`", kind.message()));
        return None;
    }
    match (kind, ty) {
        (Kind::Event, Type::Reference(r)) if r.mutability.is_none() => match single_arg(&r.elem, "Envelope") {
            Some(inner) => Some(Classified::Message(inner.clone(), true)),
            None => Some(Classified::Message((*r.elem).clone(), false)),
        },
        (Kind::Event, _) => {
            errors.spanned(
                ty,
                "event handlers borrow the event: take `&Envelope<Deposited>` (with metadata) or `&Deposited`",
            );
            None
        }
        (_, Type::Reference(_)) => {
            errors.spanned(ty, format!("take the {} by value, like `{}`", kind.message(), kind.example()));
            None
        }
        _ => Some(Classified::Message(ty.clone(), false)),
    }
}

/// `T` from a return type `Result<T>` / `Result<T, E>` (any path ending in `Result`).
fn ok_type(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else { return None };
    match crate::common::last_segment(ty) {
        Some((ident, args)) if ident == "Result" && !args.is_empty() => Some(args[0].clone()),
        _ => None,
    }
}

/// The function as the user wrote it, with `Dep<dyn Trait>` (reported) read as
/// `Dep<Arc<dyn Trait>>`, so the function itself compiles and the mistake is one error.
pub(crate) fn repair(item: TokenStream) -> TokenStream {
    let Ok(mut f) = syn::parse2::<ItemFn>(item.clone()) else { return item };
    for input in &mut f.sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        let Type::Path(p) = &mut *pt.ty else { continue };
        let Some(last) = p.path.segments.last_mut() else { continue };
        let syn::PathArguments::AngleBracketed(args) = &mut last.arguments else { continue };
        if last.ident != "Dep" {
            continue;
        }
        for arg in &mut args.args {
            if let syn::GenericArgument::Type(t @ Type::TraitObject(_)) = arg {
                *t = syn::parse_quote_spanned!(t.span() => ::std::sync::Arc<#t>);
            }
        }
    }
    f.to_token_stream()
}
