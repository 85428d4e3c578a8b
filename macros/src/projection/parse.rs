use darling::FromMeta;
use proc_macro2::TokenStream;
use syn::{ImplItem, ImplItemFn, LitStr, Type};

use super::model::{OnFn, ProjectionImpl};
use super::validate;
use crate::common::signature::{SelfArg, concrete, self_arg, typed_args};
use crate::common::{
    Arg, Errors, is_named, last_segment, markers, no_generics, not_on_trait_impl, options, single_arg,
};

/// `#[projection(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct ProjectionOptions {
    /// The stored name of the projection (its checkpoint, lease and dead letters); the Rust
    /// type name by default. Keep it when renaming the type.
    name: Option<Arg<LitStr>>,
    /// A document collection keyed by stream id, loaded for a whole batch at once.
    prefetch: Option<Arg<LitStr>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) const EXAMPLE: &str =
    "#[on] async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()>";

pub(crate) fn parse(args: TokenStream, mut item: syn::ItemImpl) -> (ProjectionImpl, Errors) {
    let mut errors = Errors::default();
    let opts: ProjectionOptions = options::parse("projection", args, &mut errors);
    let krate = options::krate(opts.krate);
    let prefetch = opts.prefetch.map(|a| a.value);
    not_on_trait_impl(&mut errors, &item, "projection");
    no_generics(&mut errors, &item.generics, "projection", "impl block");
    let mut handlers = Vec::new();
    let mut reset = None;
    for it in &mut item.items {
        let ImplItem::Fn(f) = it else { continue };
        let on = markers::take_plain(&mut errors, &mut f.attrs, "on");
        let is_reset = markers::take_plain(&mut errors, &mut f.attrs, "reset");
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
    validate::handlers(&mut errors, &handlers, &item.self_ty);
    let self_ty = (*item.self_ty).clone();
    let name = opts.name.map_or_else(
        || {
            let ident = last_segment(&self_ty).map_or_else(|| "projection".to_owned(), |(i, _)| i.to_string());
            LitStr::new(&ident, proc_macro2::Span::call_site())
        },
        |a| a.value,
    );
    (ProjectionImpl { krate, self_ty, name, item, handlers, reset, prefetch }, errors)
}

fn check_common(errors: &mut Errors, f: &ImplItemFn, marker: &str) {
    if f.sig.asyncness.is_none() {
        errors.spanned(f.sig.fn_token, format!("`#[{marker}]` methods are `async`; add `async`"));
    }
    if self_arg(&f.sig) != SelfArg::Ref {
        errors.spanned(&f.sig.ident, format!("`#[{marker}]` methods take `&self` (state lives in the read model)"));
    }
    concrete(errors, &f.sig, marker);
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(&f.sig.ident, format!("`#[{marker}]` methods return `Result<()>`"));
    }
}

fn on_fn(errors: &mut Errors, f: &ImplItemFn) -> Option<OnFn> {
    check_common(errors, f, "on");
    let typed: Vec<&Type> = typed_args(&f.sig).into_iter().map(|t| &*t.ty).collect();
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
