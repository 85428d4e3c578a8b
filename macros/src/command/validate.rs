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
