use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, ImplItem, ImplItemFn, LitStr, Type};

use super::{OnFn, ProjectionImpl};
use crate::common::{Args, Errors, is_named, last_segment, no_generics, single_arg};

const EXAMPLE: &str = "#[on] async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()>";

pub(crate) fn parse(args: TokenStream, mut item: syn::ItemImpl) -> (ProjectionImpl, Errors) {
    let mut args = Args::parse("projection", args);
    let krate = args.krate();
    let name = args.string("name");
    let prefetch = args.string("prefetch");
    let mut errors = Errors::default();
    errors.extend(args.finish(&["name", "prefetch", "crate"]));
    if let Some((_, path, _)) = &item.trait_ {
        errors
            .spanned(path, "`#[projection]` goes on an inherent impl block (`impl Balances { .. }`), not a trait impl");
    }
    no_generics(&mut errors, &item.generics, "projection", "impl block");
    let mut handlers = Vec::new();
    let mut reset = None;
    for it in &mut item.items {
        let ImplItem::Fn(f) = it else { continue };
        let on = take(f, "on", &mut errors);
        let is_reset = take(f, "reset", &mut errors);
        if on && is_reset {
            errors.spanned(&f.sig.ident, "a method is either `#[on]` or `#[reset]`, not both");
        }
        if on {
            if let Some(h) = on_fn(&mut errors, f) {
                handlers.push(h);
            }
        } else if is_reset {
            check_common(&mut errors, f, "reset");
            if reset.replace(f.sig.ident.clone()).is_some() {
                errors.spanned(&f.sig.ident, "a projection has one `#[reset]` method");
            }
        }
    }
    for (i, h) in handlers.iter().enumerate() {
        let key = h.event.to_token_stream().to_string();
        if let Some(first) = handlers[..i].iter().find(|o| o.event.to_token_stream().to_string() == key) {
            errors.spanned(
                &h.method,
                format!("event `{key}` is already handled by `{}`; keep one `#[on]` per event", first.method),
            );
        }
    }
    if handlers.is_empty() {
        errors.spanned(&item.self_ty, format!("this `#[projection]` has no `#[on]` method; write `{EXAMPLE}`"));
    }
    let self_ty = (*item.self_ty).clone();
    let name = name.unwrap_or_else(|| {
        let ident = last_segment(&self_ty).map_or_else(|| "projection".to_owned(), |(i, _)| i.to_string());
        LitStr::new(&ident, proc_macro2::Span::call_site())
    });
    (ProjectionImpl { krate, self_ty, name, item, handlers, reset, prefetch }, errors)
}

/// Removes the marker `#[name]` from a method; whether it was there.
fn take(f: &mut ImplItemFn, name: &str, errors: &mut Errors) -> bool {
    let before = f.attrs.len();
    f.attrs.retain(|a| {
        if a.path().is_ident(name) {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                errors.spanned(a, format!("`#[{name}]` takes no arguments"));
            }
            false
        } else {
            true
        }
    });
    f.attrs.len() != before
}

fn check_common(errors: &mut Errors, f: &ImplItemFn, marker: &str) {
    if f.sig.asyncness.is_none() {
        errors.spanned(f.sig.fn_token, format!("`#[{marker}]` methods are `async`; add `async`"));
    }
    if !matches!(f.sig.receiver(), Some(r) if r.reference.is_some() && r.mutability.is_none()) {
        errors.spanned(&f.sig.ident, format!("`#[{marker}]` methods take `&self` (state lives in the read model)"));
    }
    if !f.sig.generics.params.is_empty() {
        errors.spanned(&f.sig.generics, format!("`#[{marker}]` methods cannot be generic"));
    }
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(&f.sig.ident, format!("`#[{marker}]` methods return `Result<()>`"));
    }
}

fn on_fn(errors: &mut Errors, f: &ImplItemFn) -> Option<OnFn> {
    check_common(errors, f, "on");
    let typed: Vec<&Type> = f
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let (event_ty, takes_tx) = match typed.as_slice() {
        [event] => (*event, false),
        [event, Type::Reference(r)] if r.mutability.is_some() && is_named(&r.elem, "ProjectionTx") => (*event, true),
        [_, tx] => {
            errors.spanned(tx, "the second argument of an `#[on]` method is the transaction: `tx: &mut ProjectionTx`");
            return None;
        }
        _ => {
            errors.spanned(&f.sig.ident, format!("an `#[on]` method takes the event and the transaction: `{EXAMPLE}`"));
            return None;
        }
    };
    let Type::Reference(r) = event_ty else {
        errors.spanned(event_ty, "`#[on]` methods borrow the event: `e: &Envelope<Deposited>` or `e: &Deposited`");
        return None;
    };
    let (event, envelope) = match single_arg(&r.elem, "Envelope") {
        Some(inner) => (inner.clone(), true),
        None => ((*r.elem).clone(), false),
    };
    Some(OnFn { method: f.sig.ident.clone(), event, envelope, takes_tx })
}
