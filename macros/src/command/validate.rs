use proc_macro2::Span;
use syn::{Data, DeriveInput, Member, Type};

use super::model::Target;
use crate::common::Errors;

/// The routing rules: an aggregate command is a struct with exactly one `#[id]` field
/// and responds with `()`; a command without aggregate has no `#[id]`.
pub(crate) fn target(
    errors: &mut Errors,
    input: &DeriveInput,
    aggregate: Option<Type>,
    response: Option<&Type>,
    ids: Vec<(Member, Type, Span)>,
) -> Option<Target> {
    let Some(aggregate) = aggregate else {
        for (_, _, span) in &ids {
            errors.at(
                *span,
                "`#[id]` routes a command to its aggregate, but this command names none; add `aggregate = ..` to `#[command]` or remove `#[id]`",
            );
        }
        return None;
    };
    if let Some(r) = response {
        errors.spanned(
            r,
            "a command handled by an aggregate responds with `()`; remove `response`, or handle the command in a `#[command_handler]` instead of `aggregate = ..`",
        );
    }
    if !matches!(input.data, Data::Struct(_)) {
        errors.spanned(&input.ident, "a command routed to an aggregate must be a struct with an `#[id]` field");
        return None;
    }
    let mut ids = ids.into_iter();
    let Some((id_field, id_ty, _)) = ids.next() else {
        errors.spanned(
            &input.ident,
            "a command routed to an aggregate needs the id of its target; mark that field with `#[id]`",
        );
        return None;
    };
    for (_, _, span) in ids {
        errors.at(span, "only one field can be the `#[id]` of the target aggregate; remove the extra `#[id]`");
    }
    Some(Target { aggregate, id_field, id_ty })
}

/// `lock = [a, b]` resolved to named fields of the struct: each a field name, one that
/// exists (with a did-you-mean), named once.
pub(crate) fn lock_fields(
    errors: &mut Errors,
    input: &syn::DeriveInput,
    value: crate::common::options::Types,
) -> Vec<syn::Ident> {
    use crate::common::options::{Types, did_you_mean};
    let types = match value {
        Types::One(t) => vec![*t],
        Types::Many(ts) => ts,
    };
    let known: Vec<String> = match &input.data {
        syn::Data::Struct(s) => s.fields.iter().filter_map(|f| f.ident.as_ref().map(ToString::to_string)).collect(),
        _ => {
            errors.spanned(
                &input.ident,
                "`lock = [..]` names fields of a struct; on an enum, lock by hand with a `LockManager`",
            );
            return Vec::new();
        }
    };
    let mut out: Vec<syn::Ident> = Vec::new();
    for ty in types {
        let ident = match &ty {
            syn::Type::Path(p) if p.qself.is_none() => p.path.get_ident().cloned(),
            _ => None,
        };
        let Some(ident) = ident else {
            errors.spanned(&ty, "`lock = [..]` takes field names, like `lock = [account, to_account]`");
            continue;
        };
        let word = ident.to_string();
        if out.iter().any(|o| *o == word) {
            errors.spanned(&ident, format!("`{word}` is named twice in `lock = [..]`; keep one"));
        } else if known.contains(&word) {
            out.push(ident);
        } else {
            let hint = match did_you_mean(&word, known.iter().map(String::as_str)) {
                Some(close) => format!("; did you mean `{close}`?"),
                None => String::new(),
            };
            errors.spanned(&ident, format!("`lock = [..]` names `{word}`, which is not a field of the command{hint}"));
        }
    }
    out
}
