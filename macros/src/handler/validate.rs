use syn::ItemFn;

use super::model::Kind;
use crate::common::Errors;

/// A handler is a free, non-generic `async fn` that returns a `Result`.
pub(crate) fn signature(errors: &mut Errors, kind: Kind, f: &ItemFn) {
    let name = kind.macro_name();
    if f.sig.asyncness.is_none() {
        errors.spanned(f.sig.fn_token, format!("`#[{name}]` goes on an `async fn`; add `async`"));
    }
    if let Some(r) = f.sig.receiver() {
        errors.spanned(r, format!("`#[{name}]` goes on a free function, not a method; remove `self`"));
    }
    if !f.sig.generics.params.is_empty() || f.sig.generics.where_clause.is_some() {
        errors.spanned(
            &f.sig.generics,
            format!(
                "`#[{name}]` cannot be generic: the handler is registered once for one concrete {}",
                kind.message()
            ),
        );
    }
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(&f.sig.ident, format!("`#[{name}]` must return a `Result`, like `{}`", kind.example()));
    }
}
