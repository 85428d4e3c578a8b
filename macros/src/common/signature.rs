//! Checks on the signatures of marked methods and functions, shared by every macro.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItemFn, PatType, ReceiverKind, Signature, Type};

use super::errors::Errors;

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelfArg {
    None,
    /// `self`, `mut self` or `self: Box<Self>`.
    Value,
    /// `&self`.
    Ref,
    /// `&mut self`.
    RefMut,
}

pub(crate) fn self_arg(sig: &Signature) -> SelfArg {
    match sig.receiver() {
        None => SelfArg::None,
        Some(r) => match &r.kind {
            ReceiverKind::Reference(_, _, None) => SelfArg::Ref,
            ReceiverKind::Reference(_, _, Some(_)) => SelfArg::RefMut,
            _ => SelfArg::Value,
        },
    }
}

/// The receiver as written (`&self`), else the method name: where a wrong receiver is
/// pointed at.
pub(crate) fn self_tokens(sig: &Signature) -> TokenStream {
    sig.receiver().map_or_else(|| sig.ident.to_token_stream(), ToTokens::to_token_stream)
}

/// The typed arguments, after the receiver.
pub(crate) fn typed_args(sig: &Signature) -> Vec<&PatType> {
    sig.inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// The single typed argument of a method, after its receiver; else an error saying
/// `what` (like "`#[apply]` methods") take one, as in `example`.
pub(crate) fn single_typed_arg<'a>(
    errors: &mut Errors,
    f: &'a ImplItemFn,
    what: &str,
    example: &str,
) -> Option<&'a Type> {
    let typed = typed_args(&f.sig);
    if let [one] = typed.as_slice() {
        Some(&one.ty)
    } else {
        let span = if typed.is_empty() { f.sig.ident.span() } else { f.sig.inputs.span() };
        errors.at(span, format!("{what} take exactly one argument besides `self`: {example}"));
        None
    }
}

/// `#[marker]` methods that are pure and synchronous: no `async`, no generics.
pub(crate) fn sync_and_concrete(errors: &mut Errors, sig: &Signature, marker: &str) {
    if let Some(a) = sig.asyncness {
        errors.spanned(
            a,
            format!(
                "`#[{marker}]` methods are synchronous and pure: remove `async` and do I/O in a `#[command_handler]`"
            ),
        );
    }
    concrete(errors, sig, marker);
}

/// `#[marker]` methods cannot be generic.
pub(crate) fn concrete(errors: &mut Errors, sig: &Signature, marker: &str) {
    if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, format!("`#[{marker}]` methods cannot be generic"));
    }
}

/// `&T` → `T`; anything else unchanged.
pub(crate) fn strip_ref(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => &r.elem,
        other => other,
    }
}
