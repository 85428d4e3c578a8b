use proc_macro2::TokenStream;
use syn::LitStr;

use super::model::EventModel;
use super::validate;
use crate::common::{Args, Errors, wrong_item};

const KNOWN: &[&str] = &["name", "version", "crate"];

pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<EventModel> {
    let input: syn::DeriveInput =
        syn::parse2(item.clone()).map_err(|_| wrong_item("event", "a struct or an enum", item))?;
    let mut args = Args::parse("event", args);
    let krate = args.krate();
    let name = args.string("name");
    let version = args.int("version", 1).unwrap_or(1);
    let mut errors = Errors::default();
    errors.extend(args.finish(KNOWN));
    validate::item(&mut errors, &input);
    let ident = input.ident;
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    errors.finish(EventModel { krate, ident, name, version })
}
