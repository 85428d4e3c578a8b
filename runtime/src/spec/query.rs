//! What a query asks beside its filter: order, page and selected fields.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ast::Spec;
use super::eval::{EvalError, compare};
use super::op::Op;
use super::path::Path;

/// A direction of ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// Smallest first; missing and null values last.
    Asc,
    /// Largest first; missing and null values first.
    Desc,
}

/// The type a field holds, as far as a query cares: it picks how the field is compared,
/// ordered and indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Texts, compared by code point. A value of another type counts as missing.
    Text,
    /// Numbers. A value of another type counts as missing.
    Number,
    /// Booleans (`false` before `true`). A value of another type counts as missing.
    Bool,
    /// Any JSON value: numbers before texts before booleans before lists and objects
    /// (which tie), missing last.
    Any,
}

impl FieldKind {
    /// The value of `field` as this kind orders it: `None` when missing or of another
    /// type.
    pub fn of(self, field: Option<&Value>) -> Option<&Value> {
        let v = field.filter(|v| !v.is_null())?;
        let fits = match self {
            FieldKind::Text => v.is_string(),
            FieldKind::Number => v.is_number(),
            FieldKind::Bool => v.is_boolean(),
            FieldKind::Any => true,
        };
        fits.then_some(v)
    }
}

/// One ordering key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// A dot path (not crossing a list).
    pub field: String,
    /// The direction.
    pub dir: Dir,
    /// How the field is ordered.
    pub kind: FieldKind,
}

/// A position in an ordered result: the ordering values and the id of the last document
/// of a page. The next page starts after it. It travels as an opaque text
/// ([`Keyset::encode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyset {
    /// The value of each ordering key (`null` when missing).
    pub values: Vec<Value>,
    /// The document id.
    pub id: String,
}

/// A cursor text that is not one this framework wrote, or one for another ordering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid for this query: {0}")]
pub struct CursorError(pub String);

impl Keyset {
    /// The cursor as URL-safe text.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor written by [`encode`](Self::encode).
    pub fn decode(text: &str) -> Result<Keyset, CursorError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| CursorError("not base64".to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|e| CursorError(e.to_string()))
    }

    /// The keyset of a document under an ordering.
    pub fn of(order: &[Order], id: &str, document: &Value) -> Keyset {
        Keyset {
            values: order
                .iter()
                .map(|o| o.kind.of(lookup(document, &o.field)).cloned().unwrap_or(Value::Null))
                .collect(),
            id: id.to_owned(),
        }
    }
}

/// A page of documents and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The documents.
    pub items: Vec<T>,
    /// Where the next page starts; give it to [`QueryOptions::after`].
    pub next: Option<String>,
}

/// A query on read-model documents: a filter, an order, a page and the fields to return.
///
/// Missing and null values sort as if larger than every value (PostgreSQL's default), on
/// every store. Rows that compare equal on every ordering key keep the id order, so pages
/// are stable. A page is either an offset or a keyset cursor ([`after`](Self::after)),
/// which stays fast and stable deep into a collection.
///
/// ```
/// use cqrs_ddd::spec::{Dir, Op, QueryOptions, Spec};
/// use serde_json::json;
///
/// let q = QueryOptions::new()
///     .filter(Spec::leaf("status", Op::Eq, "available"))
///     .order_by("title", Dir::Asc)
///     .page(10, 0);
/// let docs = vec![
///     ("b".to_owned(), json!({"status": "available", "title": "Odyssey"})),
///     ("a".to_owned(), json!({"status": "lent", "title": "Iliad"})),
///     ("c".to_owned(), json!({"status": "available", "title": "Antigone"})),
/// ];
/// let found: Vec<String> = q.apply(docs).unwrap().into_iter().map(|(id, _)| id).collect();
/// assert_eq!(found, ["c", "b"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOptions {
    /// The filter; `None` matches every document.
    pub spec: Option<Spec>,
    /// Ordering keys, first one first; the id breaks ties.
    pub order: Vec<Order>,
    /// At most this many documents.
    pub limit: Option<u64>,
    /// Skip this many documents first.
    pub offset: u64,
    /// Start after this position (a keyset cursor) instead of at the beginning.
    pub after: Option<Keyset>,
    /// Return only these fields (dot paths); empty returns whole documents.
    pub select: Vec<String>,
}

impl QueryOptions {
    /// Every document, in id order.
    pub fn new() -> Self {
        QueryOptions::default()
    }

    /// Adds a filter (joined with `and` to one already given).
    #[must_use]
    pub fn filter(mut self, spec: Spec) -> Self {
        self.spec = Some(Spec::and_maybe(self.spec.take(), spec));
        self
    }

    /// Adds an ordering key of any type (see [`FieldKind::Any`]).
    #[must_use]
    pub fn order_by(self, field: impl Into<String>, dir: Dir) -> Self {
        self.order_by_kind(field, dir, FieldKind::Any)
    }

    /// Adds an ordering key of a known type: ordered by that type only, values of
    /// another type counting as missing. An index declared on the field with the same
    /// kind serves it.
    #[must_use]
    pub fn order_by_kind(mut self, field: impl Into<String>, dir: Dir, kind: FieldKind) -> Self {
        self.order.push(Order { field: field.into(), dir, kind });
        self
    }

    /// Adds a typed ordering key, as a read model's fields give it
    /// (`Book::fields().title.asc()`).
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order.push(order);
        self
    }

    /// One page: at most `limit` documents after the first `offset`.
    #[must_use]
    pub fn page(mut self, limit: u64, offset: u64) -> Self {
        self.limit = Some(limit);
        self.offset = offset;
        self
    }

    /// At most `limit` documents.
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Starts after a cursor from a previous [`Page`].
    pub fn after(mut self, cursor: &str) -> Result<Self, CursorError> {
        let keyset = Keyset::decode(cursor)?;
        if keyset.values.len() != self.order.len() {
            return Err(CursorError(format!(
                "it has {} ordering values and the query orders by {} keys",
                keyset.values.len(),
                self.order.len()
            )));
        }
        self.after = Some(keyset);
        Ok(self)
    }

    /// Returns only these fields.
    #[must_use]
    pub fn select<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.select.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Whether `document` passes the filter.
    pub fn matches(&self, document: &Value) -> Result<bool, EvalError> {
        self.spec.as_ref().map_or(Ok(true), |s| s.matches(document))
    }

    /// Checks the query's parts that do not depend on a document: the filter's values,
    /// and paths of ordering and selected fields (which do not cross lists).
    pub fn check(&self) -> Result<(), EvalError> {
        if let Some(spec) = &self.spec {
            for c in spec.conditions() {
                c.check()?;
            }
        }
        for field in self.order.iter().map(|o| &o.field).chain(&self.select) {
            plain_path(field)?;
        }
        Ok(())
    }

    /// The query over documents given with their ids, in memory: filter, order, page,
    /// select.
    pub fn apply(&self, documents: Vec<(String, Value)>) -> Result<Vec<(String, Value)>, EvalError> {
        self.check()?;
        let mut found = Vec::new();
        for (id, doc) in documents {
            if self.matches(&doc)? {
                found.push((id, doc));
            }
        }
        found.sort_by(|(ia, a), (ib, b)| self.compare(a, b).then_with(|| ia.cmp(ib)));
        if let Some(after) = &self.after {
            found.retain(|(id, doc)| self.compare_to(doc, id, after) == Ordering::Greater);
        }
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = self.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(id, doc)| if self.select.is_empty() { (id, doc) } else { (id, project(&doc, &self.select)) })
            .collect())
    }

    /// How many documents pass the filter.
    pub fn count<'a>(&self, documents: impl IntoIterator<Item = &'a Value>) -> Result<u64, EvalError> {
        self.check()?;
        let mut n = 0;
        for doc in documents {
            if self.matches(doc)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The query a store runs for [`Page`]s: the selection also holds the ordering
    /// fields, so the cursor can be read from the last document.
    pub fn for_page(&self) -> QueryOptions {
        let mut q = self.clone();
        if !q.select.is_empty() {
            for o in &self.order {
                if !q.select.contains(&o.field) {
                    q.select.push(o.field.clone());
                }
            }
        }
        q
    }

    /// A page from what [`for_page`](Self::for_page) found: the next cursor when the
    /// page is full, and the documents with the selection asked for.
    pub fn page_of<T>(
        &self,
        found: Vec<T>,
        parts: impl Fn(&T) -> Option<(String, Value)>,
        strip: impl Fn(T, &[String]) -> T,
    ) -> Page<T> {
        let full = self.limit.is_some_and(|l| u64::try_from(found.len()).is_ok_and(|n| n >= l) && l > 0);
        let next = if full {
            found.last().and_then(&parts).map(|(id, doc)| Keyset::of(&self.order, &id, &doc).encode())
        } else {
            None
        };
        let extra = self.select.is_empty() || self.order.iter().all(|o| self.select.contains(&o.field));
        let items = if extra { found } else { found.into_iter().map(|t| strip(t, &self.select)).collect() };
        Page { items, next }
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for o in &self.order {
            let c = sort_cmp(o.kind.of(lookup(a, &o.field)), o.kind.of(lookup(b, &o.field)));
            let c = if o.dir == Dir::Desc { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        Ordering::Equal
    }

    /// Where a document stands against a keyset.
    fn compare_to(&self, doc: &Value, id: &str, after: &Keyset) -> Ordering {
        for (o, v) in self.order.iter().zip(&after.values) {
            let c = sort_cmp(o.kind.of(lookup(doc, &o.field)), o.kind.of(Some(v)));
            let c = if o.dir == Dir::Desc { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        id.cmp(&after.id)
    }
}

fn bad_field(field: &str, reason: String) -> EvalError {
    EvalError::BadValue { attr: field.to_owned(), op: Op::Eq, reason }
}

/// A path that does not cross a list (ordering, selection, grouping).
pub(crate) fn plain_path(field: &str) -> Result<Vec<String>, EvalError> {
    let path = Path::parse(field).map_err(|reason| bad_field(field, reason))?;
    match path.keys() {
        Some(keys) => Ok(keys.into_iter().map(ToOwned::to_owned).collect()),
        None => Err(bad_field(field, "ordering, selected and grouped fields do not cross a list (`[*]`)".to_owned())),
    }
}

pub(crate) fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.as_object()?.get(part)).filter(|v| !v.is_null())
}

/// Numbers before texts before booleans before other values (which tie); missing last.
pub(crate) fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b))),
    }
}

/// The rank of a value's type in [`FieldKind::Any`] ordering.
pub(crate) fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        _ => 3,
    }
}

/// The selected fields of a document, at their paths; a missing one is left out.
pub fn project(doc: &Value, fields: &[String]) -> Value {
    let mut out = Value::Object(Map::new());
    for field in fields {
        let Some(v) = lookup(doc, field) else { continue };
        let mut slot = &mut out;
        let parts: Vec<&str> = field.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(map) = slot else { break };
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), v.clone());
                break;
            }
            slot = map.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

/// An index on a collection: fields with their kinds, first one first. A store builds
/// it so filters and orderings on those fields, with the same kinds, use it (an
/// expression index on PostgreSQL and SQLite).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Index {
    /// The indexed fields (dot paths, not crossing a list).
    pub fields: Vec<(String, FieldKind)>,
}

impl Index {
    /// An index on one field.
    pub fn on(field: impl Into<String>, kind: FieldKind) -> Self {
        Index { fields: vec![(field.into(), kind)] }
    }

    /// Adds a field after the others.
    #[must_use]
    pub fn then(mut self, field: impl Into<String>, kind: FieldKind) -> Self {
        self.fields.push((field.into(), kind));
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::Op;

    fn docs() -> Vec<(String, Value)> {
        vec![
            ("1".into(), json!({"n": 3, "s": "c", "a": {"b": 1}})),
            ("2".into(), json!({"n": 1, "s": "a"})),
            ("3".into(), json!({"s": "b"})),
            ("4".into(), json!({"n": 2, "s": null})),
        ]
    }

    fn ids(found: &[(String, Value)]) -> Vec<&str> {
        found.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn orders_with_missing_values_as_largest_and_ties_by_id() {
        let asc = QueryOptions::new().order_by("n", Dir::Asc).apply(docs()).unwrap();
        assert_eq!(ids(&asc), ["2", "4", "1", "3"]);
        let desc = QueryOptions::new().order_by("n", Dir::Desc).apply(docs()).unwrap();
        assert_eq!(ids(&desc), ["3", "1", "4", "2"]);
        let by_s = QueryOptions::new().order_by("s", Dir::Asc).apply(docs()).unwrap();
        assert_eq!(ids(&by_s), ["2", "3", "1", "4"]);
    }

    #[test]
    fn filters_pages_and_selects() {
        let q = QueryOptions::new()
            .filter(Spec::unary("n", Op::IsNotNull))
            .order_by("n", Dir::Asc)
            .page(2, 1)
            .select(["n", "a.b"]);
        let found = q.apply(docs()).unwrap();
        assert_eq!(ids(&found), ["4", "1"]);
        assert_eq!(found[1].1, json!({"n": 3, "a": {"b": 1}}));
        assert_eq!(found[0].1, json!({"n": 2}));
        let all: Vec<Value> = docs().into_iter().map(|(_, d)| d).collect();
        assert_eq!(q.count(&all).unwrap(), 3);
        assert_eq!(QueryOptions::new().count(&all).unwrap(), 4);
    }

    #[test]
    fn filters_join_with_and() {
        let q = QueryOptions::new().filter(Spec::leaf("n", Op::Gt, 1)).filter(Spec::leaf("n", Op::Lt, 3));
        assert_eq!(ids(&q.apply(docs()).unwrap()), ["4"]);
    }
}
