use darling::FromMeta;
use proc_macro2::TokenStream;
use syn::LitStr;

use super::model::JobModel;
use super::validate;
use crate::common::options;
use crate::common::{Arg, Errors, wrong_item};

/// `#[job(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct JobOptions {
    /// The stored name; the Rust type name by default. Keep it when renaming the type:
    /// stored jobs are found by it.
    name: Option<Arg<LitStr>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(JobModel, Errors)> {
    let input: syn::DeriveInput =
        syn::parse2(item.clone()).map_err(|_| wrong_item("job", "a struct or an enum", item))?;
    validate::item(&input)?;
    let mut errors = Errors::default();
    let opts: JobOptions = options::parse("job", args, &mut errors);
    let ident = input.ident;
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    Ok((JobModel { krate: options::krate(opts.krate), ident, name }, errors))
}
