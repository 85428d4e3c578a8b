use quote::ToTokens;

use super::model::{ApplyFn, DeadlineFn, EventRef, HandleFn};
use crate::common::Errors;

/// Each event once, and no two events whose variants would collide; a repeated one is
/// reported and dropped, so it is not generated twice.
pub(crate) fn events(errors: &mut Errors, events: &mut Vec<EventRef>) {
    let mut i = 0;
    while i < events.len() {
        let e = &events[i];
        let key = e.ty.to_token_stream().to_string();
        let repeated = if events[..i].iter().any(|o| o.ty.to_token_stream().to_string() == key) {
            errors.spanned(&e.ty, format!("event `{key}` is listed twice in `events(..)`; keep one"));
            true
        } else if events[..i].iter().any(|o| o.variant == e.variant) {
            errors.spanned(
                &e.ty,
                format!(
                    "two events end in `{}`, which would give the event enum two variants of that name; rename one of the types",
                    e.variant
                ),
            );
            true
        } else {
            false
        };
        if repeated {
            events.remove(i);
        } else {
            i += 1;
        }
    }
}

/// One `#[handle]` per command, one `#[apply]` per event, and at least one of each kind
/// of marker somewhere.
pub(crate) fn methods(errors: &mut Errors, handles: &[HandleFn], applies: &[ApplyFn], item: &syn::ItemImpl) {
    for (i, h) in handles.iter().enumerate() {
        let key = h.command.to_token_stream().to_string();
        if let Some(first) = handles[..i].iter().find(|o| o.command.to_token_stream().to_string() == key) {
            errors.spanned(
                &h.method,
                format!(
                    "command `{key}` is already handled by `{}`; a command has one `#[handle]` method",
                    first.method
                ),
            );
        }
    }
    for (i, a) in applies.iter().enumerate() {
        let key = a.event.to_token_stream().to_string();
        if let Some(first) = applies[..i].iter().find(|o| o.event.to_token_stream().to_string() == key) {
            errors.spanned(
                &a.method,
                format!("event `{key}` is already applied by `{}`; an event has one `#[apply]` method", first.method),
            );
        }
    }
    if handles.is_empty() && applies.is_empty() && item.trait_.is_none() {
        errors.spanned(
            &item.self_ty,
            "this `#[aggregate]` impl block has no `#[handle]` or `#[apply]` method; mark the methods that decide with `#[handle]` and those that evolve with `#[apply]`",
        );
    }
}

/// One `#[deadline]` per name and per payload type (the payload routes `schedule`).
pub(crate) fn deadlines(errors: &mut Errors, deadlines: &mut [DeadlineFn]) {
    for i in 0..deadlines.len() {
        let d = &deadlines[i];
        if let Some(first) = deadlines[..i].iter().find(|o| o.name.value() == d.name.value()) {
            errors.spanned(
                &d.name,
                format!(
                    "deadline `{}` is already handled by `{}`; a deadline name has one `#[deadline]` method (give this one `#[deadline(name = \"..\")]`)",
                    d.name.value(),
                    first.method
                ),
            );
            deadlines[i].duplicate = true;
            continue;
        }
        let key = d.payload.to_token_stream().to_string();
        if let Some(first) = deadlines[..i].iter().find(|o| o.payload.to_token_stream().to_string() == key) {
            errors.spanned(
                &d.payload,
                format!(
                    "`{}` is already what deadline `{}` carries; each `#[deadline]` method takes a type of its own (it is how `schedule` finds the deadline)",
                    key,
                    first.name.value()
                ),
            );
            deadlines[i].duplicate = true;
        }
    }
}
