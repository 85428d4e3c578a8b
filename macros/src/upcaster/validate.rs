use syn::{FnArg, ItemFn};

use crate::common::Errors;

/// An upcaster is a plain, non-generic free function of one argument that returns.
pub(crate) fn signature(f: &ItemFn) -> syn::Result<()> {
    let mut errors = Errors::default();
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
    errors.check()
}

/// An upcaster goes forward.
pub(crate) fn versions(errors: &mut Errors, f: &ItemFn, from: u32, to: u32) {
    if to <= from {
        errors.spanned(
            &f.sig.ident,
            format!("an upcaster goes forward: `to` ({to}) must be greater than `from` ({from})"),
        );
    }
}
