use darling::FromMeta;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Meta, Token};

use super::model::{FieldIr, Filter, OPS, OpRef, ReadModelIr};
use super::validate;
use crate::common::options::{self, Read, Word, Written};
use crate::common::{Arg, Errors};

const ATTR: &str = "read_model";

/// `#[read_model(..)]` on the struct.
#[derive(Default, FromMeta)]
#[darling(default)]
struct StructOptions {
    /// The collection its documents are stored in; without it the type is only a
    /// `Field`, to nest in other read models.
    collection: Option<Arg<LitStr>>,
    /// An index on these fields, first one first; repeatable.
    #[darling(multiple)]
    index: Vec<Arg<FieldNames>>,
    /// Each caller sees only the documents whose field holds their principal.
    owner: Option<Arg<Ident>>,
    /// Requests from outside must name a tenant.
    tenant_required: Option<Arg<Word>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// `#[read_model(..)]` on a field.
#[derive(Default, FromMeta)]
#[darling(default)]
struct FieldOptions {
    /// Callers from outside may filter on it: with any operator, or those listed.
    filter: Option<Arg<FilterOps>>,
    /// Callers from outside may sort on it.
    sort: Option<Arg<Word>>,
    /// Callers from outside may select it.
    select: Option<Arg<Word>>,
    /// An index on this field alone.
    index: Option<Arg<Word>>,
    /// No handle: the field is not queried (its type needs no `Field`).
    skip: Option<Arg<Word>>,
}

/// `index(a, b)`: field names.
pub(crate) struct FieldNames(pub(crate) Vec<Ident>);

impl Read for FieldNames {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let usage = format!(
            "`{key}(..)` on the struct takes field names, like `{key}(status, title)`; on a field write `#[read_model({key})]`"
        );
        let Written::List(tokens) = written else { return Err(usage) };
        match Punctuated::<Ident, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(names) if !names.is_empty() => Ok(FieldNames(names.into_iter().collect())),
            _ => Err(usage),
        }
    }
}

/// `filter` or `filter(eq, in_)`.
enum FilterOps {
    Any,
    Only(Vec<Ident>),
}

impl Read for FilterOps {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let usage = || {
            format!("`{key}` takes operators by their method names, like `{key}(eq, in_)`, or none: `{key}` allows all")
        };
        match written {
            Written::Word => Ok(FilterOps::Any),
            // Keywords read as names, so `in` gets a did-you-mean for `in_`.
            Written::List(tokens) => match (|input: syn::parse::ParseStream<'_>| {
                Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any)
            })
            .parse2(tokens)
            {
                Ok(ops) if !ops.is_empty() => Ok(FilterOps::Only(ops.into_iter().collect())),
                _ => Err(usage()),
            },
            Written::Value(_) => Err(usage()),
        }
    }
}

/// The errors that leave nothing to generate: not a struct with named fields, generics.
pub(crate) fn item(input: &DeriveInput) -> syn::Result<()> {
    let mut errors = Errors::default();
    let ident = &input.ident;
    match &input.data {
        Data::Struct(s) if matches!(s.fields, Fields::Named(_)) => {}
        Data::Struct(s) => {
            let shape = if matches!(s.fields, Fields::Unit) { "a unit struct" } else { "a tuple struct" };
            errors.spanned(
                quote::quote!(#ident),
                format!(
                    "`ReadModel` is derived on a struct with named fields, not on {shape}: its fields are queried by name"
                ),
            );
        }
        Data::Enum(e) => errors.spanned(
            e.enum_token,
            format!(
                "`ReadModel` is derived on a struct with named fields, not on an enum; an enum stored as text implements `Field` by hand: `impl Field for {ident} {{ type Handle = TextField; const KIND: FieldKind = FieldKind::Text; }}`"
            ),
        ),
        Data::Union(u) => {
            errors.spanned(u.union_token, "`ReadModel` is derived on a struct with named fields, not on a union");
        }
    }
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.spanned(
            &input.generics,
            "`ReadModel` cannot be derived on a generic type yet: its field paths and allow-list are fixed for the type; use a concrete type",
        );
    }
    errors.check()
}

/// Reads a struct [`item`] accepted.
pub(crate) fn parse(input: &DeriveInput) -> (ReadModelIr, Errors) {
    let mut errors = Errors::default();
    let opts: StructOptions = options::parse(ATTR, attr_tokens(&mut errors, &input.attrs), &mut errors);
    let container = serde_container(&mut errors, &input.attrs);
    let mut fields = Vec::new();
    let mut skipped = Vec::new();
    if let Data::Struct(s) = &input.data {
        for f in &s.fields {
            let Some(member) = &f.ident else { continue };
            match field(&mut errors, f, member, container.rename_all.as_deref()) {
                Some(ir) => fields.push(ir),
                None => skipped.push(member.clone()),
            }
        }
    }
    validate::names(&mut errors, &fields);
    let indexes =
        validate::indexes(&mut errors, &fields, &skipped, opts.index.into_iter().map(|a| (a.key, a.value.0)).collect());
    let owner = opts.owner.and_then(|a| validate::owner(&mut errors, &fields, &skipped, &a.value));
    let ident = input.ident.clone();
    let model = ReadModelIr {
        krate: options::krate(opts.krate),
        vis: input.vis.clone(),
        fields_ident: Ident::new(&format!("{}Fields", ident.unraw()), ident.span()),
        ident,
        collection: opts.collection.map(|a| a.value),
        fields,
        indexes,
        owner,
        tenant_required: opts.tenant_required.is_some(),
    };
    (model, errors)
}

/// The runtime's path (`crate = ..`), for the stand-in of a type the derive cannot read;
/// mistakes in the options are left out (the derive reports the item's kind first).
pub(crate) fn krate(input: &DeriveInput) -> syn::Path {
    let mut ignored = Errors::default();
    let opts: StructOptions = options::parse(ATTR, attr_tokens(&mut ignored, &input.attrs), &mut ignored);
    options::krate(opts.krate)
}

/// The arguments of every `#[read_model(..)]` on an item, joined: one list of options.
fn attr_tokens(errors: &mut Errors, attrs: &[Attribute]) -> TokenStream {
    let mut tokens = TokenStream::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(ATTR)) {
        match &attr.meta {
            Meta::List(list) => {
                if !tokens.is_empty() {
                    <Token![,]>::default().to_tokens(&mut tokens);
                }
                tokens.extend(list.tokens.clone());
            }
            Meta::Path(_) => {}
            Meta::NameValue(nv) => {
                errors.spanned(nv, format!("write the options of `#[{ATTR}]` in parentheses: `#[{ATTR}(..)]`"));
            }
        }
    }
    tokens
}

/// A field with a handle, or `None` for one skipped (by `#[read_model(skip)]` or serde).
fn field(errors: &mut Errors, f: &syn::Field, member: &Ident, rename_all: Option<&str>) -> Option<FieldIr> {
    let opts: FieldOptions = options::parse(ATTR, attr_tokens(errors, &f.attrs), errors);
    let serde = serde_field(&f.attrs);
    let flags: Vec<&Ident> = [
        opts.filter.as_ref().map(|a| &a.key),
        opts.sort.as_ref().map(|a| &a.key),
        opts.select.as_ref().map(|a| &a.key),
        opts.index.as_ref().map(|a| &a.key),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(span) = serde.flatten {
        errors.at(
            span,
            format!(
                "`#[serde(flatten)]` is not supported by `ReadModel` yet; declare the flattened fields in `{member}`'s place, or mark it `#[read_model(skip)]`"
            ),
        );
        return None;
    }
    let skipped_by = match (&opts.skip, serde.skip) {
        (Some(skip), _) => Some(("`#[read_model(skip)]`", skip.span())),
        (None, Some(span)) => Some(("`#[serde(skip)]`", span)),
        (None, None) => None,
    };
    if let Some((by, _)) = skipped_by {
        for key in flags {
            errors.spanned(
                key,
                format!("`{key}` does not apply to `{member}`: it is marked {by}, so it has no handle; remove one of the two"),
            );
        }
        return None;
    }
    let raw = member.unraw().to_string();
    let name = match &serde.rename {
        Some(lit) => lit.value(),
        None => rename_all.and_then(|rule| rename_field(rule, &raw)).unwrap_or(raw),
    };
    if !is_name(&name) {
        let message = format!(
            "`{member}` is stored as `{}`, which cannot be a field path segment: a name is letters, digits, `_` and `-`",
            name.escape_default()
        );
        match &serde.rename {
            Some(lit) => errors.spanned(lit, message),
            None => errors.spanned(member, message),
        }
    }
    let filter = opts.filter.map(|a| match a.value {
        FilterOps::Any => Filter::Any,
        FilterOps::Only(idents) => Filter::Only(idents.iter().filter_map(|i| op_ref(errors, i)).collect()),
    });
    Some(FieldIr {
        member: member.clone(),
        name,
        ty: f.ty.clone(),
        filter,
        sort: opts.sort.is_some(),
        select: opts.select.is_some(),
        index: opts.index.is_some(),
    })
}

/// The operator a method name in `filter(..)` builds.
fn op_ref(errors: &mut Errors, ident: &Ident) -> Option<OpRef> {
    let method = ident.unraw().to_string();
    if let Some((_, variant)) = OPS.iter().find(|(m, _)| *m == method) {
        return Some(OpRef { method, variant: Ident::new(variant, ident.span()), span: ident.span() });
    }
    let hint = match options::did_you_mean(&method, OPS.iter().map(|(m, _)| *m)) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!(
            "operators are named by their handle methods: {}",
            OPS.iter().map(|(m, _)| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    errors.spanned(ident, format!("unknown operator `{method}` in `filter(..)`; {hint}"));
    None
}

/// Whether `name` can be a segment of a field path (the runtime's rule).
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// What serde says about a field.
#[derive(Default)]
struct SerdeField {
    /// `rename = ".."`, or `rename(serialize = "..")`.
    rename: Option<LitStr>,
    /// `skip` or `skip_serializing`: not in the document.
    skip: Option<Span>,
    flatten: Option<Span>,
}

/// What serde says about the struct.
#[derive(Default)]
struct SerdeContainer {
    rename_all: Option<String>,
}

/// The `#[serde(..)]` items of `attrs`; an attribute that does not read is left to serde
/// to report.
fn serde_items(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated).ok())
        .flatten()
        .collect()
}

/// The serialized form of `key = "x"` or `key(serialize = "x", ..)`.
fn serialized_name(meta: &Meta) -> Option<LitStr> {
    let lit = |expr: &syn::Expr| match expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.clone()),
        _ => None,
    };
    match meta {
        Meta::NameValue(nv) => lit(&nv.value),
        Meta::List(list) => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .ok()?
            .iter()
            .find(|m| m.path().is_ident("serialize"))
            .and_then(|m| match m {
                Meta::NameValue(nv) => lit(&nv.value),
                _ => None,
            }),
        Meta::Path(_) => None,
    }
}

fn serde_field(attrs: &[Attribute]) -> SerdeField {
    let mut out = SerdeField::default();
    for meta in serde_items(attrs) {
        let path = meta.path();
        if path.is_ident("rename") {
            out.rename = serialized_name(&meta).or(out.rename);
        } else if path.is_ident("skip") || path.is_ident("skip_serializing") {
            out.skip = Some(path.span());
        } else if path.is_ident("flatten") {
            out.flatten = Some(path.span());
        }
    }
    out
}

fn serde_container(errors: &mut Errors, attrs: &[Attribute]) -> SerdeContainer {
    let mut out = SerdeContainer::default();
    for meta in serde_items(attrs) {
        let path = meta.path();
        if path.is_ident("rename_all") {
            out.rename_all = serialized_name(&meta).map(|l| l.value()).or(out.rename_all);
        } else if path.is_ident("transparent") {
            errors.spanned(
                path,
                "`ReadModel` is not derived on a `#[serde(transparent)]` struct: it is stored as its one field; implement `Field` by hand with that field's handle, like `impl Field for Isbn { type Handle = TextField; const KIND: FieldKind = FieldKind::Text; }`",
            );
        }
    }
    out
}

/// A field's name under serde's `rename_all` rule; `None` for a rule serde does not
/// know (serde reports it).
pub(crate) fn rename_field(rule: &str, field: &str) -> Option<String> {
    let pascal = || {
        let mut out = String::new();
        let mut upper = true;
        for c in field.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    Some(match rule {
        "lowercase" | "snake_case" => field.to_owned(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let pascal = pascal();
            let mut chars = pascal.chars();
            chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_rules_follow_serde() {
        let cases = [
            ("lowercase", "first_name", "first_name"),
            ("snake_case", "first_name", "first_name"),
            ("UPPERCASE", "first_name", "FIRST_NAME"),
            ("SCREAMING_SNAKE_CASE", "first_name", "FIRST_NAME"),
            ("PascalCase", "first_name", "FirstName"),
            ("camelCase", "first_name", "firstName"),
            ("camelCase", "isbn", "isbn"),
            ("kebab-case", "first_name", "first-name"),
            ("SCREAMING-KEBAB-CASE", "first_name", "FIRST-NAME"),
        ];
        for (rule, field, expected) in cases {
            assert_eq!(rename_field(rule, field).as_deref(), Some(expected), "{rule}");
        }
        assert_eq!(rename_field("Title Case", "a"), None);
    }
}
