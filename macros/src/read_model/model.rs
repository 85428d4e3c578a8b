use proc_macro2::Span;
use syn::{Ident, LitStr, Path, Type, Visibility};

/// A type deriving `ReadModel`.
pub(crate) struct ReadModelIr {
    pub(crate) krate: Path,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// `{Ident}Fields`, the struct of its handles.
    pub(crate) fields_ident: Ident,
    /// Set when it is stored in a collection (and so implements `ReadModel`).
    pub(crate) collection: Option<LitStr>,
    /// The fields that have a handle, in declaration order.
    pub(crate) fields: Vec<FieldIr>,
    /// `index(a, b)` on the struct, with the fields they name resolved.
    pub(crate) indexes: Vec<IndexIr>,
    /// `owner = field`: the stored name of the field holding each document's owner.
    pub(crate) owner: Option<String>,
    /// `tenant_required`.
    pub(crate) tenant_required: bool,
}

/// A field with a handle.
pub(crate) struct FieldIr {
    /// The Rust name.
    pub(crate) member: Ident,
    /// The serialized name: its segment of the path.
    pub(crate) name: String,
    pub(crate) ty: Type,
    /// `filter` or `filter(..)`.
    pub(crate) filter: Option<Filter>,
    pub(crate) sort: bool,
    pub(crate) select: bool,
    /// `#[read_model(index)]`: an index on this field alone.
    pub(crate) index: bool,
}

/// Which operators a filter may use on a field.
pub(crate) enum Filter {
    /// Any operator of the field's handle.
    Any,
    /// These operators, each with the token naming it.
    Only(Vec<OpRef>),
}

/// An operator named in `filter(..)`.
pub(crate) struct OpRef {
    /// The handle method's name, as written (`like`, `in_`).
    pub(crate) method: String,
    /// The `Op` variant it builds.
    pub(crate) variant: Ident,
    pub(crate) span: Span,
}

/// `index(a, b)` on the struct: indexes of fields of the `fields` list.
pub(crate) struct IndexIr {
    pub(crate) fields: Vec<usize>,
}

/// The handle methods that build an operator, with the `Op` variant each builds.
pub(crate) const OPS: &[(&str, &str)] = &[
    ("eq", "Eq"),
    ("ne", "Ne"),
    ("gt", "Gt"),
    ("lt", "Lt"),
    ("ge", "Ge"),
    ("le", "Le"),
    ("in_", "In"),
    ("not_in", "NotIn"),
    ("all", "All"),
    ("between", "Between"),
    ("not_between", "NotBetween"),
    ("like", "Like"),
    ("not_like", "NotLike"),
    ("ilike", "Ilike"),
    ("contains", "Contains"),
    ("icontains", "Icontains"),
    ("starts_with", "StartsWith"),
    ("istarts_with", "IstartsWith"),
    ("ends_with", "EndsWith"),
    ("iends_with", "IendsWith"),
    ("regex", "Regex"),
    ("iregex", "Iregex"),
    ("is_null", "IsNull"),
    ("is_not_null", "IsNotNull"),
    ("is_empty", "IsEmpty"),
    ("is_not_empty", "IsNotEmpty"),
    ("json_contains", "JsonContains"),
    ("json_contained_by", "JsonContainedBy"),
    ("json_has_key", "JsonHasKey"),
    ("json_has_any", "JsonHasAny"),
    ("json_has_all", "JsonHasAll"),
    ("json_path_exists", "JsonPathExists"),
    ("fts", "Fts"),
    ("fts_phrase", "FtsPhrase"),
];
