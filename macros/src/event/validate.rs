use syn::{Data, DeriveInput};

use crate::common::{Errors, no_generics};

/// An event is a concrete struct or enum.
pub(crate) fn item(errors: &mut Errors, input: &DeriveInput) {
    if let Data::Union(u) = &input.data {
        errors.spanned(u.union_token, "`#[event]` goes on a struct or an enum, not a union");
    }
    no_generics(errors, &input.generics, "event", "type");
}
