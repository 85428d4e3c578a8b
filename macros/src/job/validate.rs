use syn::{Data, DeriveInput};

use crate::common::{Errors, no_generics};

/// A job is a concrete struct or enum (its stored payload); anything else leaves
/// nothing to generate.
pub(crate) fn item(input: &DeriveInput) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Data::Union(u) = &input.data {
        errors.spanned(u.union_token, "`#[job]` goes on a struct or an enum, not a union");
    }
    no_generics(&mut errors, &input.generics, "job", "type");
    errors.check()
}
