use darling::FromMeta;
use proc_macro2::TokenStream;
use syn::{LitStr, Type};

use super::model::{EventModel, UndoModel};
use super::validate;
use crate::common::options::{self, Millis, Number};
use crate::common::{Arg, Errors, wrong_item};

/// `#[event(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct EventOptions {
    /// The stored type name; the Rust type name by default. Keep it when renaming the type.
    name: Option<Arg<LitStr>>,
    /// The payload's schema version, from 1; raise it with an `#[upcaster]` for the old one.
    version: Option<Arg<Number>>,
    /// The command that undoes an event of this type, built by its `Undo` impl.
    undo: Option<Arg<Type>>,
    /// The command that redoes an undone event of this type, built by its `Redo` impl.
    redo: Option<Arg<Type>>,
    /// How long after the event it may be undone (`"30m"`, `"1d"`).
    undo_within: Option<Arg<Millis>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(EventModel, Errors)> {
    let input: syn::DeriveInput =
        syn::parse2(item.clone()).map_err(|_| wrong_item("event", "a struct or an enum", item))?;
    validate::item(&input)?;
    let mut errors = Errors::default();
    let opts: EventOptions = options::parse("event", args, &mut errors);
    let ident = input.ident;
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    let version = opts.version.map_or(1, |a| a.value.0);
    let undo = undo_model(&mut errors, opts.undo, opts.redo, opts.undo_within);
    Ok((EventModel { krate: options::krate(opts.krate), ident, name, version, undo }, errors))
}

/// `undo = ..` with what goes with it; `redo` or `undo_within` alone is an error on its key.
fn undo_model(
    errors: &mut Errors,
    undo: Option<Arg<Type>>,
    redo: Option<Arg<Type>>,
    within: Option<Arg<Millis>>,
) -> Option<UndoModel> {
    let Some(undo) = undo else {
        for key in [redo.map(|a| a.key), within.map(|a| a.key)].into_iter().flatten() {
            errors.at(
                key.span(),
                format!("`{key}` goes with `undo = ..`; write `#[event(undo = TheUndoCommand, {key} = ..)]`"),
            );
        }
        return None;
    };
    Some(UndoModel { undo: undo.value, redo: redo.map(|a| a.value), within_ms: within.map(|a| a.value.0) })
}
