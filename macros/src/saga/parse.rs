use darling::FromMeta;
use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, LitStr, Type};

use super::model::{
    Association, Codegen, DefaultAssociation, SagaImpl, SagaStruct, Sends, StepFn, Tcc, Timer, Transition,
};
use super::validate;
use crate::common::options::{self, Millis, Nested, Types, Word};
use crate::common::signature::{SelfArg, self_arg, self_tokens, typed_args};
use crate::common::{Arg, Errors, impl_block_options, markers, no_generics, not_on_trait_impl, single_arg};

/// `#[saga(..)]` on the state struct.
#[derive(Default, FromMeta)]
#[darling(default)]
struct SagaOptions {
    /// The stored saga type; the Rust type name by default.
    name: Option<Arg<LitStr>>,
    /// The field of the events that holds the saga's id, for every step that does not
    /// say otherwise.
    associate: Option<Arg<Ident>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) const TCC_USAGE: &str = "tcc(try = ReserveSeat, confirm = ConfirmSeat, cancel = CancelSeat)";
pub(crate) const STEP_USAGE: &str =
    "#[step(start, send = ReserveStock)] fn placed(&mut self, e: &OrderPlaced) -> ReserveStock";
const SIGNATURE: &str = "`fn placed(&mut self, e: &OrderPlaced)` (or `e: &Envelope<OrderPlaced>`)";

pub(crate) fn parse_struct(args: TokenStream, item: &ItemStruct) -> (SagaStruct, Errors) {
    let mut errors = Errors::default();
    let opts: SagaOptions = options::parse("saga", args, &mut errors);
    let krate = options::krate(opts.krate);
    no_generics(&mut errors, &item.generics, "saga", "type");
    let associate = match opts.associate {
        Some(field) => DefaultAssociation::Field(field.value),
        // A mistake in the arguments must not turn into an error at every step.
        None if errors.has_errors() => DefaultAssociation::Broken,
        None => DefaultAssociation::Missing,
    };
    let ident = item.ident.clone();
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    let generic = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
    (SagaStruct { krate, ident, name, associate, generic }, errors)
}

/// The impl block's model and its errors. The model is returned even with errors: a
/// step with a mistake becomes a stub, so the mistake is reported once.
pub(crate) fn parse_impl(args: TokenStream, mut item: ItemImpl) -> (SagaImpl, Errors) {
    let mut errors = Errors::default();
    let krate = impl_block_options(
        &mut errors,
        "saga",
        args,
        &item.self_ty,
        "put `name` and `associate` on the state struct: `#[saga(name = \"..\", associate = field)]`",
    );
    not_on_trait_impl(&mut errors, &item, "saga");
    no_generics(&mut errors, &item.generics, "saga", "impl block");
    let (ident, bridge) = saga_path(&mut errors, &item.self_ty);

    let mut steps = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let step = markers::take(&mut errors, &mut f.attrs, "step");
        let deadline = markers::take(&mut errors, &mut f.attrs, "deadline");
        let attr = match (step, deadline) {
            (None, None) => continue,
            (Some(step), Some(deadline)) => {
                errors.spanned(
                    &deadline,
                    "a method is either a `#[step]` (fired by an event) or a `#[deadline]` (fired by time); keep one",
                );
                step
            }
            (Some(attr), None) | (None, Some(attr)) => attr,
        };
        // The framework fixes the signature: `&mut self` even when a step only sends.
        f.attrs.push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        steps.push(if attr.path().is_ident("deadline") {
            deadline_fn(&mut errors, f, &attr)
        } else {
            step_fn(&mut errors, f, &attr)
        });
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

/// `#[step(..)]`: what a saga does when the event of this method arrives.
#[derive(Default, FromMeta)]
#[darling(default)]
pub(crate) struct StepOptions {
    /// This event starts a new instance of the saga.
    pub(crate) start: Option<Arg<Word>>,
    /// The field of the event holding the saga's id (overrides the saga's `associate`).
    pub(crate) associate: Option<Arg<Ident>>,
    /// Finds the instance by the event's correlation id instead of a field.
    pub(crate) by_correlation: Option<Arg<Word>>,
    /// The command this step sends (the method returns it).
    pub(crate) send: Option<Arg<Type>>,
    /// The command that undoes `send` (or the list that undoes `send_all`), sent when a
    /// later step fails.
    pub(crate) compensate: Option<Arg<Types>>,
    /// Several commands sent at once (the method returns a tuple).
    pub(crate) send_all: Option<Arg<Types>>,
    /// This step opens a TCC transaction.
    pub(crate) tcc_begin: Option<Arg<Word>>,
    /// A TCC try: `tcc(try = A, confirm = B, cancel = C, deadline = "30s")`.
    pub(crate) tcc: Option<Nested<TccOptions>>,
    /// This step confirms the saga's TCC tries.
    pub(crate) tcc_confirm: Option<Arg<Word>>,
    /// The saga completes after this step.
    pub(crate) complete: Option<Arg<Word>>,
    /// The saga waits (until its next event or the `timeout`).
    pub(crate) suspend: Option<Arg<Word>>,
    /// How long a suspended saga waits, like `"30m"`.
    pub(crate) timeout: Option<Arg<Millis>>,
    /// The saga fails after this step and compensates what it sent.
    pub(crate) fail: Option<Arg<Word>>,
    /// The saga's deadlines (`#[deadline]` methods) this step arms: `arm = remind` or
    /// `arm = [remind, lost]`.
    pub(crate) arm: Option<Arg<Types>>,
    /// The saga's deadlines this step disarms, so they do not fire.
    pub(crate) disarm: Option<Arg<Types>>,
    /// On a `#[deadline]` method: how long after a step arms it it fires, like `"14d"`.
    pub(crate) after: Option<Arg<Millis>>,
}

/// `tcc(..)`.
#[derive(Default, FromMeta)]
#[darling(default)]
pub(crate) struct TccOptions {
    /// The command that reserves.
    #[darling(rename = "try")]
    pub(crate) attempt: Option<Arg<Type>>,
    /// The command that makes the reservation final.
    pub(crate) confirm: Option<Arg<Type>>,
    /// The command that releases the reservation.
    pub(crate) cancel: Option<Arg<Type>>,
    /// How long the try may stay unconfirmed before it is cancelled, like `"30s"`.
    pub(crate) deadline: Option<Arg<Millis>>,
}

fn step_fn(all: &mut Errors, f: &ImplItemFn, attr: &syn::Attribute) -> StepFn {
    let mut errors = Errors::default();
    let errors = &mut errors;
    let opts: StepOptions = markers::options(errors, attr, "step");
    validate::options(errors, &opts);
    if let Some(after) = &opts.after {
        errors.at(
            after.span(),
            "`after` is how long a `#[deadline]` step waits once armed; a `#[step]` fires on its event. Write `#[deadline(after = \"14d\", ..)] fn remind(&mut self)` and arm it with `arm = remind`",
        );
    }
    signature(errors, f);
    let event = event_param(errors, f);
    let timer = None;
    step_model(all, errors, f, &opts, event, timer)
}

/// A `#[deadline(after = "14d", ..)]` method: a step fired by time once a step arms it.
fn deadline_fn(all: &mut Errors, f: &ImplItemFn, attr: &syn::Attribute) -> StepFn {
    let mut errors = Errors::default();
    let errors = &mut errors;
    let opts: StepOptions = markers::options(errors, attr, "deadline");
    validate::options(errors, &opts);
    validate::deadline_options(errors, &opts, &f.sig.ident, written(attr, "after"));
    signature(errors, f);
    let typed = typed_args(&f.sig);
    if let Some(extra) = typed.first() {
        errors.spanned(
            extra,
            "a `#[deadline]` step takes only `&mut self`: no event fires it; keep what it needs in the saga's state: `fn remind(&mut self) -> SendReminder`",
        );
    }
    let timer =
        Some(Timer { name: f.sig.ident.unraw().to_string(), after: opts.after.as_ref().map_or(1, |a| a.value.0) });
    step_model(all, errors, f, &opts, None, timer)
}

/// The model of a step or deadline method from its options.
fn step_model(
    all: &mut Errors,
    errors: &mut Errors,
    f: &ImplItemFn,
    opts: &StepOptions,
    event: Option<(Type, bool)>,
    timer: Option<Timer>,
) -> StepFn {
    let names = |errors: &mut Errors, given: &Option<Arg<Types>>| -> Vec<Ident> {
        let Some(Arg { value, .. }) = given else { return Vec::new() };
        let list: Vec<&Type> = match value {
            Types::One(t) => vec![&**t],
            Types::Many(list) => list.iter().collect(),
        };
        list.into_iter()
            .filter_map(|t| match t {
                Type::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => p.path.get_ident().cloned(),
                other => {
                    errors.spanned(other, "name the saga's `#[deadline]` method, like `arm = remind`");
                    None
                }
            })
            .collect()
    };
    let arms = names(errors, &opts.arm);
    let disarms = names(errors, &opts.disarm);

    let compensate_one = |o: &StepOptions| match o.compensate.as_ref().map(|a| &a.value) {
        Some(Types::One(k)) => Some((**k).clone()),
        _ => None,
    };
    let send_all = opts.send_all.as_ref().and_then(|a| match &a.value {
        Types::Many(list) => Some(list),
        Types::One(_) => None,
    });
    let sends = match (&opts.send, send_all, &opts.tcc) {
        (_, _, Some(tcc)) => match (&tcc.value.attempt, &tcc.value.confirm, &tcc.value.cancel) {
            (Some(t), Some(c), Some(k)) => Sends::Tcc(Tcc {
                attempt: t.value.clone(),
                confirm: c.value.clone(),
                cancel: k.value.clone(),
                deadline: tcc.value.deadline.as_ref().map(|d| d.value.0),
            }),
            _ => Sends::Nothing,
        },
        (Some(c), _, None) => Sends::One { command: c.value.clone(), compensate: compensate_one(opts) },
        (None, Some(list), None) => Sends::All {
            commands: list.clone(),
            compensate: match opts.compensate.as_ref().map(|a| &a.value) {
                Some(Types::Many(k)) => Some(k.clone()),
                _ => None,
            },
        },
        (None, None, None) => Sends::Nothing,
    };
    let transition = if opts.fail.is_some() {
        Transition::Fail
    } else if opts.suspend.is_some() {
        Transition::Suspend(opts.timeout.as_ref().map(|t| t.value.0))
    } else if opts.complete.is_some() {
        Transition::Complete
    } else {
        Transition::Continue
    };
    let association = match (&opts.associate, &opts.by_correlation) {
        (Some(field), _) => Association::Field(field.value.clone()),
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
        tcc: opts.tcc.as_ref().map(|t| t.key.span()),
        tcc_begin: opts.tcc_begin.as_ref().map(Arg::span),
        tcc_confirm: opts.tcc_confirm.as_ref().map(Arg::span),
        transition,
        codegen: if stub { Codegen::Stub } else { Codegen::Full },
        arms,
        disarms,
        timer,
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
    match self_arg(&f.sig) {
        SelfArg::RefMut => {}
        SelfArg::None => errors.spanned(
            &f.sig.ident,
            format!("`#[step]` methods take `&mut self` (the saga's state) and the event: {SIGNATURE}"),
        ),
        _ => errors.spanned(self_tokens(&f.sig), "`#[step]` methods update the saga's state: take `&mut self`"),
    }
}

/// The event type of the one argument besides `self`, and whether it is an `Envelope`.
fn event_param(errors: &mut Errors, f: &ImplItemFn) -> Option<(Type, bool)> {
    let typed = typed_args(&f.sig);
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

/// Whether the marker names `key` among its options (even with a malformed value).
fn written(attr: &syn::Attribute, key: &str) -> bool {
    use syn::punctuated::Punctuated;
    attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
        .is_ok_and(|metas| metas.iter().any(|m| m.path().is_ident(key)))
}
