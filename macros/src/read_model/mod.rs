//! `#[derive(ReadModel)]`: a struct of typed field handles (`{Type}Fields`), the `Field`
//! impl that nests the type in other read models, and with `collection = ".."` the
//! `ReadModel` impl (collection, fields, allow-list, indexes).

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn read_model(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    if let Err(e) = parse::item(&input) {
        return fallback(expand::stub(&input), &e);
    }
    let (model, errors) = parse::parse(&input);
    errors.emit_with(expand::expand(&model))
}
