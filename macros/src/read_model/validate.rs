use syn::Ident;
use syn::ext::IdentExt;

use super::model::{FieldIr, IndexIr};
use crate::common::Errors;
use crate::common::options::did_you_mean;

/// Each field stored under its own name.
pub(crate) fn names(errors: &mut Errors, fields: &[FieldIr]) {
    for (i, f) in fields.iter().enumerate() {
        if let Some(first) = fields[..i].iter().find(|o| o.name == f.name) {
            errors.spanned(
                &f.member,
                format!(
                    "`{}` and `{}` are both stored as `{}`; give one of them another name with `#[serde(rename = \"..\")]`",
                    first.member, f.member, f.name
                ),
            );
        }
    }
}

/// `owner = field` resolved to the field's stored name; an unknown or skipped field is
/// reported.
pub(crate) fn owner(errors: &mut Errors, fields: &[FieldIr], skipped: &[Ident], name: &Ident) -> Option<String> {
    let word = name.unraw().to_string();
    if let Some(f) = fields.iter().find(|f| f.member.unraw() == word) {
        return Some(f.name.clone());
    }
    let hint = if skipped.iter().any(|s| s.unraw() == word) {
        format!("`{word}` is skipped, so it cannot hold the owner")
    } else {
        let known: Vec<String> = fields.iter().map(|f| f.member.unraw().to_string()).collect();
        match did_you_mean(&word, known.iter().map(String::as_str)) {
            Some(close) => format!("unknown field `{word}`; did you mean `{close}`?"),
            None => format!("unknown field `{word}`"),
        }
    };
    errors.spanned(name, format!("`owner = {word}`: {hint}"));
    None
}

/// The struct's `index(..)` lists resolved to fields; an unknown or skipped field, a
/// field named twice and an index declared twice (also by a field's `index` flag) are
/// reported, and the index dropped.
pub(crate) fn indexes(
    errors: &mut Errors,
    fields: &[FieldIr],
    skipped: &[Ident],
    declared: Vec<(Ident, Vec<Ident>)>,
) -> Vec<IndexIr> {
    let mut out: Vec<IndexIr> = Vec::new();
    for (key, names) in declared {
        let mut resolved = Vec::new();
        for name in &names {
            let word = name.unraw().to_string();
            match fields.iter().position(|f| f.member.unraw() == word) {
                Some(i) if resolved.contains(&i) => {
                    errors.spanned(name, format!("`{word}` is named twice in this `index(..)`; keep one"));
                }
                Some(i) => resolved.push(i),
                None if skipped.iter().any(|s| s.unraw() == word) => errors.spanned(
                    name,
                    format!(
                        "`{word}` is skipped, so it has no handle and cannot be indexed; remove it from `index(..)`"
                    ),
                ),
                None => {
                    let known: Vec<String> = fields.iter().map(|f| f.member.unraw().to_string()).collect();
                    let hint = match did_you_mean(&word, known.iter().map(String::as_str)) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None if known.is_empty() => "the struct has no field with a handle".to_owned(),
                        None => format!(
                            "the fields are {}",
                            known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    errors.spanned(name, format!("unknown field `{word}` in `index(..)`; {hint}"));
                }
            }
        }
        if resolved.len() != names.len() {
            continue;
        }
        let single_flag = matches!(resolved.as_slice(), [i] if fields[*i].index);
        if single_flag || out.iter().any(|o| o.fields == resolved) {
            errors.spanned(&key, "this index is declared twice (here and by another `index`); keep one");
            continue;
        }
        out.push(IndexIr { fields: resolved });
    }
    out
}
