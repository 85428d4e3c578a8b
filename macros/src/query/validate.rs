use syn::{Data, DeriveInput};

use crate::common::{Errors, no_generics};

/// A query is a concrete struct or enum; anything else leaves nothing to generate.
pub(crate) fn item(input: &DeriveInput) -> syn::Result<()> {
    let mut errors = Errors::default();
    no_generics(&mut errors, &input.generics, "query", "type");
    if let Data::Union(u) = &input.data {
        errors.spanned(u.union_token, "`#[query]` goes on a struct or an enum, not a union");
    }
    errors.check()
}
