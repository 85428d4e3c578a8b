use quote::ToTokens;

use super::model::OnFn;
use super::parse::EXAMPLE;
use crate::common::Errors;

/// One `#[on]` per event, and at least one.
pub(crate) fn handlers(errors: &mut Errors, handlers: &[OnFn], self_ty: &syn::Type) {
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
        errors.spanned(self_ty, format!("this `#[projection]` has no `#[on]` method; write `{EXAMPLE}`"));
    }
}
