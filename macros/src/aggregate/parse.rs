use darling::FromMeta;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{ImplItem, ImplItemFn, Item, LitStr, Type};

use super::merge;
use super::model::{AggregateImpl, AggregateStruct, ApplyFn, DeadlineFn, EventRef, HandleFn, Policy};
use super::validate;
use crate::common::options::{self, TypeList, Word};
use crate::common::signature::{
    SelfArg, self_arg, self_tokens, single_typed_arg, strip_ref, sync_and_concrete, typed_args,
};
use crate::common::{Arg, Errors, impl_block_options, markers, no_generics, not_on_trait_impl};

const USAGE: &str = "#[aggregate(id = AccountId, events(Opened, Deposited), error = AccountError)]";

/// `#[aggregate(..)]` on the struct or enum.
#[derive(Default, FromMeta)]
#[darling(default)]
struct AggregateOptions {
    /// The type of the aggregate's id (required), like `AccountId` or `String`.
    id: Option<Arg<Type>>,
    /// Every event the aggregate records (required); they become the variants of its
    /// event enum.
    events: Option<Arg<TypeList>>,
    /// The domain error its `#[handle]` methods return (required).
    error: Option<Arg<Type>>,
    /// The stored stream type; the Rust type name by default.
    name: Option<Arg<LitStr>>,
    /// The name of the generated event enum; `{Aggregate}Event` by default.
    event_enum: Option<Arg<syn::Ident>>,
    /// Stores the state itself (with its version) instead of its events.
    state_stored: Option<Arg<Word>>,
    /// How a state-stored aggregate merges a conflicting write: `merge(..)`.
    on_conflict: Option<Arg<merge::Declared>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// `#[deadline(..)]`: the deadline's name.
#[derive(Default, FromMeta)]
#[darling(default)]
struct DeadlineOptions {
    /// The deadline's name (its identity with the aggregate's stream); the method's
    /// name by default.
    name: Option<Arg<LitStr>>,
}

/// `#[handle(..)]`: when the aggregate may be missing.
#[derive(Default, FromMeta)]
#[darling(default)]
struct HandleOptions {
    /// The aggregate must not exist yet: this command creates it.
    create: Option<Arg<Word>>,
    /// The command creates the aggregate when it does not exist, and updates it otherwise.
    create_if_missing: Option<Arg<Word>>,
}

pub(crate) fn parse_struct(args: TokenStream, item: &Item) -> syn::Result<(AggregateStruct, Errors)> {
    let (vis, ident, generics) = match item {
        Item::Struct(s) => (&s.vis, &s.ident, &s.generics),
        Item::Enum(e) => (&e.vis, &e.ident, &e.generics),
        _ => unreachable!("checked by the caller"),
    };
    let mut errors = Errors::default();
    no_generics(&mut errors, generics, "aggregate", "type");
    errors.check()?;
    let opts: AggregateOptions = options::parse("aggregate", args, &mut errors);
    options::require(
        &mut errors,
        ident,
        "aggregate",
        &[
            ("`id = ..`", opts.id.is_none()),
            ("`events(..)`", opts.events.is_none()),
            ("`error = ..`", opts.error.is_none()),
        ],
        USAGE,
    );
    let mut event_refs = Vec::new();
    if let Some(Arg { key, value: TypeList(list) }) = opts.events {
        if list.is_empty() {
            errors
                .spanned(&key, format!("`events(..)` lists no event; an aggregate needs at least one, like `{USAGE}`"));
        }
        for ty in list {
            match crate::common::last_segment(&ty) {
                Some((variant, _)) => {
                    let variant = variant.clone();
                    event_refs.push(EventRef { ty, variant });
                }
                None => errors.spanned(&ty, "`events(..)` takes event type names, like `events(Opened, Deposited)`"),
            }
        }
    }
    validate::events(&mut errors, &mut event_refs);
    let event_enum =
        opts.event_enum.map_or_else(|| syn::Ident::new(&format!("{ident}Event"), ident.span()), |a| a.value);
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    let on_conflict = opts.on_conflict.and_then(|Arg { key, value }| {
        if opts.state_stored.is_none() {
            errors.spanned(
                &key,
                "`on_conflict = merge(..)` is for state-stored aggregates: add `state_stored`, or leave it out \
                 (an event-sourced aggregate's command is decided again on a conflict: `AppBuilder::retry_on_conflict`)",
            );
            return None;
        }
        merge::parse(value.0).map_err(|e| errors.push(e)).ok()
    });
    let model = AggregateStruct {
        krate: options::krate(opts.krate),
        vis: vis.clone(),
        ident: ident.clone(),
        name,
        // Stand-ins for missing keys (reported) that meet the `Aggregate` bounds.
        id: opts.id.map_or_else(|| syn::parse_quote!(::std::string::String), |a| a.value),
        error: opts.error.map_or_else(|| syn::parse_quote!(::core::convert::Infallible), |a| a.value),
        events: event_refs,
        event_enum,
        state_stored: opts.state_stored.is_some(),
        on_conflict,
    };
    Ok((model, errors))
}

/// The impl block's model and its errors. The model is returned even with errors: a
/// method with a mistake becomes a stub, so the mistake is reported once instead of
/// cascading into "no `#[apply]` method" errors elsewhere.
pub(crate) fn parse_impl(args: TokenStream, mut item: syn::ItemImpl) -> (AggregateImpl, Errors) {
    let mut errors = Errors::default();
    let krate = impl_block_options(
        &mut errors,
        "aggregate",
        args,
        &item.self_ty,
        "put `id`, `events` and `error` on the struct",
    );
    not_on_trait_impl(&mut errors, &item, "aggregate");
    no_generics(&mut errors, &item.generics, "aggregate", "impl block");

    let mut handles = Vec::new();
    let mut applies = Vec::new();
    let mut deadlines = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let marker = take_markers(&mut errors, f);
        if marker.is_some() {
            // The framework fixes these signatures: `&self` and `Result` even when unused.
            f.attrs.push(syn::parse_quote!(#[allow(clippy::unused_self, clippy::unnecessary_wraps)]));
        }
        match marker {
            Some(Marker::Handle(policy)) => {
                if let Some(h) = handle_fn(&mut errors, f, policy) {
                    handles.push(h);
                }
            }
            Some(Marker::Apply) => {
                if let Some(a) = apply_fn(&mut errors, f) {
                    applies.push(a);
                }
            }
            Some(Marker::Deadline(name)) => {
                if let Some(d) = deadline_fn(&mut errors, f, name) {
                    deadlines.push(d);
                }
            }
            None => {}
        }
    }
    validate::methods(&mut errors, &handles, &applies, &item);
    validate::deadlines(&mut errors, &mut deadlines);
    let self_ty = (*item.self_ty).clone();
    (AggregateImpl { krate, self_ty, item, handles, applies, deadlines }, errors)
}

enum Marker {
    Handle(Policy),
    Apply,
    /// A `#[deadline]`, with its `name = ".."` if given.
    Deadline(Option<LitStr>),
}

/// Removes the `#[handle]`/`#[apply]` attributes of a method and says which it had.
fn take_markers(errors: &mut Errors, f: &mut ImplItemFn) -> Option<Marker> {
    let handle = markers::take(errors, &mut f.attrs, "handle");
    let apply = markers::take_plain(errors, &mut f.attrs, "apply");
    let deadline = markers::take(errors, &mut f.attrs, "deadline");
    let given = usize::from(handle.is_some()) + usize::from(apply) + usize::from(deadline.is_some());
    if given > 1 {
        errors.spanned(
            &f.sig.ident,
            "a method is one of `#[handle]` (decide on a command), `#[deadline]` (decide on a fired deadline) or `#[apply]` (evolve); keep one",
        );
    }
    // With two markers, the most specific is read (a `#[deadline]`'s argument is not a
    // command, an `#[apply]`'s not an event to route).
    if let Some(attr) = deadline {
        let opts: DeadlineOptions = markers::options(errors, &attr, "deadline");
        return Some(Marker::Deadline(opts.name.map(|a| a.value)));
    }
    if let Some(attr) = handle {
        return Some(Marker::Handle(handle_policy(errors, &attr)));
    }
    apply.then_some(Marker::Apply)
}

fn handle_policy(errors: &mut Errors, attr: &syn::Attribute) -> Policy {
    let opts: HandleOptions = markers::options(errors, attr, "handle");
    match (opts.create, opts.create_if_missing) {
        (None, None) => Policy::MustExist,
        (Some(_), None) => Policy::Create,
        (None, Some(_)) => Policy::CreateIfMissing,
        (Some(_), Some(second)) => {
            errors.at(
                second.span(),
                "`create` (the aggregate must not exist yet) and `create_if_missing` exclude each other; keep one",
            );
            Policy::Create
        }
    }
}

fn handle_fn(all: &mut Errors, f: &ImplItemFn, policy: Policy) -> Option<HandleFn> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    sync_and_concrete(errors, &f.sig, "handle");
    match self_arg(&f.sig) {
        SelfArg::Ref => {}
        SelfArg::RefMut => errors.spanned(
            self_tokens(&f.sig),
            "`#[handle]` methods decide without changing state: take `&self`, and change state in `#[apply]` methods",
        ),
        _ => errors.spanned(&f.sig.ident, "`#[handle]` methods take `&self`: `fn deposit(&self, cmd: &Deposit)`"),
    }
    let (ty, deadlines) = with_deadlines(
        errors,
        f,
        "`#[handle]` methods take the command",
        "`fn deposit(&self, cmd: &Deposit)`, or `fn lend(&self, cmd: &Lend, deadlines: &mut Deadlines<Self>)`",
    );
    let (command, by_ref) = match ty {
        Some(Type::Reference(r)) => {
            if r.mutability.is_some() {
                errors.spanned(r, "take the command by value or by `&`, not `&mut`");
            }
            ((*r.elem).clone(), true)
        }
        Some(other) => (other.clone(), false),
        None => {
            all.extend(std::mem::take(errors));
            return None;
        }
    };
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(
            &f.sig.ident,
            "`#[handle]` methods return the events they decide: `-> Result<Vec<AccountEvent>, AccountError>`",
        );
    }
    let stub = errors.has_errors();
    all.extend(std::mem::take(errors));
    Some(HandleFn { method: f.sig.ident.clone(), command, by_ref, policy, deadlines, stub })
}

/// The argument of a `#[handle]` or `#[deadline]` method besides `self`, and whether it
/// takes `&mut Deadlines<Self>` after it.
fn with_deadlines<'a>(errors: &mut Errors, f: &'a ImplItemFn, what: &str, example: &str) -> (Option<&'a Type>, bool) {
    let typed = typed_args(&f.sig);
    match typed.as_slice() {
        [one] => (Some(&one.ty), false),
        [one, second] => {
            let is_deadlines = matches!(&*second.ty, Type::Reference(r) if r.mutability.is_some()
                && crate::common::last_segment(&r.elem).is_some_and(|(ident, _)| ident == "Deadlines"));
            if !is_deadlines {
                errors.spanned(
                    &second.ty,
                    format!("{what}, then optionally the aggregate's deadlines as `deadlines: &mut Deadlines<Self>`: {example}"),
                );
            }
            (Some(&one.ty), true)
        }
        [] => {
            errors.spanned(&f.sig.ident, format!("{what} as their argument besides `self`: {example}"));
            (None, false)
        }
        [_, _, third, ..] => {
            errors.spanned(
                &third.ty,
                format!("{what}, then optionally `deadlines: &mut Deadlines<Self>`, and nothing else: {example}"),
            );
            (None, false)
        }
    }
}

fn deadline_fn(all: &mut Errors, f: &ImplItemFn, name: Option<LitStr>) -> Option<DeadlineFn> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    sync_and_concrete(errors, &f.sig, "deadline");
    match self_arg(&f.sig) {
        SelfArg::Ref => {}
        SelfArg::RefMut => errors.spanned(
            self_tokens(&f.sig),
            "`#[deadline]` methods decide without changing state: take `&self`, and change state in `#[apply]` methods",
        ),
        _ => errors.spanned(&f.sig.ident, "`#[deadline]` methods take `&self`: `fn remind(&self, due: &ReminderDue)`"),
    }
    let (ty, deadlines) = with_deadlines(
        errors,
        f,
        "`#[deadline]` methods take what the deadline carries",
        "`fn remind(&self, due: &ReminderDue) -> Result<Vec<LoanEvent>, LoanError>`",
    );
    let Some(ty) = ty else {
        all.extend(std::mem::take(errors));
        return None;
    };
    if !matches!(ty, Type::Reference(r) if r.mutability.is_none()) {
        errors.spanned(
            ty,
            format!(
                "`#[deadline]` methods take what the deadline carries by reference: `due: &{}`",
                strip_ref(ty).to_token_stream()
            ),
        );
    }
    if matches!(f.sig.output, syn::ReturnType::Default) {
        errors.spanned(
            &f.sig.ident,
            "`#[deadline]` methods return the events they decide: `-> Result<Vec<LoanEvent>, LoanError>`",
        );
    }
    let stub = errors.has_errors();
    all.extend(std::mem::take(errors));
    let name = name.unwrap_or_else(|| LitStr::new(&f.sig.ident.to_string(), f.sig.ident.span()));
    Some(DeadlineFn {
        method: f.sig.ident.clone(),
        name,
        payload: strip_ref(ty).clone(),
        deadlines,
        stub,
        duplicate: false,
    })
}

fn apply_fn(all: &mut Errors, f: &ImplItemFn) -> Option<ApplyFn> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    sync_and_concrete(errors, &f.sig, "apply");
    match self_arg(&f.sig) {
        SelfArg::RefMut => {}
        SelfArg::None => errors
            .spanned(&f.sig.ident, "`#[apply]` methods take `&mut self`: `fn deposited(&mut self, e: &Deposited)`"),
        _ => errors.spanned(self_tokens(&f.sig), "`#[apply]` methods evolve the state: take `&mut self`"),
    }
    if let syn::ReturnType::Type(_, ty) = &f.sig.output {
        errors.spanned(
            ty,
            "`#[apply]` methods return nothing: applying an event cannot fail, validation belongs in `#[handle]`",
        );
    }
    let ty = single_typed_arg(errors, f, "`#[apply]` methods", "`fn deposited(&mut self, e: &Deposited)`");
    let event = ty.map(|ty| {
        if !matches!(ty, Type::Reference(r) if r.mutability.is_none()) {
            errors.spanned(
                ty,
                format!("`#[apply]` methods take the event by reference: `e: &{}`", strip_ref(ty).to_token_stream()),
            );
        }
        strip_ref(ty).clone()
    });
    let stub = errors.has_errors();
    all.extend(std::mem::take(errors));
    Some(ApplyFn { method: f.sig.ident.clone(), event: event?, stub })
}
