use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, LitStr, Type};

use super::model::{Association, Codegen, DefaultAssociation, SagaImpl, SagaStruct, Sends, StepFn, Tcc, Transition};
use super::validate;
use crate::common::args::Types;
use crate::common::{Args, Errors, no_generics, single_arg};

const STRUCT_KEYS: &[&str] = &["name", "associate", "crate"];
const STEP_KEYS: &[&str] = &[
    "start",
    "associate",
    "by_correlation",
    "send",
    "compensate",
    "send_all",
    "tcc_begin",
    "tcc",
    "tcc_confirm",
    "complete",
    "suspend",
    "timeout",
    "fail",
];
const TCC_KEYS: &[&str] = &["try", "confirm", "cancel", "deadline"];
pub(crate) const TCC_USAGE: &str = "tcc(try = ReserveSeat, confirm = ConfirmSeat, cancel = CancelSeat)";
pub(crate) const STEP_USAGE: &str =
    "#[step(start, send = ReserveStock)] fn placed(&mut self, e: &OrderPlaced) -> ReserveStock";
const SIGNATURE: &str = "`fn placed(&mut self, e: &OrderPlaced)` (or `e: &Envelope<OrderPlaced>`)";

pub(crate) fn parse_struct(args: TokenStream, item: &ItemStruct) -> (SagaStruct, Errors) {
    let mut args = Args::parse("saga", args);
    let krate = args.krate();
    let name = args.string("name");
    let associate = args.ident("associate", "order_id");
    let mut errors = Errors::default();
    errors.extend(args.finish(STRUCT_KEYS));
    no_generics(&mut errors, &item.generics, "saga", "type");
    let associate = match associate {
        // A typo in the arguments (`asociate`) must not turn into an error at every step.
        _ if errors.has_errors() => DefaultAssociation::Broken,
        Some(field) => DefaultAssociation::Field(field),
        None => DefaultAssociation::Missing,
    };
    let ident = item.ident.clone();
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let generic = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
    (SagaStruct { krate, ident, name, associate, generic }, errors)
}

/// The impl block's model and its errors. The model is returned even with errors: a
/// step with a mistake becomes a stub, so the mistake is reported once.
pub(crate) fn parse_impl(args: TokenStream, mut item: ItemImpl) -> (SagaImpl, Errors) {
    let mut args = Args::parse("saga", args);
    let krate = args.krate();
    let mut errors = Errors::default();
    if args.finish(&["crate"]).has_errors() {
        errors.spanned(
            &item.self_ty,
            "on an impl block `#[saga]` takes no arguments (except `crate = ..`); put `name` and `associate` on the state struct: `#[saga(name = \"..\", associate = field)]`",
        );
    }
    if let Some((_, path, _)) = &item.trait_ {
        errors
            .spanned(path, "`#[saga]` goes on the inherent impl block (`impl Fulfilment { .. }`), not on a trait impl");
    }
    no_generics(&mut errors, &item.generics, "saga", "impl block");
    let (ident, bridge) = saga_path(&mut errors, &item.self_ty);

    let mut steps = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let Some(tokens) = take_step(&mut errors, f) else { continue };
        // The framework fixes the signature: `&mut self` even when a step only sends.
        f.attrs.push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        steps.push(step_fn(&mut errors, f, tokens));
    }
    validate::saga(&mut errors, &mut steps, &item.self_ty);
    let self_ty = (*item.self_ty).clone();
    (SagaImpl { krate, self_ty, ident, bridge, item, steps }, errors)
}

/// The struct's name and the path of the hidden macro its `#[saga]` defines beside it
/// (`a::Fulfilment` → `a::__cqrs_ddd_saga_Fulfilment`).
fn saga_path(errors: &mut Errors, self_ty: &Type) -> (Ident, Option<syn::Path>) {
    if let Type::Path(p) = self_ty
        && let Some(last) = p.path.segments.last()
        && p.qself.is_none()
        && last.arguments.is_none()
    {
        let ident = last.ident.clone();
        let mut bridge = p.path.clone();
        if let Some(seg) = bridge.segments.last_mut() {
            seg.ident = bridge_name(&ident);
        }
        return (ident, Some(bridge));
    }
    errors
        .spanned(self_ty, "`#[saga]` goes on the impl block of the saga's state struct, like `impl Fulfilment { .. }`");
    (Ident::new("Saga", self_ty.span()), None)
}

/// The hidden macro through which the struct's `#[saga]` hands the default association
/// to the impl block's `#[saga]`.
pub(crate) fn bridge_name(ident: &Ident) -> Ident {
    format_ident!("__cqrs_ddd_saga_{}", ident, span = Span::call_site())
}

/// Removes the `#[step(..)]` attributes of a method; the arguments of the first.
fn take_step(errors: &mut Errors, f: &mut ImplItemFn) -> Option<TokenStream> {
    let mut found: Option<TokenStream> = None;
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut f.attrs) {
        if !attr.path().is_ident("step") {
            kept.push(attr);
            continue;
        }
        let tokens = match &attr.meta {
            syn::Meta::Path(_) => TokenStream::new(),
            syn::Meta::List(list) => list.tokens.clone(),
            syn::Meta::NameValue(nv) => {
                errors.spanned(nv, "write the step's options in parentheses: `#[step(start, send = ReserveStock)]`");
                TokenStream::new()
            }
        };
        if found.is_some() {
            errors.spanned(&attr, "a method has one `#[step(..)]`; put all its options in the first");
        } else {
            found = Some(tokens);
        }
    }
    f.attrs = kept;
    found
}

/// What one `#[step(..)]` says, each option with its key (for spans).
#[derive(Default)]
pub(crate) struct StepOptions {
    pub(crate) start: Option<Ident>,
    pub(crate) associate: Option<Ident>,
    pub(crate) by_correlation: Option<Ident>,
    pub(crate) send: Option<(Ident, Type)>,
    pub(crate) compensate: Option<(Ident, Types)>,
    pub(crate) send_all: Option<(Ident, Vec<Type>)>,
    pub(crate) tcc_begin: Option<Ident>,
    pub(crate) tcc: Option<(Ident, TccOptions)>,
    pub(crate) tcc_confirm: Option<Ident>,
    pub(crate) complete: Option<Ident>,
    pub(crate) suspend: Option<Ident>,
    /// `timeout`, in milliseconds (`None` when malformed, already reported).
    pub(crate) timeout: Option<(Ident, Option<u64>)>,
    pub(crate) fail: Option<Ident>,
}

/// What `tcc(..)` says.
pub(crate) struct TccOptions {
    pub(crate) attempt: Option<Type>,
    pub(crate) confirm: Option<Type>,
    pub(crate) cancel: Option<Type>,
    pub(crate) deadline: Option<u64>,
}

fn options(errors: &mut Errors, tokens: TokenStream) -> StepOptions {
    let mut args = Args::parse("step", tokens);
    let mut o = StepOptions {
        start: args.flag_key("start"),
        associate: args.ident("associate", "order_id"),
        by_correlation: args.flag_key("by_correlation"),
        send: args.ty_key("send", "ReserveStock"),
        compensate: args.types("compensate", "ReleaseStock"),
        send_all: None,
        tcc_begin: args.flag_key("tcc_begin"),
        tcc: None,
        tcc_confirm: args.flag_key("tcc_confirm"),
        complete: args.flag_key("complete"),
        suspend: args.flag_key("suspend"),
        timeout: args.string_key("timeout").map(|(key, lit)| (key, duration(errors, "timeout", &lit))),
        fail: args.flag_key("fail"),
    };
    o.send_all = args.types("send_all", "[ReserveStock, ChargePayment]").and_then(|(key, types)| match types {
        Types::Many(list) => Some((key, list)),
        Types::One(_) => {
            errors.spanned(
                &key,
                "`send_all` takes a list of commands sent at once, like `send_all = [ReserveStock, ChargePayment]`; for one command write `send = ..`",
            );
            None
        }
    });
    o.tcc =
        args.nested("tcc", "try = ReserveSeat, confirm = ConfirmSeat, cancel = CancelSeat").map(|(key, mut tcc)| {
            let attempt = tcc.ty("try", "ReserveSeat");
            let confirm = tcc.ty("confirm", "ConfirmSeat");
            let cancel = tcc.ty("cancel", "CancelSeat");
            let deadline = tcc.string("deadline").and_then(|lit| duration(errors, "deadline", &lit));
            errors.extend(tcc.finish(TCC_KEYS));
            (key, TccOptions { attempt, confirm, cancel, deadline })
        });
    errors.extend(args.finish(STEP_KEYS));
    o
}

/// Reads `"500ms"`, `"30s"`, `"5m"`, `"2h"` or `"1d"` at compile time, in milliseconds.
fn duration(errors: &mut Errors, key: &str, lit: &LitStr) -> Option<u64> {
    let ms = duration_ms(&lit.value());
    if ms.is_none() {
        errors.spanned(
            lit,
            format!(
                "`{key}` takes a whole, positive number of `ms`, `s`, `m`, `h` or `d`, like `{key} = \"30s\"` or `{key} = \"5m\"`"
            ),
        );
    }
    ms
}

/// `"30s"` → `Some(30_000)`; `None` for anything else, zero or too large.
pub(crate) fn duration_ms(text: &str) -> Option<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor).filter(|ms| *ms > 0)
}

fn step_fn(all: &mut Errors, f: &ImplItemFn, tokens: TokenStream) -> StepFn {
    let mut errors = Errors::default();
    let errors = &mut errors;
    let opts = options(errors, tokens);
    validate::options(errors, &opts);
    signature(errors, f);
    let event = event_param(errors, f);

    let compensate_one = |o: &StepOptions| match &o.compensate {
        Some((_, Types::One(k))) => Some(k.clone()),
        _ => None,
    };
    let sends = match (&opts.send, &opts.send_all, &opts.tcc) {
        (_, _, Some((_, tcc))) => match (&tcc.attempt, &tcc.confirm, &tcc.cancel) {
            (Some(t), Some(c), Some(k)) => {
                Sends::Tcc(Tcc { attempt: t.clone(), confirm: c.clone(), cancel: k.clone(), deadline: tcc.deadline })
            }
            _ => Sends::Nothing,
        },
        (Some((_, c)), _, None) => Sends::One { command: c.clone(), compensate: compensate_one(&opts) },
        (None, Some((_, list)), None) => Sends::All {
            commands: list.clone(),
            compensate: match &opts.compensate {
                Some((_, Types::Many(k))) => Some(k.clone()),
                _ => None,
            },
        },
        (None, None, None) => Sends::Nothing,
    };
    let transition = if opts.fail.is_some() {
        Transition::Fail
    } else if opts.suspend.is_some() {
        Transition::Suspend(opts.timeout.as_ref().and_then(|(_, ms)| *ms))
    } else if opts.complete.is_some() {
        Transition::Complete
    } else {
        Transition::Continue
    };
    let association = match (&opts.associate, &opts.by_correlation) {
        (Some(field), _) => Association::Field(field.clone()),
        (None, Some(_)) => Association::Correlation,
        (None, None) => Association::Default,
    };
    let output = match &f.sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    let stub = errors.has_errors();
    all.extend(std::mem::take(errors));
    let (event, envelope) = event.map_or((None, false), |(e, env)| (Some(e), env));
    StepFn {
        method: f.sig.ident.clone(),
        event,
        envelope,
        output,
        start: opts.start.is_some(),
        association,
        sends,
        tcc: opts.tcc.as_ref().map(|(key, _)| key.span()),
        tcc_begin: opts.tcc_begin.as_ref().map(Ident::span),
        tcc_confirm: opts.tcc_confirm.as_ref().map(Ident::span),
        transition,
        codegen: if stub { Codegen::Stub } else { Codegen::Full },
    }
}

fn signature(errors: &mut Errors, f: &ImplItemFn) {
    if let Some(a) = f.sig.asyncness {
        errors.spanned(
            a,
            "`#[step]` methods are synchronous: they update the state and return the commands to send, which the saga runtime sends; remove `async`",
        );
    }
    if !f.sig.generics.params.is_empty() || f.sig.generics.where_clause.is_some() {
        errors.spanned(&f.sig.generics, "`#[step]` methods cannot be generic: each reacts to one event type");
    }
    match f.sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(r) => errors.spanned(r, "`#[step]` methods update the saga's state: take `&mut self`"),
        None => errors.spanned(
            &f.sig.ident,
            format!("`#[step]` methods take `&mut self` (the saga's state) and the event: {SIGNATURE}"),
        ),
    }
}

/// The event type of the one argument besides `self`, and whether it is an `Envelope`.
fn event_param(errors: &mut Errors, f: &ImplItemFn) -> Option<(Type, bool)> {
    let typed: Vec<&syn::PatType> = f
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let [arg] = typed.as_slice() else {
        let span = if typed.is_empty() { f.sig.ident.span() } else { typed[1].span() };
        errors.at(span, format!("a `#[step]` method takes one argument besides `&mut self`, the event: {SIGNATURE}"));
        return None;
    };
    match &*arg.ty {
        Type::Reference(r) if r.mutability.is_none() => Some(match single_arg(&r.elem, "Envelope") {
            Some(inner) => (inner.clone(), true),
            None => ((*r.elem).clone(), false),
        }),
        other => {
            errors.spanned(other, format!("`#[step]` methods borrow the event: {SIGNATURE}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("5m"), Some(300_000));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("1d"), Some(86_400_000));
    }

    #[test]
    fn malformed_zero_and_overflowing_durations_are_refused() {
        for bad in [
            "",
            "30",
            "s",
            "30 s",
            "-5s",
            "1.5h",
            "5min",
            "0s",
            "0ms",
            "30S",
            "99999999999999999999ms",
            "213503982335d",
        ] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_number_and_unit_reads_back() {
        for n in (1..2_000u64).chain([u64::from(u32::MAX), 213_503_982_334]) {
            for (unit, factor) in [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)] {
                assert_eq!(duration_ms(&format!("{n}{unit}")), n.checked_mul(factor), "{n}{unit}");
            }
        }
    }
}
