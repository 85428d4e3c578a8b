use syn::{Data, DeriveInput, LitStr};

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

/// A stored name is not empty: an empty one could not be told from none.
pub(crate) fn name(name: &LitStr, errors: &mut Errors) {
    if name.value().trim().is_empty() {
        errors.spanned(name, "`#[job(name = ..)]` cannot be empty; write the name jobs are stored under");
    }
}
