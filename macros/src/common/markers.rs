//! Marker attributes on fields and methods (`#[id]`, `#[handle]`, `#[apply]`, `#[step]`,
//! `#[on]`, `#[reset]`): taken off the item, their options read like a macro's.

use darling::FromMeta;
use syn::{Attribute, Meta};

use super::errors::Errors;
use super::options;

/// Removes every `#[name]`/`#[name(..)]` from `attrs` and returns the first; a second one
/// is reported.
pub(crate) fn take(errors: &mut Errors, attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let mut found: Option<Attribute> = None;
    attrs.retain(|a| {
        if !a.path().is_ident(name) {
            return true;
        }
        if found.is_some() {
            errors.spanned(a, format!("`#[{name}]` is given twice; keep one and put all its options in it"));
        } else {
            found = Some(a.clone());
        }
        false
    });
    found
}

/// Removes a marker that takes no arguments; whether it was there.
pub(crate) fn take_plain(errors: &mut Errors, attrs: &mut Vec<Attribute>, name: &str) -> bool {
    let Some(attr) = take(errors, attrs, name) else { return false };
    if !matches!(attr.meta, Meta::Path(_)) {
        errors.spanned(&attr, format!("`#[{name}]` takes no arguments; write just `#[{name}]`"));
    }
    true
}

/// The options of a marker: none for `#[name]`, read like a macro's for `#[name(..)]`.
pub(crate) fn options<T: FromMeta + Default>(errors: &mut Errors, attr: &Attribute, name: &str) -> T {
    match &attr.meta {
        Meta::Path(_) => T::default(),
        Meta::List(list) => options::parse(name, list.tokens.clone(), errors),
        Meta::NameValue(nv) => {
            errors.spanned(nv, format!("write the options of `#[{name}]` in parentheses: `#[{name}(..)]`"));
            T::default()
        }
    }
}
