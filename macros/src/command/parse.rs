use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Data, DeriveInput, Fields, LitStr, Member};

use super::model::CommandModel;
use super::validate;
use crate::common::{Args, Errors, no_generics, wrong_item};

const KNOWN: &[&str] = &["aggregate", "response", "name", "crate"];

/// Parses the command and returns it with the `#[id]` markers removed from its fields.
pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(CommandModel, TokenStream)> {
    let mut input: DeriveInput =
        syn::parse2(item.clone()).map_err(|_| wrong_item("command", "a struct or an enum", item))?;
    let mut args = Args::parse("command", args);
    let krate = args.krate();
    let aggregate = args.ty("aggregate", "Account");
    let response = args.ty("response", "TransferId");
    let name = args.string("name");
    let mut errors = Errors::default();
    errors.extend(args.finish(KNOWN));
    no_generics(&mut errors, &input.generics, "command", "type");

    let ids = take_id_fields(&mut errors, &mut input);
    let target = validate::target(&mut errors, &input, aggregate, response.as_ref(), ids);
    let ident = input.ident.clone();
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    errors.finish((CommandModel { krate, ident, name, response, target }, input.to_token_stream()))
}

/// The fields marked `#[id]` (marker removed), with their member and type.
fn take_id_fields(errors: &mut Errors, input: &mut DeriveInput) -> Vec<(Member, syn::Type, proc_macro2::Span)> {
    let mut found = Vec::new();
    let mut visit = |fields: &mut Fields| {
        for (i, f) in fields.iter_mut().enumerate() {
            let before = f.attrs.len();
            f.attrs.retain(|a| {
                if a.path().is_ident("id") {
                    if !matches!(a.meta, syn::Meta::Path(_)) {
                        errors.spanned(a, "`#[id]` takes no arguments");
                    }
                    false
                } else {
                    true
                }
            });
            if f.attrs.len() != before {
                let member = match &f.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(syn::Index::from(i)),
                };
                let span = f.ident.as_ref().map_or_else(|| syn::spanned::Spanned::span(&f.ty), syn::Ident::span);
                found.push((member, f.ty.clone(), span));
            }
        }
    };
    match &mut input.data {
        Data::Struct(s) => visit(&mut s.fields),
        Data::Enum(e) => {
            for v in &mut e.variants {
                visit(&mut v.fields);
            }
        }
        Data::Union(u) => errors.spanned(u.union_token, "`#[command]` goes on a struct or an enum, not a union"),
    }
    found
}
