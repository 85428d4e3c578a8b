use proc_macro2::Span;
use quote::ToTokens;

use super::model::{Codegen, StepFn};
use super::parse::{STEP_USAGE, StepOptions, TCC_USAGE};
use crate::common::options::Types;
use crate::common::{Arg, Errors};

/// The options of one `#[step(..)]` that cannot go together, or are incomplete.
pub(crate) fn options(errors: &mut Errors, o: &StepOptions) {
    if let (Some(_), Some(key)) = (&o.associate, &o.by_correlation) {
        errors.at(
            key.span(),
            "a step finds its instance either by a field of its event (`associate = ..`) or by the correlation id (`by_correlation`); keep one",
        );
    }
    sends(errors, o);
    if let Some(tcc) = &o.tcc {
        let (key, tcc) = (&tcc.key, &tcc.value);
        let missing: Vec<&str> =
            [("try", tcc.attempt.is_none()), ("confirm", tcc.confirm.is_none()), ("cancel", tcc.cancel.is_none())]
                .into_iter()
                .filter_map(|(k, missing)| missing.then_some(k))
                .collect();
        if !missing.is_empty() {
            let missing = missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ");
            errors.spanned(key, format!("`tcc(..)` needs {missing}; write `#[step({TCC_USAGE})]`"));
        }
    }
    let ends: Vec<Span> = [&o.complete, &o.fail, &o.suspend].into_iter().flatten().map(Arg::span).collect();
    for extra in ends.iter().skip(1) {
        errors.at(
            *extra,
            "a step either completes, fails or suspends the saga; keep one of `complete`, `fail` and `suspend`",
        );
    }
    if let Some(timeout) = &o.timeout
        && o.suspend.is_none()
    {
        errors.at(
            timeout.span(),
            "`timeout` is how long a suspended saga waits for its next event; add `suspend`, or remove `timeout`",
        );
    }
    if let Some(fail) = &o.fail
        && (o.send.is_some() || o.send_all.is_some() || o.tcc.is_some())
    {
        errors.at(
            fail.span(),
            "a `fail` step sends nothing: the saga fails and the compensations of what it sent run, last first; remove `send`, `send_all` and `tcc(..)`, or `fail`",
        );
    }
}

/// The options a `#[deadline]` step has: `after`, and what a step sends and where it
/// takes the saga, but nothing about events or TCC.
pub(crate) fn deadline_options(errors: &mut Errors, o: &StepOptions, method: &syn::Ident, after_written: bool) {
    if o.after.is_none() && !after_written {
        errors.spanned(
            method,
            "a `#[deadline]` step needs `after`, how long after a step arms it it fires; write `#[deadline(after = \"14d\", send = SendReminder)]`",
        );
    }
    let about_events = [
        ("start", o.start.as_ref().map(Arg::span)),
        ("associate", o.associate.as_ref().map(Arg::span)),
        ("by_correlation", o.by_correlation.as_ref().map(Arg::span)),
        ("tcc_begin", o.tcc_begin.as_ref().map(Arg::span)),
        ("tcc", o.tcc.as_ref().map(|t| t.key.span())),
        ("tcc_confirm", o.tcc_confirm.as_ref().map(Arg::span)),
        ("suspend", o.suspend.as_ref().map(Arg::span)),
        ("timeout", o.timeout.as_ref().map(Arg::span)),
    ];
    for (key, span) in about_events {
        if let Some(span) = span {
            errors.at(
                span,
                format!("`{key}` is not an option of a `#[deadline]` step, which fires by time inside a running saga; it takes `after`, `send`, `compensate`, `send_all`, `complete`, `fail`, `arm` and `disarm`"),
            );
        }
    }
}

/// `send`, `send_all`, `tcc(..)` and `compensate`.
fn sends(errors: &mut Errors, o: &StepOptions) {
    if let (Some(_), Some(send_all)) = (&o.send, &o.send_all) {
        errors.at(
            send_all.span(),
            "a step sends either one command (`send = ..`) or several at once (`send_all = [..]`); keep one",
        );
    }
    if let Some(tcc) = &o.tcc
        && (o.send.is_some() || o.send_all.is_some())
    {
        errors.spanned(
            &tcc.key,
            "`tcc(..)` sends its `try` command itself; remove `send`/`send_all`, or give the TCC try a step of its own",
        );
    }
    let send_all = match o.send_all.as_ref().map(|a| (a, &a.value)) {
        Some((_, Types::Many(list))) => Some(list),
        Some((key, Types::One(_))) => {
            errors.at(
                key.span(),
                "`send_all` takes a list of commands sent at once, like `send_all = [ReserveStock, ChargePayment]`; for one command write `send = ..`",
            );
            None
        }
        None => None,
    };
    if let (Some(key), Some(list)) = (&o.send_all, send_all)
        && list.is_empty()
    {
        errors.at(
            key.span(),
            "`send_all = []` lists no command; list the commands sent at once, like `send_all = [ReserveStock, ChargePayment]`",
        );
    }
    let Some(Arg { key, value: compensate }) = &o.compensate else { return };
    let message = match (&o.send, send_all, compensate) {
        (None, None, _) if o.tcc.is_some() => {
            "a TCC try is undone by its `cancel` command, not by `compensate`; remove `compensate`".to_owned()
        }
        (None, None, _) => {
            "`compensate` undoes the command this step sends; add `send = ..` (or `send_all = [..]`), or remove `compensate`"
                .to_owned()
        }
        (Some(_), _, Types::Many(_)) => {
            "with `send = ..`, `compensate` takes the one command that undoes it, like `compensate = ReleaseStock`"
                .to_owned()
        }
        (None, Some(_), Types::One(_)) => {
            "with `send_all = [..]`, `compensate` takes a list of the same length, in the same order, like `compensate = [ReleaseStock, RefundPayment]`"
                .to_owned()
        }
        (None, Some(sent), Types::Many(undo)) if sent.len() != undo.len() => format!(
            "`send_all` lists {} commands but `compensate` lists {}; give one compensation per command, in the same order",
            sent.len(),
            undo.len()
        ),
        _ => return,
    };
    errors.spanned(key, message);
}

/// The rules across the steps of one saga. Marks a second step for an event as a
/// duplicate, so that nothing is generated for it.
pub(crate) fn saga(errors: &mut Errors, steps: &mut [StepFn], self_ty: &syn::Type) {
    let key = |s: &StepFn| s.event.as_ref().map(|e| e.to_token_stream().to_string());
    for i in 0..steps.len() {
        let Some(event) = key(&steps[i]) else { continue };
        if let Some(first) =
            steps[..i].iter().find(|s| s.codegen != Codegen::Duplicate && key(s).as_ref() == Some(&event))
        {
            let message = format!(
                "event `{event}` already has the step `{}`; a saga reacts to each event in one step, so merge the two",
                first.method
            );
            errors.spanned(&steps[i].method, message);
            steps[i].codegen = Codegen::Duplicate;
        }
    }
    deadline_names(errors, steps);
    if steps.is_empty() {
        errors.spanned(
            self_ty,
            format!("this `#[saga]` impl block has no `#[step]` method; mark each method that reacts to an event, like `{STEP_USAGE}`"),
        );
        return;
    }
    if !steps.iter().any(|s| s.start) {
        errors.spanned(
            self_ty,
            "no step of this saga starts it, so every event would find no instance and be ignored; add `start` to the step of the event that begins the saga: `#[step(start, ..)]`",
        );
    }
    if !steps.iter().any(|s| s.tcc_begin.is_some()) {
        for span in steps.iter().filter_map(|s| s.tcc) {
            errors.at(
                span,
                "TCC without a begin: no step of this saga has `tcc_begin`; add `tcc_begin` to the step that opens the transaction (it may be this one)",
            );
        }
    }
    if !steps.iter().any(|s| s.tcc.is_some()) {
        for span in steps.iter().filter_map(|s| s.tcc_confirm) {
            errors.at(
                span,
                format!("`tcc_confirm` confirms the saga's TCC tries, but no step has `{TCC_USAGE}`; add one, or remove `tcc_confirm`"),
            );
        }
    }
}

/// Every name in `arm = ..` and `disarm = ..` is a `#[deadline]` method of the saga.
fn deadline_names(errors: &mut Errors, steps: &[StepFn]) {
    let known: Vec<&str> = steps.iter().filter_map(|s| s.timer.as_ref().map(|t| t.name.as_str())).collect();
    for s in steps {
        for name in s.arms.iter().chain(&s.disarms) {
            let name_text = name.to_string();
            if known.contains(&name_text.as_str()) {
                continue;
            }
            let message = if known.is_empty() {
                format!(
                    "this saga has no deadline `{name_text}`; declare it: `#[deadline(after = \"14d\", send = ..)] fn {name_text}(&mut self) -> ..`"
                )
            } else {
                let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                format!("this saga has no deadline `{name_text}`; its `#[deadline]` methods are {list}")
            };
            errors.spanned(name, message);
        }
    }
}
