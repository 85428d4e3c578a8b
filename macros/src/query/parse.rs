use darling::FromMeta;
use proc_macro2::TokenStream;
use syn::{DeriveInput, LitStr};

use super::model::QueryModel;
use super::validate;
use crate::common::options::Types;
use crate::common::{Arg, Errors, options, wrong_item};

/// `#[query(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct QueryOptions {
    /// The stored name, for dispatch by name; the Rust type name by default.
    name: Option<Arg<LitStr>>,
    /// The projections whose read models the query reads (`reads = Balances` or
    /// `reads = [A, B]`): a caller asking to read its own writes waits for them.
    reads: Option<Arg<Types>>,
    /// Checks the query with its `garde::Validate` derive before its handler runs.
    validate: Option<Arg<options::Word>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(QueryModel, Errors)> {
    let input: DeriveInput = syn::parse2(item.clone()).map_err(|_| wrong_item("query", "a struct or an enum", item))?;
    validate::item(&input)?;
    let mut errors = Errors::default();
    let opts: QueryOptions = options::parse("query", args, &mut errors);
    let ident = input.ident;
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    let reads = match opts.reads.map(|a| a.value) {
        None => Vec::new(),
        Some(Types::One(t)) => vec![*t],
        Some(Types::Many(ts)) => ts,
    };
    let validate = opts.validate.map(|a| a.key);
    Ok((QueryModel { krate: options::krate(opts.krate), ident, name, reads, validate }, errors))
}
