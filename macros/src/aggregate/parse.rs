use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, Item, LitStr, Type};

use super::model::{AggregateImpl, AggregateStruct, ApplyFn, EventRef, HandleFn, Policy};
use super::validate;
use crate::common::{Args, Errors, no_generics};

const STRUCT_KEYS: &[&str] = &["id", "events", "error", "name", "event_enum", "state_stored", "crate"];
const USAGE: &str = "#[aggregate(id = AccountId, events(Opened, Deposited), error = AccountError)]";

pub(crate) fn parse_struct(args: TokenStream, item: &Item) -> syn::Result<AggregateStruct> {
    let (vis, ident, generics) = match item {
        Item::Struct(s) => (&s.vis, &s.ident, &s.generics),
        Item::Enum(e) => (&e.vis, &e.ident, &e.generics),
        _ => unreachable!("checked by the caller"),
    };
    let mut args = Args::parse("aggregate", args);
    let krate = args.krate();
    let id = args.ty("id", "AccountId");
    let error = args.ty("error", "AccountError");
    let events = args.list("events", "Opened, Deposited");
    let name = args.string("name");
    let event_enum = args.ty("event_enum", "AccountEvent");
    let state_stored = args.flag("state_stored");
    let mut errors = Errors::default();
    errors.extend(args.finish(STRUCT_KEYS));
    no_generics(&mut errors, generics, "aggregate", "type");

    for (key, missing) in [("id = ..", id.is_none()), ("events(..)", events.is_none()), ("error = ..", error.is_none())]
    {
        if missing {
            errors.spanned(ident, format!("`#[aggregate]` needs `{key}`; write `{USAGE}`"));
        }
    }
    let mut event_refs = Vec::new();
    if let Some((span, list)) = events {
        if list.is_empty() {
            errors.at(span, format!("`events(..)` lists no event; an aggregate needs at least one, like `{USAGE}`"));
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
    validate::events(&mut errors, &event_refs);
    let event_enum = match event_enum {
        Some(Type::Path(p)) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        Some(other) => {
            errors.spanned(other, "`event_enum` takes a plain name, like `event_enum = AccountEvent`");
            None
        }
        None => None,
    }
    .unwrap_or_else(|| syn::Ident::new(&format!("{ident}Event"), ident.span()));
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    errors.finish(AggregateStruct {
        krate,
        vis: vis.clone(),
        ident: ident.clone(),
        name,
        id: id.unwrap_or_else(|| syn::parse_quote!(())),
        error: error.unwrap_or_else(|| syn::parse_quote!(())),
        events: event_refs,
        event_enum,
        state_stored,
    })
}

/// The impl block's model and its errors. The model is returned even with errors: a
/// method with a mistake becomes a stub, so the mistake is reported once instead of
/// cascading into "no `#[apply]` method" errors elsewhere.
pub(crate) fn parse_impl(args: TokenStream, mut item: syn::ItemImpl) -> (AggregateImpl, Errors) {
    let mut args = Args::parse("aggregate", args);
    let krate = args.krate();
    let mut errors = Errors::default();
    let leftover = args.finish(&["crate"]);
    if leftover.finish(()).is_err() {
        errors.spanned(
            &item.self_ty,
            "on an impl block `#[aggregate]` takes no arguments (except `crate = ..`); put `id`, `events` and `error` on the struct",
        );
    }
    if let Some((_, path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "`#[aggregate]` goes on the inherent impl block (`impl Account { .. }`), not on a trait impl",
        );
    }
    no_generics(&mut errors, &item.generics, "aggregate", "impl block");

    let mut handles = Vec::new();
    let mut applies = Vec::new();
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
            None => {}
        }
    }
    validate::methods(&mut errors, &handles, &applies, &item);
    let self_ty = (*item.self_ty).clone();
    (AggregateImpl { krate, self_ty, item, handles, applies }, errors)
}

enum Marker {
    Handle(Policy),
    Apply,
}

/// Removes the `#[handle]`/`#[apply]` attributes of a method and says which it had.
fn take_markers(errors: &mut Errors, f: &mut ImplItemFn) -> Option<Marker> {
    let mut found: Option<Marker> = None;
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut f.attrs) {
        let marker = if attr.path().is_ident("handle") {
            Some(Marker::Handle(handle_policy(errors, &attr)))
        } else if attr.path().is_ident("apply") {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                errors.spanned(&attr, "`#[apply]` takes no arguments");
            }
            Some(Marker::Apply)
        } else {
            kept.push(attr);
            None
        };
        if let Some(m) = marker {
            if found.is_some() {
                errors.spanned(
                    &f.sig.ident,
                    "a method is either `#[handle]` (decide) or `#[apply]` (evolve), once; remove the extra attribute",
                );
            }
            found = Some(m);
        }
    }
    f.attrs = kept;
    found
}

fn handle_policy(errors: &mut Errors, attr: &syn::Attribute) -> Policy {
    match &attr.meta {
        syn::Meta::Path(_) => Policy::MustExist,
        syn::Meta::List(list) => match list.parse_args::<syn::Ident>() {
            Ok(i) if i == "create" => Policy::Create,
            Ok(i) if i == "create_if_missing" => Policy::CreateIfMissing,
            _ => {
                errors.spanned(
                    &list.tokens,
                    "`#[handle(..)]` takes `create` (the aggregate must not exist yet) or `create_if_missing`; plain `#[handle]` needs an existing aggregate",
                );
                Policy::MustExist
            }
        },
        syn::Meta::NameValue(nv) => {
            errors.spanned(nv, "write `#[handle]`, `#[handle(create)]` or `#[handle(create_if_missing)]`");
            Policy::MustExist
        }
    }
}

/// The single typed argument of a method, after its receiver.
fn single_arg<'a>(errors: &mut Errors, f: &'a ImplItemFn, what: &str, example: &str) -> Option<&'a Type> {
    let typed: Vec<&syn::PatType> = f
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if typed.len() == 1 {
        Some(&typed[0].ty)
    } else {
        let span = if typed.is_empty() { f.sig.ident.span() } else { f.sig.inputs.span() };
        errors.at(span, format!("{what} take exactly one argument besides `self`: {example}"));
        None
    }
}

fn common_checks(errors: &mut Errors, f: &ImplItemFn, marker: &str) {
    if let Some(a) = f.sig.asyncness {
        errors.spanned(
            a,
            format!(
                "`#[{marker}]` methods are synchronous and pure: remove `async` and do I/O in a `#[command_handler]`"
            ),
        );
    }
    if !f.sig.generics.params.is_empty() {
        errors.spanned(&f.sig.generics, format!("`#[{marker}]` methods cannot be generic"));
    }
}

fn handle_fn(all: &mut Errors, f: &ImplItemFn, policy: Policy) -> Option<HandleFn> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    common_checks(errors, f, "handle");
    match f.sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(r) if r.mutability.is_some() => errors.spanned(
            r,
            "`#[handle]` methods decide without changing state: take `&self`, and change state in `#[apply]` methods",
        ),
        _ => errors.spanned(&f.sig.ident, "`#[handle]` methods take `&self`: `fn deposit(&self, cmd: &Deposit)`"),
    }
    let ty = single_arg(errors, f, "`#[handle]` methods", "`fn deposit(&self, cmd: &Deposit)`");
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
    Some(HandleFn { method: f.sig.ident.clone(), command, by_ref, policy, stub })
}

fn apply_fn(all: &mut Errors, f: &ImplItemFn) -> Option<ApplyFn> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    common_checks(errors, f, "apply");
    match f.sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(r) => errors.spanned(r, "`#[apply]` methods evolve the state: take `&mut self`"),
        None => errors
            .spanned(&f.sig.ident, "`#[apply]` methods take `&mut self`: `fn deposited(&mut self, e: &Deposited)`"),
    }
    if let syn::ReturnType::Type(_, ty) = &f.sig.output {
        errors.spanned(
            ty,
            "`#[apply]` methods return nothing: applying an event cannot fail, validation belongs in `#[handle]`",
        );
    }
    let ty = single_arg(errors, f, "`#[apply]` methods", "`fn deposited(&mut self, e: &Deposited)`");
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

fn strip_ref(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => &r.elem,
        other => other,
    }
}
