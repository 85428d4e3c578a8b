//! Typed fields of read models: handles that build specifications with only the operators
//! that fit what a field holds, and the traits `#[derive(ReadModel)]` implements.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use super::ast::Spec;
use super::filter::AllowList;
use super::op::Op;
use super::query::{Dir, FieldKind, Index, Order};

/// A Rust type that can be a field of a read model: it names the handle that builds
/// conditions on the field, and how the field is ordered and indexed.
///
/// Implemented for the standard scalar types, collections, `serde_json::Value`,
/// `uuid::Uuid` and chrono's dates and times, and by `#[derive(ReadModel)]`.
///
/// A type of your own implements [`Field`] with the handle of what it is
/// stored as (a newtype or an enum of unit variants stored as text):
///
/// ```
/// use cqrs_ddd::spec::{Field, FieldKind, TextField};
///
/// #[derive(serde::Serialize)]
/// enum Status { Available, Lent }
///
/// impl Field for Status {
///     type Handle = TextField;
///     const KIND: FieldKind = FieldKind::Text;
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a read model",
    label = "`{Self}` does not implement `Field`",
    note = "derive `ReadModel` on `{Self}` (a nested type needs no `collection`), or mark the field `#[read_model(skip)]`",
    note = "a type stored as a text or a number implements `Field` by hand: `impl Field for {Self} {{ type Handle = TextField; const KIND: FieldKind = FieldKind::Text; }}`"
)]
pub trait Field {
    /// The handle that builds conditions on a field of this type.
    type Handle: FieldHandle;

    /// How a field of this type is ordered and indexed.
    const KIND: FieldKind;

    /// The handle of a field of this type at `path`.
    fn handle(path: String) -> Self::Handle {
        Self::Handle::at(path)
    }

    /// Adds the allow-list entries of a nested read model under `prefix`; only `filter`
    /// entries when `in_list` (a list has no single value to sort, select or index).
    #[doc(hidden)]
    fn __cqrs_ddd_allow(prefix: &str, in_list: bool, allow: AllowList) -> AllowList {
        let _ = (prefix, in_list);
        allow
    }

    /// Adds the indexes a nested read model declares, under `prefix`.
    #[doc(hidden)]
    fn __cqrs_ddd_indexes(prefix: &str, out: &mut Vec<Index>) {
        let _ = (prefix, out);
    }
}

/// A handle on a field at a path: what [`Field::Handle`] names.
pub trait FieldHandle {
    /// The operators a filter on such a field may use: what
    /// `#[read_model(filter(..))]` accepts for it.
    const OPS: &'static [Op];

    /// What such a field holds, for messages: "a number field".
    const WHAT: &'static str;

    /// The handle of the field at `path`.
    fn at(path: String) -> Self;
}

/// A read model stored in a collection, with typed fields, an allow-list for filter
/// strings and the indexes it declares. Implemented by `#[derive(ReadModel)]` with
/// `#[read_model(collection = "..")]`.
///
/// The derive gives the read model a `…Fields` struct (`BookFields` for `Book`) with one
/// handle per field, at its path in the stored document. A handle builds [`Spec`]s and
/// [`Order`]s with only the operators that fit what its field holds, so a misuse is a
/// compile error:
///
/// ```
/// use cqrs_ddd::spec::{FieldKind, Index, QueryOptions, ReadModel, parse_query};
/// use serde::{Deserialize, Serialize};
/// use serde_json::json;
///
/// #[derive(Serialize, Deserialize, ReadModel)]
/// #[read_model(collection = "books", index(status, title))]
/// struct Book {
///     #[read_model(filter, sort, select)]
///     title: String,
///     #[read_model(filter(eq, in_))]
///     status: String,
///     copies: u32,
///     address: Address,
///     items: Vec<Item>,
/// }
///
/// #[derive(Serialize, Deserialize, ReadModel)]
/// struct Address {
///     #[read_model(filter)]
///     city: String,
/// }
///
/// #[derive(Serialize, Deserialize, ReadModel)]
/// struct Item {
///     sku: String,
/// }
///
/// let f = Book::fields();
/// let spec = f.status.eq("available") & f.copies.gt(0) & f.address.city.eq("Athens") & f.items.each().sku.eq("b");
/// let mut query = QueryOptions::new().filter(spec);
/// query.order.push(f.title.asc()); // ordered as text: the field's kind
/// let doc = json!({"title": "Iliad", "status": "available", "copies": 2,
///                  "address": {"city": "Athens"}, "items": [{"sku": "a"}, {"sku": "b"}]});
/// assert!(query.matches(&doc).unwrap());
/// assert_eq!(f.items.each().sku.path(), "items[*].sku");
/// assert_eq!(Book::COLLECTION, "books");
///
/// // What an HTTP filter string may use, and the indexes to build.
/// let allow = Book::allow_list();
/// assert!(parse_query([("filter", "status:in:available,lent"), ("sort", "-title")], &allow).is_ok());
/// assert!(parse_query([("filter", "status:like:a%")], &allow).is_err());
/// assert!(parse_query([("filter", "address.city:eq:Athens")], &allow).is_ok());
/// assert_eq!(Book::indexes(), [Index::on("status", FieldKind::Text).then("title", FieldKind::Text)]);
/// ```
///
/// A handle has the operators of its kind only: `f.copies.like("1%")` and
/// `f.title.gt(3)` do not compile.
///
/// | handle | the Rust types | operators |
/// | --- | --- | --- |
/// | [`TextField`] | `String`, `&str`, `char`, `Uuid`, chrono dates and times | comparisons, `in_`, `between`, `like`, `contains`, `starts_with`, `ends_with` (and their `i…` forms), `regex`, `is_empty`, `fts` |
/// | [`NumberField`] | every integer and float type | comparisons, `in_`, `between` |
/// | [`BoolField`] | `bool` | `eq`, `ne` |
/// | [`JsonField`] | `serde_json::Value`, maps | `json_contains`, `json_has_key`, `json_path_exists`, ... |
/// | [`ListField`] | `Vec`, arrays, slices, sets, deques | `each()` (the element's handle), `all`, `is_empty`, `json_contains` |
/// | `…Fields` | a type that derives `ReadModel` | its own fields, `is_null` |
///
/// Every handle also has `is_null` and `is_not_null`; text, number and bool handles have
/// `asc()` and `desc()`. `Option<T>`, `Box<T>`, `Arc<T>`, `Rc<T>`, `&T` and `Cow<T>` have
/// the handle of `T`; a type of your own implements [`Field`].
///
/// # The derive
///
/// On the struct, `#[read_model(..)]` takes `collection = ".."` (required for `ReadModel`; a
/// type without it is only a [`Field`], to nest in others), `index(a, b)` (repeatable: one
/// index on those fields, first one first), `owner = field` (each caller of
/// [`parse_query_in`](super::parse_query_in) sees only the documents whose field holds
/// their principal), `tenant_required` (a request outside a tenant is refused) and
/// `crate = path`. On a field it takes
/// `filter` (any operator of its handle) or `filter(eq, in_, ..)` (those, by method name),
/// `sort`, `select`, `index`, or `skip` (no handle). Field names are the serialized ones:
/// `#[serde(rename)]`, `#[serde(rename_all)]` and `#[serde(skip)]` are followed;
/// `#[serde(flatten)]` is not supported yet. A flag inside a nested type counts under the
/// nested field's path; inside a list only `filter` counts (a list has no single value to
/// sort, select or index), and a list of texts or numbers is filtered as a whole (`all`,
/// `json_contains`, `is_empty`). `sort` on a nested type or a list orders as
/// [`FieldKind::Any`], where objects and lists tie.
///
/// Mistakes are compile errors: an unknown field in `index(..)` (with a did-you-mean), an
/// operator in `filter(..)` that does not fit the field's type (naming the field, the
/// operator and the ones that fit), a field whose type has no [`Field`] implementation, an
/// enum, a tuple struct or a generic type.
///
/// A handle is `Copy`: its path is interned, kept once for the life of the program (a
/// program builds a fixed set of paths, those of its read models). The fields struct holds
/// each handle in a `ManuallyDrop`, which derefs to it and has nothing to drop; it is there
/// so that a field type without [`Field`] is one error, at the field, instead of one at
/// every use of the struct. Generic read models are not supported yet.
///
/// A read model cannot hold itself except through a list (its fields struct would be
/// infinitely large); allow-list entries through lists of itself stop 8 lists deep.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a read model with a collection",
    label = "`{Self}` names no collection",
    note = "derive `ReadModel` on `{Self}` and name its collection: `#[read_model(collection = \"..\")]` (a nested type needs none, and is then only a `Field`)"
)]
pub trait ReadModel: Field {
    /// The collection of its documents.
    const COLLECTION: &'static str;

    /// The struct of its typed fields.
    type Fields;

    /// Its typed fields, at their paths from the document's root.
    fn fields() -> Self::Fields;

    /// The fields callers from outside may filter, sort and select on: those flagged
    /// `#[read_model(filter)]`, `sort` and `select`, those of nested types under their
    /// path.
    fn allow_list() -> AllowList;

    /// The indexes it declares: `#[read_model(index(a, b))]` on the struct and
    /// `#[read_model(index)]` on fields, each field with its kind.
    fn indexes() -> Vec<Index>;
}

/// A number a number field is compared with: every integer and float type.
pub trait Numeric: sealed::Sealed + Copy {
    /// The JSON number (a float that is not finite is `null`; an `i128`/`u128` beyond
    /// 64 bits is its nearest float).
    fn to_json(self) -> Value;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Numeric for $t {
            fn to_json(self) -> Value {
                Value::from(self)
            }
        }
        impl Field for $t {
            type Handle = NumberField;
            const KIND: FieldKind = FieldKind::Number;
        }
    )*};
}

numeric!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl sealed::Sealed for i128 {}
impl Numeric for i128 {
    #[allow(clippy::cast_precision_loss)] // beyond 64 bits JSON has floats only
    fn to_json(self) -> Value {
        i64::try_from(self).map_or_else(|_| Value::from(self as f64), Value::from)
    }
}
impl Field for i128 {
    type Handle = NumberField;
    const KIND: FieldKind = FieldKind::Number;
}

impl sealed::Sealed for u128 {}
impl Numeric for u128 {
    #[allow(clippy::cast_precision_loss)] // beyond 64 bits JSON has floats only
    fn to_json(self) -> Value {
        u64::try_from(self).map_or_else(|_| Value::from(self as f64), Value::from)
    }
}
impl Field for u128 {
    type Handle = NumberField;
    const KIND: FieldKind = FieldKind::Number;
}

fn texts<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Value {
    Value::Array(values.into_iter().map(|v| Value::String(v.into())).collect())
}

fn numbers<N: Numeric>(values: impl IntoIterator<Item = N>) -> Value {
    Value::Array(values.into_iter().map(Numeric::to_json).collect())
}

/// What every handle has: its path, `is_null`, `is_not_null`, a `Debug` showing the path.
macro_rules! handle_basics {
    ($handle:ident, $what:literal, [$($op:ident),* $(,)?]) => {
        impl $handle {
            /// The field's path in the document, like `address.city` or `items[*].sku`.
            pub fn path(&self) -> &'static str {
                self.path
            }

            /// The field is missing or null.
            pub fn is_null(&self) -> Spec {
                Spec::unary(self.path, Op::IsNull)
            }

            /// The field holds a value.
            pub fn is_not_null(&self) -> Spec {
                Spec::unary(self.path, Op::IsNotNull)
            }
        }

        impl FieldHandle for $handle {
            const OPS: &'static [Op] = &[$(Op::$op),*];
            const WHAT: &'static str = $what;

            fn at(path: String) -> Self {
                $handle { path: intern(path) }
            }
        }

        impl fmt::Debug for $handle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($handle)).field(&self.path).finish()
            }
        }
    };
}

/// The ordering keys of a sortable handle, with its kind.
macro_rules! sortable {
    ($handle:ident, $kind:expr) => {
        impl $handle {
            /// An ascending ordering key on this field, ordered as its kind.
            pub fn asc(&self) -> Order {
                Order { field: self.path.to_owned(), dir: Dir::Asc, kind: $kind }
            }

            /// A descending ordering key on this field, ordered as its kind.
            pub fn desc(&self) -> Order {
                Order { field: self.path.to_owned(), dir: Dir::Desc, kind: $kind }
            }
        }
    };
}

/// A text field: `String`, `&str`, `char`, `Uuid`, chrono dates and times.
///
/// ```
/// use cqrs_ddd::spec::{FieldHandle, TextField};
/// use serde_json::json;
///
/// let title = TextField::at("title".into());
/// let doc = json!({"title": "The Iliad"});
/// assert!(title.istarts_with("the ").matches(&doc).unwrap());
/// assert!(title.in_(["The Iliad", "Odyssey"]).matches(&doc).unwrap());
/// assert!(!title.between("A", "M").matches(&doc).unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct TextField {
    path: &'static str,
}

handle_basics!(
    TextField,
    "a text field",
    [
        Eq,
        Ne,
        Gt,
        Lt,
        Ge,
        Le,
        In,
        NotIn,
        Between,
        NotBetween,
        Like,
        NotLike,
        Ilike,
        Contains,
        Icontains,
        StartsWith,
        IstartsWith,
        EndsWith,
        IendsWith,
        Regex,
        Iregex,
        IsEmpty,
        IsNotEmpty,
        Fts,
        FtsPhrase,
        IsNull,
        IsNotNull,
    ]
);
sortable!(TextField, FieldKind::Text);

/// The methods of [`TextField`] that take one text, each with its operator.
macro_rules! text_ops {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        impl TextField {
            $(
                $(#[$doc])*
                pub fn $name(&self, value: impl Into<String>) -> Spec {
                    Spec::leaf(self.path, Op::$op, Value::String(value.into()))
                }
            )*
        }
    };
}

text_ops! {
    /// Equal to the text.
    eq => Eq,
    /// Not equal to the text (a missing field is unknown, not different).
    ne => Ne,
    /// After the text, by code point.
    gt => Gt,
    /// Before the text, by code point.
    lt => Lt,
    /// The text or after it.
    ge => Ge,
    /// The text or before it.
    le => Le,
    /// Matches an SQL pattern (`%` any run, `_` one character, `\` escapes), case-sensitive.
    like => Like,
    /// Does not match the SQL pattern.
    not_like => NotLike,
    /// Matches the SQL pattern, ignoring case.
    ilike => Ilike,
    /// Holds the text (no wildcards).
    contains => Contains,
    /// Holds the text, ignoring case.
    icontains => Icontains,
    /// Starts with the text.
    starts_with => StartsWith,
    /// Starts with the text, ignoring case.
    istarts_with => IstartsWith,
    /// Ends with the text.
    ends_with => EndsWith,
    /// Ends with the text, ignoring case.
    iends_with => IendsWith,
    /// The regular expression is found in it.
    regex => Regex,
    /// The regular expression is found in it, ignoring case.
    iregex => Iregex,
    /// Full-text search: every word of the query is in it.
    fts => Fts,
    /// Full-text search of a phrase.
    fts_phrase => FtsPhrase,
}

impl TextField {
    /// One of the texts.
    pub fn in_<S: Into<String>>(&self, values: impl IntoIterator<Item = S>) -> Spec {
        Spec::leaf(self.path, Op::In, texts(values))
    }

    /// None of the texts.
    pub fn not_in<S: Into<String>>(&self, values: impl IntoIterator<Item = S>) -> Spec {
        Spec::leaf(self.path, Op::NotIn, texts(values))
    }

    /// From `low` to `high`, both included.
    pub fn between(&self, low: impl Into<String>, high: impl Into<String>) -> Spec {
        Spec::leaf(self.path, Op::Between, texts([low.into(), high.into()]))
    }

    /// Before `low` or after `high`.
    pub fn not_between(&self, low: impl Into<String>, high: impl Into<String>) -> Spec {
        Spec::leaf(self.path, Op::NotBetween, texts([low.into(), high.into()]))
    }

    /// Missing, null or `""`.
    pub fn is_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsEmpty)
    }

    /// A text that is not `""`.
    pub fn is_not_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsNotEmpty)
    }
}

/// A number field: every integer and float type.
///
/// ```
/// use cqrs_ddd::spec::{FieldHandle, NumberField};
/// use serde_json::json;
///
/// let copies = NumberField::at("copies".into());
/// assert!((copies.ge(2) & copies.lt(2.5)).matches(&json!({"copies": 2})).unwrap());
/// assert!(copies.not_in([1u8, 3]).matches(&json!({"copies": 2})).unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct NumberField {
    path: &'static str,
}

handle_basics!(
    NumberField,
    "a number field",
    [Eq, Ne, Gt, Lt, Ge, Le, In, NotIn, Between, NotBetween, IsNull, IsNotNull]
);
sortable!(NumberField, FieldKind::Number);

/// The methods of [`NumberField`] that take one number, each with its operator.
macro_rules! number_ops {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        impl NumberField {
            $(
                $(#[$doc])*
                pub fn $name(&self, value: impl Numeric) -> Spec {
                    Spec::leaf(self.path, Op::$op, value.to_json())
                }
            )*
        }
    };
}

number_ops! {
    /// Equal to the number (`2` equals `2.0`).
    eq => Eq,
    /// Not equal to the number (a missing field is unknown, not different).
    ne => Ne,
    /// Greater than the number.
    gt => Gt,
    /// Less than the number.
    lt => Lt,
    /// The number or greater.
    ge => Ge,
    /// The number or less.
    le => Le,
}

impl NumberField {
    /// One of the numbers.
    pub fn in_<N: Numeric>(&self, values: impl IntoIterator<Item = N>) -> Spec {
        Spec::leaf(self.path, Op::In, numbers(values))
    }

    /// None of the numbers.
    pub fn not_in<N: Numeric>(&self, values: impl IntoIterator<Item = N>) -> Spec {
        Spec::leaf(self.path, Op::NotIn, numbers(values))
    }

    /// From `low` to `high`, both included.
    pub fn between(&self, low: impl Numeric, high: impl Numeric) -> Spec {
        Spec::leaf(self.path, Op::Between, Value::Array(vec![low.to_json(), high.to_json()]))
    }

    /// Below `low` or above `high`.
    pub fn not_between(&self, low: impl Numeric, high: impl Numeric) -> Spec {
        Spec::leaf(self.path, Op::NotBetween, Value::Array(vec![low.to_json(), high.to_json()]))
    }
}

/// A boolean field.
///
/// ```
/// use cqrs_ddd::spec::{BoolField, FieldHandle};
/// use serde_json::json;
///
/// let open = BoolField::at("open".into());
/// assert!(open.eq(true).matches(&json!({"open": true})).unwrap());
/// assert!(!open.ne(true).matches(&json!({"open": true})).unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct BoolField {
    path: &'static str,
}

handle_basics!(BoolField, "a bool field", [Eq, Ne, IsNull, IsNotNull]);
sortable!(BoolField, FieldKind::Bool);

impl BoolField {
    /// Equal to the boolean.
    pub fn eq(&self, value: bool) -> Spec {
        Spec::leaf(self.path, Op::Eq, value)
    }

    /// Not equal to the boolean (a missing field is unknown, not different).
    pub fn ne(&self, value: bool) -> Spec {
        Spec::leaf(self.path, Op::Ne, value)
    }
}

/// A JSON field: `serde_json::Value` and maps, queried with the JSON operators.
///
/// ```
/// use cqrs_ddd::spec::{FieldHandle, JsonField};
/// use serde_json::json;
///
/// let attrs = JsonField::at("attrs".into());
/// let doc = json!({"attrs": {"colour": "red", "size": {"w": 2}}});
/// assert!(attrs.json_contains(json!({"colour": "red"})).matches(&doc).unwrap());
/// assert!(attrs.json_has_all(["colour", "size"]).matches(&doc).unwrap());
/// assert!(attrs.json_path_exists("$.size.w").matches(&doc).unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct JsonField {
    path: &'static str,
}

handle_basics!(
    JsonField,
    "a JSON field",
    [
        JsonContains,
        JsonContainedBy,
        JsonHasKey,
        JsonHasAny,
        JsonHasAll,
        JsonPathExists,
        IsEmpty,
        IsNotEmpty,
        IsNull,
        IsNotNull,
    ]
);

impl JsonField {
    /// Holds the value, like PostgreSQL's `@>`: an object holds the members given, a
    /// list holds the elements given.
    pub fn json_contains(&self, value: impl Into<Value>) -> Spec {
        Spec::leaf(self.path, Op::JsonContains, value)
    }

    /// Is held by the value (`<@`).
    pub fn json_contained_by(&self, value: impl Into<Value>) -> Spec {
        Spec::leaf(self.path, Op::JsonContainedBy, value)
    }

    /// An object with this key (or a list holding this text).
    pub fn json_has_key(&self, key: impl Into<String>) -> Spec {
        Spec::leaf(self.path, Op::JsonHasKey, Value::String(key.into()))
    }

    /// Has at least one of the keys.
    pub fn json_has_any<S: Into<String>>(&self, keys: impl IntoIterator<Item = S>) -> Spec {
        Spec::leaf(self.path, Op::JsonHasAny, texts(keys))
    }

    /// Has every key.
    pub fn json_has_all<S: Into<String>>(&self, keys: impl IntoIterator<Item = S>) -> Spec {
        Spec::leaf(self.path, Op::JsonHasAll, texts(keys))
    }

    /// The JSON path (`$.a.b[0]`) leads to a value.
    pub fn json_path_exists(&self, path: impl Into<String>) -> Spec {
        Spec::leaf(self.path, Op::JsonPathExists, Value::String(path.into()))
    }

    /// Missing, null, `""`, `[]` or `{}`.
    pub fn is_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsEmpty)
    }

    /// Not empty.
    pub fn is_not_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsNotEmpty)
    }
}

/// A list field, whose elements have the handle `F`: `Vec<T>`, arrays, slices, sets and
/// deques.
///
/// ```
/// use cqrs_ddd::spec::{FieldHandle, ListField, TextField};
/// use serde_json::json;
///
/// let tags: ListField<TextField> = ListField::at("tags".into());
/// let doc = json!({"tags": ["epic", "greek"]});
/// assert!(tags.each().eq("greek").matches(&doc).unwrap());
/// assert!(tags.all(["greek", "epic"]).matches(&doc).unwrap());
/// assert_eq!(tags.each().path(), "tags[*]");
/// ```
pub struct ListField<F> {
    path: &'static str,
    element: PhantomData<fn() -> F>,
}

impl<F: FieldHandle> ListField<F> {
    /// The handle of each element, at `path[*]`: a condition on it holds when it holds
    /// for at least one element.
    pub fn each(&self) -> F {
        F::at(format!("{}[*]", self.path))
    }
}

impl<F> ListField<F> {
    /// The field's path in the document, like `items` or `orders[*].lines`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The field is missing or null.
    pub fn is_null(&self) -> Spec {
        Spec::unary(self.path, Op::IsNull)
    }

    /// The field holds a value.
    pub fn is_not_null(&self) -> Spec {
        Spec::unary(self.path, Op::IsNotNull)
    }

    /// Missing, null or `[]`.
    pub fn is_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsEmpty)
    }

    /// A list with at least one element.
    pub fn is_not_empty(&self) -> Spec {
        Spec::unary(self.path, Op::IsNotEmpty)
    }

    /// Holds the value, like PostgreSQL's `@>`: `json!(["a"])` for an element `"a"`,
    /// `json!([{"sku": "b"}])` for an element with that member.
    pub fn json_contains(&self, value: impl Into<Value>) -> Spec {
        Spec::leaf(self.path, Op::JsonContains, value)
    }
}

impl ListField<TextField> {
    /// Holds every one of the texts.
    pub fn all<S: Into<String>>(&self, values: impl IntoIterator<Item = S>) -> Spec {
        Spec::leaf(self.path, Op::All, texts(values))
    }
}

impl ListField<NumberField> {
    /// Holds every one of the numbers.
    pub fn all<N: Numeric>(&self, values: impl IntoIterator<Item = N>) -> Spec {
        Spec::leaf(self.path, Op::All, numbers(values))
    }
}

impl ListField<BoolField> {
    /// Holds every one of the booleans.
    pub fn all(&self, values: impl IntoIterator<Item = bool>) -> Spec {
        Spec::leaf(self.path, Op::All, Value::Array(values.into_iter().map(Value::Bool).collect()))
    }
}

impl<F> FieldHandle for ListField<F> {
    const OPS: &'static [Op] = &[Op::All, Op::JsonContains, Op::IsEmpty, Op::IsNotEmpty, Op::IsNull, Op::IsNotNull];
    const WHAT: &'static str = "a list field";

    fn at(path: String) -> Self {
        ListField { path: intern(path), element: PhantomData }
    }
}

impl<F> Clone for ListField<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for ListField<F> {}

impl<F> fmt::Debug for ListField<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ListField").field(&self.path).finish()
    }
}

/// The refusal traits, one per kind of mistake; implemented by no type.
macro_rules! refusal_traits {
    ($($(#[$attr:meta])* $trait:ident;)*) => {$(
        $(#[$attr])*
        #[doc(hidden)]
        pub trait $trait: sealed::Sealed {
            /// Never called: no type implements the trait.
            fn refuse(self) -> Spec;
        }
    )*};
}

refusal_traits! {
    #[diagnostic::on_unimplemented(
        message = "a bool field has no order: it is compared with `eq` and `ne` only",
        label = "`gt`, `lt`, `ge` and `le` do not apply to a bool field",
        note = "write `field.eq(true)` or `field.ne(true)`"
    )]
    BoolHasNoOrder;
    #[diagnostic::on_unimplemented(
        message = "`all` applies to a list field, not to a single value",
        label = "`all` needs a list field",
        note = "for one of several values write `field.in_([..])`"
    )]
    NotAList;
    #[diagnostic::on_unimplemented(
        message = "a JSON field is not compared with `eq`, `ne`, `gt`, `lt`, `ge` or `le`",
        label = "not an operator of a JSON field",
        note = "match it with `json_contains(json!({{..}}))`, or give the value a typed field in a read model"
    )]
    JsonIsNotCompared;
    #[diagnostic::on_unimplemented(
        message = "a list field is not compared with `eq`, `ne`, `gt`, `lt`, `ge` or `le`",
        label = "not an operator of a list field",
        note = "compare its elements through `each()`, like `items.each().eq(..)`, or match it with `json_contains`"
    )]
    ListIsNotCompared;
    #[diagnostic::on_unimplemented(
        message = "a nested read model is not compared with `eq`, `ne`, `gt`, `lt`, `ge`, `le` or `all`",
        label = "not an operator of a nested read model",
        note = "compare one of its fields, like `address.city.eq(..)`"
    )]
    ObjectIsNotCompared;
}

// Methods a handle does not have, declared so that calling one says why and what to
// write instead: rustc would otherwise offer `Iterator`'s method of that name and answer
// "is not an iterator". Their bound holds for no type, so no call compiles.

impl BoolField {
    #[doc(hidden)]
    pub fn gt<V: BoolHasNoOrder>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn lt<V: BoolHasNoOrder>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn ge<V: BoolHasNoOrder>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn le<V: BoolHasNoOrder>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn all<V: NotAList>(&self, values: V) -> Spec {
        values.refuse()
    }
}

impl TextField {
    #[doc(hidden)]
    pub fn all<V: NotAList>(&self, values: V) -> Spec {
        values.refuse()
    }
}

impl NumberField {
    #[doc(hidden)]
    pub fn all<V: NotAList>(&self, values: V) -> Spec {
        values.refuse()
    }
}

impl JsonField {
    #[doc(hidden)]
    pub fn eq<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn ne<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn gt<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn lt<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn ge<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn le<V: JsonIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn all<V: JsonIsNotCompared>(&self, values: V) -> Spec {
        values.refuse()
    }
}

impl<F> ListField<F> {
    #[doc(hidden)]
    pub fn eq<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn ne<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn gt<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn lt<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn ge<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }

    #[doc(hidden)]
    pub fn le<V: ListIsNotCompared>(&self, value: V) -> Spec {
        value.refuse()
    }
}

macro_rules! field_of {
    ($handle:ident, $kind:ident: $($t:ty),*) => {$(
        impl Field for $t {
            type Handle = $handle;
            const KIND: FieldKind = FieldKind::$kind;
        }
    )*};
}

field_of!(TextField, Text: String, str, char, uuid::Uuid, chrono::NaiveDate, chrono::NaiveDateTime, chrono::NaiveTime);
field_of!(BoolField, Bool: bool);
field_of!(JsonField, Any: Value, serde_json::Map<String, Value>);

/// Serialized as RFC 3339 text; texts of one offset order as their instants do.
impl<Tz: chrono::TimeZone> Field for chrono::DateTime<Tz> {
    type Handle = TextField;
    const KIND: FieldKind = FieldKind::Text;
}

impl<K, V, S> Field for HashMap<K, V, S> {
    type Handle = JsonField;
    const KIND: FieldKind = FieldKind::Any;
}

impl<K, V> Field for BTreeMap<K, V> {
    type Handle = JsonField;
    const KIND: FieldKind = FieldKind::Any;
}

/// The types stored as their content: the same handle, kind and nested entries.
macro_rules! transparent {
    ($($(#[$attr:meta])* [$($gen:tt)*] $t:ty),* $(,)?) => {$(
        $(#[$attr])*
        impl<$($gen)*> Field for $t {
            type Handle = T::Handle;
            const KIND: FieldKind = T::KIND;

            fn __cqrs_ddd_allow(prefix: &str, in_list: bool, allow: AllowList) -> AllowList {
                T::__cqrs_ddd_allow(prefix, in_list, allow)
            }

            fn __cqrs_ddd_indexes(prefix: &str, out: &mut Vec<Index>) {
                T::__cqrs_ddd_indexes(prefix, out);
            }
        }
    )*};
}

transparent! {
    /// A missing or null value is what `is_null` finds.
    [T: Field] Option<T>,
    [T: Field + ?Sized] Box<T>,
    [T: Field + ?Sized] Arc<T>,
    [T: Field + ?Sized] Rc<T>,
    [T: Field + ?Sized] &T,
    [T: Field + ToOwned + ?Sized] Cow<'_, T>,
}

/// How deep nested lists are followed for allow-list entries: a read model that holds a
/// list of itself stops there.
const MAX_LIST_DEPTH: usize = 8;

/// The types stored as JSON lists: a [`ListField`] of the element's handle, whose nested
/// filter entries are under `path[*]`.
macro_rules! list {
    ($([$($gen:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($gen)*> Field for $t {
            type Handle = ListField<T::Handle>;
            const KIND: FieldKind = FieldKind::Any;

            fn __cqrs_ddd_allow(prefix: &str, _in_list: bool, allow: AllowList) -> AllowList {
                if prefix.matches("[*]").count() >= MAX_LIST_DEPTH {
                    return allow;
                }
                T::__cqrs_ddd_allow(&format!("{prefix}[*]"), true, allow)
            }
        }
    )*};
}

list! {
    [T: Field] Vec<T>,
    [T: Field] [T],
    [T: Field, const N: usize] [T; N],
    [T: Field] VecDeque<T>,
    [T: Field] LinkedList<T>,
    [T: Field] BinaryHeap<T>,
    [T: Field] BTreeSet<T>,
    [T: Field, S] HashSet<T, S>,
}

/// The path of field `name` inside the object at `prefix` (the document's root when
/// empty).
#[doc(hidden)]
pub fn field_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// Every path a handle was built at, each kept once for the life of the program: a
/// handle is then a `Copy` reference (a program builds a fixed set of paths, those of its
/// read models).
static PATHS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The one copy of `path`.
#[doc(hidden)]
pub fn intern(path: String) -> &'static str {
    let mut paths = PATHS.lock();
    if let Some(known) = paths.get(path.as_str()) {
        return known;
    }
    let kept: &'static str = Box::leak(path.into_boxed_str());
    paths.insert(kept);
    kept
}

/// Whether `op` is one of `ops` (usable in constants).
#[doc(hidden)]
pub const fn op_fits(ops: &[Op], op: Op) -> bool {
    let mut i = 0;
    while i < ops.len() {
        if ops[i] as u8 == op as u8 {
            return true;
        }
        i += 1;
    }
    false
}

/// The length of [`refusal`]'s message.
#[doc(hidden)]
pub const fn refusal_len(head: &str, what: &str, ops: &[Op]) -> usize {
    compose_refusal(&mut [], head, what, ops)
}

/// The message of a `filter(op)` whose operator does not fit the field, built in a
/// constant: `{head}{what}: it takes `eq`, `ne` and `is_null``, in `N` bytes (see
/// [`refusal_len`]).
#[doc(hidden)]
pub const fn refusal<const N: usize>(head: &str, what: &str, ops: &[Op]) -> [u8; N] {
    let mut buf = [0; N];
    compose_refusal(&mut buf, head, what, ops);
    buf
}

/// The text of bytes [`refusal`] wrote.
#[doc(hidden)]
pub const fn refusal_text(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => "this operator does not fit the field",
    }
}

/// Writes the message into `buf` as far as it reaches; its whole length.
const fn compose_refusal(buf: &mut [u8], head: &str, what: &str, ops: &[Op]) -> usize {
    let mut at = write(buf, 0, head);
    at = write(buf, at, what);
    at = write(buf, at, ": it takes ");
    let mut i = 0;
    while i < ops.len() {
        if i > 0 {
            at = write(buf, at, if i + 1 == ops.len() { " and " } else { ", " });
        }
        at = write(buf, at, "`");
        at = write(buf, at, method_name(ops[i]));
        at = write(buf, at, "`");
        i += 1;
    }
    at
}

const fn write(buf: &mut [u8], at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if at + i < buf.len() {
            buf[at + i] = bytes[i];
        }
        i += 1;
    }
    at + bytes.len()
}

/// The name of the handle method that builds `op` (its wire name when no method does).
pub(crate) const fn method_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Gt => "gt",
        Op::Lt => "lt",
        Op::Ge => "ge",
        Op::Le => "le",
        Op::In => "in_",
        Op::StartsWith => "starts_with",
        Op::IstartsWith => "istarts_with",
        Op::EndsWith => "ends_with",
        Op::IendsWith => "iends_with",
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::{QueryOptions, parse_query};

    fn text(path: &str) -> TextField {
        TextField::at(path.to_owned())
    }

    fn number(path: &str) -> NumberField {
        NumberField::at(path.to_owned())
    }

    fn op_of(spec: &Spec) -> Op {
        match spec {
            Spec::Leaf(c) => c.op,
            other => panic!("not a leaf: {other:?}"),
        }
    }

    #[test]
    fn text_methods_build_their_operators_with_text_values() {
        let f = text("title");
        assert_eq!(f.eq("a"), Spec::leaf("title", Op::Eq, "a"));
        assert_eq!(f.in_(["a", "b"]), Spec::leaf("title", Op::In, json!(["a", "b"])));
        assert_eq!(f.not_between("a", String::from("m")), Spec::leaf("title", Op::NotBetween, json!(["a", "m"])));
        assert_eq!(f.is_empty(), Spec::unary("title", Op::IsEmpty));
        assert_eq!(f.asc(), Order { field: "title".into(), dir: Dir::Asc, kind: FieldKind::Text });
        let built = [
            f.eq(""),
            f.ne(""),
            f.gt(""),
            f.lt(""),
            f.ge(""),
            f.le(""),
            f.in_([""]),
            f.not_in([""]),
            f.between("", ""),
            f.not_between("", ""),
            f.like(""),
            f.not_like(""),
            f.ilike(""),
            f.contains(""),
            f.icontains(""),
            f.starts_with(""),
            f.istarts_with(""),
            f.ends_with(""),
            f.iends_with(""),
            f.regex(""),
            f.iregex(""),
            f.is_empty(),
            f.is_not_empty(),
            f.fts(""),
            f.fts_phrase(""),
            f.is_null(),
            f.is_not_null(),
        ];
        assert_eq!(built.iter().map(op_of).collect::<Vec<_>>(), TextField::OPS);
    }

    #[test]
    fn number_methods_take_every_integer_and_float_type() {
        let f = number("n");
        assert_eq!(f.eq(3u8), Spec::leaf("n", Op::Eq, 3));
        assert_eq!(f.gt(-2i64), Spec::leaf("n", Op::Gt, -2));
        assert_eq!(f.le(2.5f32), Spec::leaf("n", Op::Le, 2.5));
        assert_eq!(f.between(1usize, 9u128), Spec::leaf("n", Op::Between, json!([1, 9])));
        assert_eq!(f.in_([1i128 << 70]), Spec::leaf("n", Op::In, json!([1_180_591_620_717_411_303_424.0])));
        assert_eq!(f.ne(f64::NAN), Spec::leaf("n", Op::Ne, Value::Null));
        assert_eq!(f.desc().kind, FieldKind::Number);
        let built = [
            f.eq(0),
            f.ne(0),
            f.gt(0),
            f.lt(0),
            f.ge(0),
            f.le(0),
            f.in_([0]),
            f.not_in([0]),
            f.between(0, 1),
            f.not_between(0, 1),
            f.is_null(),
            f.is_not_null(),
        ];
        assert_eq!(built.iter().map(op_of).collect::<Vec<_>>(), NumberField::OPS);
    }

    #[test]
    fn bool_json_and_list_methods_build_their_operators() {
        let b = BoolField::at("open".into());
        let built = [b.eq(true), b.ne(false), b.is_null(), b.is_not_null()];
        assert_eq!(built.iter().map(op_of).collect::<Vec<_>>(), BoolField::OPS);
        assert_eq!(b.asc().kind, FieldKind::Bool);

        let j = JsonField::at("attrs".into());
        let built = [
            j.json_contains(json!({})),
            j.json_contained_by(json!({})),
            j.json_has_key("k"),
            j.json_has_any(["k"]),
            j.json_has_all(["k"]),
            j.json_path_exists("$.k"),
            j.is_empty(),
            j.is_not_empty(),
            j.is_null(),
            j.is_not_null(),
        ];
        assert_eq!(built.iter().map(op_of).collect::<Vec<_>>(), JsonField::OPS);

        let l: ListField<NumberField> = ListField::at("ns".into());
        let built =
            [l.all([1]), l.json_contains(json!([1])), l.is_empty(), l.is_not_empty(), l.is_null(), l.is_not_null()];
        assert_eq!(built.iter().map(op_of).collect::<Vec<_>>(), ListField::<NumberField>::OPS);
        let nested: ListField<ListField<BoolField>> = ListField::at("m".into());
        assert_eq!(nested.each().each().path(), "m[*][*]");
        assert_eq!(nested.each().each().eq(true), Spec::leaf("m[*][*]", Op::Eq, true));
    }

    #[test]
    fn conditions_on_list_elements_evaluate_per_element() {
        let docs = vec![
            ("1".to_owned(), json!({"tags": ["a", "b"], "ns": [1, 5]})),
            ("2".to_owned(), json!({"tags": ["b"], "ns": []})),
            ("3".to_owned(), json!({"tags": "a"})),
        ];
        let tags: ListField<TextField> = ListField::at("tags".into());
        let ns: ListField<NumberField> = ListField::at("ns".into());
        let ids = |spec: Spec| -> Vec<String> {
            QueryOptions::new().filter(spec).apply(docs.clone()).unwrap().into_iter().map(|(id, _)| id).collect()
        };
        assert_eq!(ids(tags.each().eq("a")), ["1"]);
        assert_eq!(ids(tags.all(["b"])), ["1", "2"]);
        assert_eq!(ids(ns.each().gt(4)), ["1"]);
        assert_eq!(ids(ns.is_empty()), ["2", "3"]);
    }

    #[test]
    fn rust_types_map_to_handles_and_kinds() {
        fn kind<T: Field + ?Sized>() -> FieldKind {
            T::KIND
        }
        fn path<T: Field + ?Sized>() -> String
        where
            T::Handle: fmt::Debug,
        {
            format!("{:?}", T::handle("p".into()))
        }
        assert_eq!(kind::<String>(), FieldKind::Text);
        assert_eq!(kind::<Option<&str>>(), FieldKind::Text);
        assert_eq!(kind::<Cow<'_, str>>(), FieldKind::Text);
        assert_eq!(kind::<uuid::Uuid>(), FieldKind::Text);
        assert_eq!(kind::<chrono::DateTime<chrono::Utc>>(), FieldKind::Text);
        assert_eq!(kind::<Box<u16>>(), FieldKind::Number);
        assert_eq!(kind::<f32>(), FieldKind::Number);
        assert_eq!(kind::<bool>(), FieldKind::Bool);
        assert_eq!(kind::<HashMap<String, u8>>(), FieldKind::Any);
        assert_eq!(kind::<[u8; 3]>(), FieldKind::Any);
        assert_eq!(path::<Vec<char>>(), "ListField(\"p\")");
        assert_eq!(path::<BTreeSet<i8>>(), "ListField(\"p\")");
        assert_eq!(path::<Arc<Value>>(), "JsonField(\"p\")");
        assert_eq!(path::<Rc<[bool]>>(), "ListField(\"p\")");
    }

    #[test]
    fn a_refusal_names_the_operators_that_fit() {
        const HEAD: &str = "`filter(like)` does not fit `copies`, ";
        const LEN: usize = refusal_len(HEAD, NumberField::WHAT, NumberField::OPS);
        const BYTES: [u8; LEN] = refusal(HEAD, NumberField::WHAT, NumberField::OPS);
        assert_eq!(
            refusal_text(&BYTES),
            "`filter(like)` does not fit `copies`, a number field: it takes `eq`, `ne`, `gt`, `lt`, `ge`, `le`, `in_`, `not_in`, `between`, `not_between`, `is_null` and `is_not_null`"
        );
        assert!(op_fits(TextField::OPS, Op::Like) && !op_fits(NumberField::OPS, Op::Like));
        assert!(!op_fits(BoolField::OPS, Op::Gt));
    }

    #[test]
    fn scalars_add_no_allow_list_entries() {
        let allow = <Vec<String>>::__cqrs_ddd_allow("tags", false, AllowList::new());
        assert!(parse_query([("filter", "tags:eq:a")], &allow).is_err());
        let mut out = Vec::new();
        <Option<u8>>::__cqrs_ddd_indexes("n", &mut out);
        assert!(out.is_empty());
        assert_eq!(field_path("", "a"), "a");
        assert_eq!(field_path("a[*]", "b"), "a[*].b");
    }
}
