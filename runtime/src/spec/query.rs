//! What a query asks beside its filter: order, page and selected fields.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::ast::Spec;
use super::eval::{EvalError, compare};

/// A direction of ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Smallest first; missing and null values last.
    Asc,
    /// Largest first; missing and null values first.
    Desc,
}

/// A query on read-model documents: a filter, an order, a page and the fields to return.
///
/// Missing and null values sort as if larger than every value (PostgreSQL's default), on
/// every store. Rows that compare equal on every ordering key keep the id order, so pages
/// are stable.
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
    /// Ordering keys, first one first (dot paths).
    pub order: Vec<(String, Dir)>,
    /// At most this many documents.
    pub limit: Option<u64>,
    /// Skip this many documents first.
    pub offset: u64,
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
        self.spec = Some(match self.spec.take() {
            Some(current) => current & spec,
            None => spec,
        });
        self
    }

    /// Adds an ordering key.
    #[must_use]
    pub fn order_by(mut self, field: impl Into<String>, dir: Dir) -> Self {
        self.order.push((field.into(), dir));
        self
    }

    /// One page: at most `limit` documents after the first `offset`.
    #[must_use]
    pub fn page(mut self, limit: u64, offset: u64) -> Self {
        self.limit = Some(limit);
        self.offset = offset;
        self
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

    /// The query over documents given with their ids, in memory: filter, order, page,
    /// select.
    pub fn apply(&self, documents: Vec<(String, Value)>) -> Result<Vec<(String, Value)>, EvalError> {
        let mut found = Vec::new();
        for (id, doc) in documents {
            if self.matches(&doc)? {
                found.push((id, doc));
            }
        }
        found.sort_by(|(ia, a), (ib, b)| self.compare(a, b).then_with(|| ia.cmp(ib)));
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
        let mut n = 0;
        for doc in documents {
            if self.matches(doc)? {
                n += 1;
            }
        }
        Ok(n)
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (field, dir) in &self.order {
            let o = sort_cmp(lookup(a, field), lookup(b, field));
            let o = if *dir == Dir::Desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.as_object()?.get(part)).filter(|v| !v.is_null())
}

/// Numbers before texts before booleans before other values; missing last.
fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b)).then_with(|| a.to_string().cmp(&b.to_string())))
        }
    }
}

/// The selected fields of a document, at their paths; a missing one is left out.
fn project(doc: &Value, fields: &[String]) -> Value {
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
