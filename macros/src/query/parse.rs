use proc_macro2::TokenStream;
use syn::{Data, DeriveInput, LitStr};

use super::QueryModel;
use crate::common::{Args, Errors, no_generics, wrong_item};

const KNOWN: &[&str] = &["name", "crate"];

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<QueryModel> {
    let input: DeriveInput = syn::parse2(item.clone()).map_err(|_| wrong_item("query", "a struct or an enum", item))?;
    let mut args = Args::parse("query", args);
    let krate = args.krate();
    let name = args.string("name");
    let mut errors = Errors::default();
    errors.extend(args.finish(KNOWN));
    no_generics(&mut errors, &input.generics, "query", "type");
    if let Data::Union(u) = &input.data {
        errors.spanned(u.union_token, "`#[query]` goes on a struct or an enum, not a union");
    }
    let ident = input.ident;
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    errors.finish(QueryModel { krate, ident, name })
}
