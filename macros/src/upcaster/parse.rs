use darling::FromMeta;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

use super::model::Upcaster;
use super::validate;
use crate::common::options::{self, Number, TypeOrName};
use crate::common::{Arg, Errors, wrong_item};

const USAGE: &str = "#[upcaster(event = Deposited, from = 1, to = 2)]";

/// `#[upcaster(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct UpcasterOptions {
    /// The event whose payload it upcasts (required): its type, or its stored name when the
    /// type is gone.
    event: Option<Arg<TypeOrName>>,
    /// The schema version it reads (required).
    from: Option<Arg<Number>>,
    /// The schema version it writes (required), greater than `from`.
    to: Option<Arg<Number>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(Upcaster, Errors)> {
    let f: ItemFn = syn::parse2(item.clone())
        .map_err(|_| wrong_item("upcaster", "a function `fn(serde_json::Value) -> serde_json::Value`", item))?;
    validate::signature(&f)?;
    let mut errors = Errors::default();
    let opts: UpcasterOptions = options::parse("upcaster", args, &mut errors);
    let krate = options::krate(opts.krate);
    options::require(
        &mut errors,
        &f.sig.ident,
        "upcaster",
        &[
            ("`event = ..`", opts.event.is_none()),
            ("`from = ..`", opts.from.is_none()),
            ("`to = ..`", opts.to.is_none()),
        ],
        USAGE,
    );
    let (from, to) = (opts.from.map(|a| a.value.0), opts.to.map(|a| a.value.0));
    if let (Some(from), Some(to)) = (from, to) {
        validate::versions(&mut errors, &f, from, to);
    }
    let event = match opts.event.map(|a| a.value) {
        Some(TypeOrName::Type(ty)) => quote!(<#ty as #krate::Event>::NAME),
        Some(TypeOrName::Name(lit)) => lit.to_token_stream(),
        None => quote!(""),
    };
    Ok((Upcaster { krate, item: f, event, from: from.unwrap_or(1), to: to.unwrap_or(2) }, errors))
}
