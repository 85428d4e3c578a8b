use darling::FromMeta;
use proc_macro2::TokenStream;
use syn::LitStr;

use super::model::EventModel;
use super::validate;
use crate::common::options::{self, Number};
use crate::common::{Arg, Errors, wrong_item};

/// `#[event(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct EventOptions {
    /// The stored type name; the Rust type name by default. Keep it when renaming the type.
    name: Option<Arg<LitStr>>,
    /// The payload's schema version, from 1; raise it with an `#[upcaster]` for the old one.
    version: Option<Arg<Number>>,
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
    Ok((EventModel { krate: options::krate(opts.krate), ident, name, version }, errors))
}
