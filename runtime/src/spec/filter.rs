//! Filter strings from HTTP query parameters, checked against a read model's allow-list.
//!
//! `?filter=status:eq:available,price:between:100,500&sort=-created_at,name&fields=id,name&limit=20&offset=40`
//!
//! - `filter`: clauses `field:op:value` joined with `and`. The operator is a wire name or
//!   an alias (`eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `not_in`, `between`,
//!   `not_between`, `like`, `ilike`, `contains`, `icontains`, `startswith`/`starts_with`,
//!   `endswith`/`ends_with`, `is_null`/`null`, `is_not_null`/`not_null`, ...). Values
//!   read as `true`/`false`, `null`, a number, else text; for `in`, `not_in`, `between`
//!   and `not_between` the commas up to the next clause separate a list. A clause starts
//!   at a segment of the form `field:op:` whose operator is known, so a list element may
//!   hold colons (`12:30:00`).
//! - A JSON filter (`filter={"or": [..]}`) groups with `and`/`or`/`not` and has leaves
//!   `{"field": "..", "op": "..", "value": ..}`.
//! - `sort`: fields, `-` for descending; `fields`: the fields to return; `limit` (20 by
//!   default, at most 100) and `offset`.
//!
//! Every field, operator, sort key and selected field is checked against the
//! [`AllowList`]; every error is a [`FilterError`] naming the offending part, with close
//! matches.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::ast::Spec;
use super::op::{Op, closest};
use super::query::{Dir, FieldKind, Keyset, Order, QueryOptions};

/// The default page size of a filter request.
pub const DEFAULT_LIMIT: u64 = 20;
/// The largest page a filter request may ask for.
pub const MAX_LIMIT: u64 = 100;

/// What callers from outside may filter, sort and select on.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    filterable: BTreeMap<String, Option<BTreeSet<Op>>>,
    sortable: BTreeMap<String, FieldKind>,
    selectable: BTreeSet<String>,
    owner: Option<String>,
    tenant_required: bool,
}

impl AllowList {
    /// Nothing allowed yet.
    pub fn new() -> Self {
        AllowList::default()
    }

    /// `field` may be filtered with any operator.
    #[must_use]
    pub fn filter(mut self, field: impl Into<String>) -> Self {
        self.filterable.insert(field.into(), None);
        self
    }

    /// `field` may be filtered with these operators only.
    #[must_use]
    pub fn filter_with(mut self, field: impl Into<String>, ops: impl IntoIterator<Item = Op>) -> Self {
        self.filterable.insert(field.into(), Some(ops.into_iter().collect()));
        self
    }

    /// `field` may be a sort key (ordered as [`FieldKind::Any`]).
    #[must_use]
    pub fn sort(self, field: impl Into<String>) -> Self {
        self.sort_kind(field, FieldKind::Any)
    }

    /// `field` may be a sort key, ordered as `kind` (so an index of that kind serves it).
    #[must_use]
    pub fn sort_kind(mut self, field: impl Into<String>, kind: FieldKind) -> Self {
        self.sortable.insert(field.into(), kind);
        self
    }

    /// `field` may be selected.
    #[must_use]
    pub fn select(mut self, field: impl Into<String>) -> Self {
        self.selectable.insert(field.into());
        self
    }

    /// Each caller sees only the documents whose `field` holds their principal:
    /// [`parse_query_in`] adds `field = principal` to every request, and refuses a
    /// request without a principal.
    #[must_use]
    pub fn owned_by(mut self, field: impl Into<String>) -> Self {
        self.owner = Some(field.into());
        self
    }

    /// [`parse_query_in`] refuses a request outside a tenant's scope (the store scopes
    /// documents by tenant; this makes a request without one an error, not a read of
    /// the documents without tenant).
    #[must_use]
    pub fn tenant_required(mut self) -> Self {
        self.tenant_required = true;
        self
    }
}

/// A filter request that cannot be answered; each names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A clause that is not `field:op:value`.
    #[error("`{clause}` is not a filter clause; write `field:op:value`, like `status:eq:open`")]
    Malformed {
        /// The clause as written.
        clause: String,
    },
    /// An operator nobody knows.
    #[error("unknown operator `{op}` in `{clause}`{}", suggest(suggestions))]
    UnknownOp {
        /// The clause.
        clause: String,
        /// The operator as written.
        op: String,
        /// Close operators.
        suggestions: Vec<String>,
    },
    /// A field that may not be filtered.
    #[error("`{field}` cannot be filtered{}", suggest(suggestions))]
    FieldNotFilterable {
        /// The field.
        field: String,
        /// Close filterable fields.
        suggestions: Vec<String>,
    },
    /// An operator not allowed on a field.
    #[error("`{op}` is not allowed on `{field}`; allowed: {}", allowed.join(", "))]
    OpNotAllowed {
        /// The field.
        field: String,
        /// The operator.
        op: Op,
        /// The operators allowed on it.
        allowed: Vec<String>,
    },
    /// A value of the wrong shape for its operator.
    #[error("`{clause}`: {reason}")]
    BadValue {
        /// The clause.
        clause: String,
        /// What is wrong.
        reason: String,
    },
    /// A sort key that may not be sorted on.
    #[error("`{field}` cannot be a sort key{}", suggest(suggestions))]
    FieldNotSortable {
        /// The field.
        field: String,
        /// Close sortable fields.
        suggestions: Vec<String>,
    },
    /// A field that may not be selected.
    #[error("`{field}` cannot be selected{}", suggest(suggestions))]
    FieldNotSelectable {
        /// The field.
        field: String,
        /// Close selectable fields.
        suggestions: Vec<String>,
    },
    /// A `limit` or `offset` that is not a whole number, or a zero limit.
    #[error("`{param}` takes a whole number{}, not `{value}`", if *param == "limit" { " from 1" } else { "" })]
    BadNumber {
        /// `limit` or `offset`.
        param: &'static str,
        /// As written.
        value: String,
    },
    /// A JSON filter that does not read.
    #[error("the JSON filter does not read: {0}")]
    BadJson(String),
    /// The read model is per tenant and the request has none.
    #[error("this read model is per tenant and the request names none")]
    NoTenant,
    /// The read model is per owner and the request has no principal.
    #[error("this read model shows each caller their own documents and the request has no principal")]
    NoPrincipal,
    /// A `cursor` this query did not write.
    #[error("`cursor` is not a cursor of this query: {0}")]
    BadCursor(String),
}

/// A filter request that cannot be answered is the caller's mistake: a
/// [`Validation`](crate::Error::Validation) error of the message `filter`, carrying the
/// whole explanation.
impl From<FilterError> for crate::Error {
    fn from(e: FilterError) -> Self {
        crate::Error::Validation { message: "filter", reason: e.to_string(), fields: Vec::new() }
    }
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            format!("; did you mean one of {}?", many.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))
        }
    }
}

fn close_to<'a>(word: &str, known: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    closest(word, known.into_iter().map(String::as_str)).into_iter().map(ToOwned::to_owned).collect()
}

/// The operator of an alias or wire name.
pub fn op_alias(name: &str) -> Option<Op> {
    let lower = name.trim().to_ascii_lowercase();
    let op = match lower.as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "lt" => Op::Lt,
        "gte" => Op::Ge,
        "lte" => Op::Le,
        "starts_with" => Op::StartsWith,
        "ends_with" => Op::EndsWith,
        "null" => Op::IsNull,
        "not_null" => Op::IsNotNull,
        other => return Op::from_name(other),
    };
    Some(op)
}

fn takes_list(op: Op) -> bool {
    matches!(op, Op::In | Op::NotIn | Op::Between | Op::NotBetween | Op::All | Op::JsonHasAny | Op::JsonHasAll)
}

fn scalar(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
                Value::from(f)
            } else {
                Value::String(text.to_owned())
            }
        }
    }
}

/// Whether `segment` starts a clause: `field:op:` with a known operator.
fn starts_clause(segment: &str) -> bool {
    let mut parts = segment.splitn(3, ':');
    matches!((parts.next(), parts.next(), parts.next()), (Some(f), Some(op), Some(_)) if !f.trim().is_empty() && op_alias(op).is_some())
}

/// Reads the colon syntax into a specification (clauses joined with `and`), checked
/// against `allow`.
pub fn parse_filter(filter: &str, allow: &AllowList) -> Result<Option<Spec>, FilterError> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(None);
    }
    if filter.starts_with('{') {
        let value: Value = serde_json::from_str(filter).map_err(|e| FilterError::BadJson(e.to_string()))?;
        return json_node(&value, allow).map(Some);
    }
    // Glue list elements back to the clause they belong to.
    let mut clauses: Vec<String> = Vec::new();
    for segment in filter.split(',') {
        match clauses.last_mut() {
            Some(last) if !starts_clause(segment) && list_clause(last) => {
                last.push(',');
                last.push_str(segment);
            }
            _ => clauses.push(segment.to_owned()),
        }
    }
    let mut specs = Vec::new();
    for clause in clauses {
        specs.push(clause_spec(&clause, allow)?);
    }
    Ok(specs.into_iter().reduce(|a, b| a & b))
}

fn list_clause(clause: &str) -> bool {
    clause.split(':').nth(1).and_then(op_alias).is_some_and(takes_list)
}

fn clause_spec(clause: &str, allow: &AllowList) -> Result<Spec, FilterError> {
    let mut parts = clause.splitn(3, ':');
    let (Some(field), Some(op_text)) = (parts.next(), parts.next()) else {
        return Err(FilterError::Malformed { clause: clause.to_owned() });
    };
    let (field, op_text) = (field.trim(), op_text.trim());
    if field.is_empty() {
        return Err(FilterError::Malformed { clause: clause.to_owned() });
    }
    let op = op_alias(op_text).ok_or_else(|| FilterError::UnknownOp {
        clause: clause.to_owned(),
        op: op_text.to_owned(),
        suggestions: Op::suggestions(op_text).into_iter().map(ToOwned::to_owned).collect(),
    })?;
    let raw = parts.next().map(str::trim);
    let val = match (raw, op.takes_no_value()) {
        (_, true) => Value::Null,
        (None, false) => return Err(FilterError::Malformed { clause: clause.to_owned() }),
        (Some(raw), false) if takes_list(op) => Value::Array(raw.split(',').map(|v| scalar(v.trim())).collect()),
        (Some(raw), false) => scalar(raw),
    };
    if matches!(op, Op::Between | Op::NotBetween) && val.as_array().is_none_or(|l| l.len() != 2) {
        return Err(FilterError::BadValue { clause: clause.to_owned(), reason: "takes two values, `low,high`".into() });
    }
    check_field(field, op, allow)?;
    Ok(Spec::leaf(field, op, val))
}

fn check_field(field: &str, op: Op, allow: &AllowList) -> Result<(), FilterError> {
    match allow.filterable.get(field) {
        None => Err(FilterError::FieldNotFilterable {
            field: field.to_owned(),
            suggestions: close_to(field, allow.filterable.keys()),
        }),
        Some(Some(ops)) if !ops.contains(&op) => Err(FilterError::OpNotAllowed {
            field: field.to_owned(),
            op,
            allowed: ops.iter().map(|o| o.name().to_owned()).collect(),
        }),
        Some(_) => Ok(()),
    }
}

fn json_node(value: &Value, allow: &AllowList) -> Result<Spec, FilterError> {
    let bad = |reason: &str| FilterError::BadJson(reason.to_owned());
    let map = value.as_object().ok_or_else(|| bad("a node is an object"))?;
    for (key, group) in [("and", true), ("or", false)] {
        if let Some(children) = map.get(key) {
            let list =
                children.as_array().filter(|l| !l.is_empty()).ok_or_else(|| bad("`and`/`or` take a non-empty list"))?;
            let specs = list.iter().map(|c| json_node(c, allow)).collect::<Result<Vec<_>, _>>()?;
            return Ok(if group { Spec::And(specs) } else { Spec::Or(specs) });
        }
    }
    if let Some(child) = map.get("not") {
        return Ok(!json_node(child, allow)?);
    }
    let field = map.get("field").and_then(Value::as_str).ok_or_else(|| bad("a leaf has `field`, `op` and `value`"))?;
    let op_text = map.get("op").and_then(Value::as_str).ok_or_else(|| bad("a leaf has `field`, `op` and `value`"))?;
    let op = op_alias(op_text).ok_or_else(|| FilterError::UnknownOp {
        clause: format!("{field}:{op_text}"),
        op: op_text.to_owned(),
        suggestions: Op::suggestions(op_text).into_iter().map(ToOwned::to_owned).collect(),
    })?;
    check_field(field, op, allow)?;
    Ok(Spec::leaf(field, op, map.get("value").cloned().unwrap_or(Value::Null)))
}

/// Reads `sort=-created_at,name`, checked against `allow`.
pub fn parse_sort(sort: &str, allow: &AllowList) -> Result<Vec<Order>, FilterError> {
    let mut out = Vec::new();
    for key in sort.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (field, dir) = match key.strip_prefix('-') {
            Some(f) => (f.trim(), Dir::Desc),
            None => (key.strip_prefix('+').unwrap_or(key).trim(), Dir::Asc),
        };
        let Some(kind) = allow.sortable.get(field) else {
            return Err(FilterError::FieldNotSortable {
                field: field.to_owned(),
                suggestions: close_to(field, allow.sortable.keys()),
            });
        };
        out.push(Order { field: field.to_owned(), dir, kind: *kind });
    }
    Ok(out)
}

/// Reads a query string's `filter`, `sort`, `fields`, `limit`, `offset` and `cursor`
/// parameters into [`QueryOptions`], checked against `allow`.
///
/// ```
/// use cqrs_ddd::spec::{AllowList, Op, parse_query};
/// use serde_json::json;
///
/// let allow = AllowList::new().filter("status").filter_with("price", [Op::Ge, Op::Le, Op::Between]).sort("price");
/// let q = parse_query([("filter", "status:eq:available,price:between:100,500"), ("sort", "-price")], &allow).unwrap();
/// assert_eq!(q.limit, Some(20));
/// assert!(q.matches(&json!({"status": "available", "price": 120})).unwrap());
///
/// let err = parse_query([("filter", "stauts:eq:x")], &allow).unwrap_err();
/// assert_eq!(err.to_string(), "`stauts` cannot be filtered; did you mean `status`?");
/// ```
pub fn parse_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    allow: &AllowList,
) -> Result<QueryOptions, FilterError> {
    let mut query = QueryOptions::new();
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = None;
    for (key, value) in params {
        match key {
            "filter" => {
                if let Some(spec) = parse_filter(value, allow)? {
                    query = query.filter(spec);
                }
            }
            "sort" => query.order.extend(parse_sort(value, allow)?),
            "fields" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if !allow.selectable.contains(field) {
                        return Err(FilterError::FieldNotSelectable {
                            field: field.to_owned(),
                            suggestions: close_to(field, &allow.selectable),
                        });
                    }
                    query.select.push(field.to_owned());
                }
            }
            "limit" => {
                limit = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|l| *l > 0)
                    .ok_or_else(|| FilterError::BadNumber { param: "limit", value: value.to_owned() })?
                    .min(MAX_LIMIT);
            }
            "cursor" if !value.trim().is_empty() => {
                cursor = Some(Keyset::decode(value).map_err(|e| FilterError::BadCursor(e.0))?);
            }
            "offset" => {
                query.offset = value
                    .trim()
                    .parse()
                    .map_err(|_| FilterError::BadNumber { param: "offset", value: value.to_owned() })?;
            }
            _ => {}
        }
    }
    query.limit = Some(limit);
    if let Some(keyset) = cursor {
        if keyset.values.len() != query.order.len() {
            return Err(FilterError::BadCursor("it was written for another sort".to_owned()));
        }
        query.after = Some(keyset);
    }
    Ok(query)
}

/// [`parse_query`] for a request: the tenant and owner constraints of the allow-list
/// ([`AllowList::tenant_required`], [`AllowList::owned_by`]) are checked against the
/// request and added, whatever the caller wrote.
///
/// ```
/// use cqrs_ddd::RequestContext;
/// use cqrs_ddd::spec::{AllowList, FilterError, parse_query_in};
/// use serde_json::json;
///
/// let allow = AllowList::new().filter("status").owned_by("owner").tenant_required();
/// let ada = RequestContext { principal: Some("ada".into()), ..RequestContext::new().with_tenant("acme") };
/// let q = parse_query_in([("filter", "status:eq:open")], &allow, &ada).unwrap();
/// assert!(q.matches(&json!({"status": "open", "owner": "ada"})).unwrap());
/// assert!(!q.matches(&json!({"status": "open", "owner": "bob"})).unwrap());
/// assert_eq!(parse_query_in([], &allow, &RequestContext::new()).unwrap_err(), FilterError::NoTenant);
/// ```
pub fn parse_query_in<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    allow: &AllowList,
    request: &crate::RequestContext,
) -> Result<QueryOptions, FilterError> {
    if allow.tenant_required && request.tenant_id.is_none() {
        return Err(FilterError::NoTenant);
    }
    let mut query = parse_query(params, allow)?;
    if let Some(field) = &allow.owner {
        let principal = request.principal.as_deref().ok_or(FilterError::NoPrincipal)?;
        query = query.filter(Spec::leaf(field.as_str(), Op::Eq, principal));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn allow() -> AllowList {
        AllowList::new()
            .filter("status")
            .filter("category")
            .filter("at")
            .filter("deleted_at")
            .filter_with("price", [Op::Ge, Op::Le, Op::Between, Op::Eq])
            .sort("price")
            .sort("name")
            .select("name")
    }

    #[test]
    fn clauses_aliases_values_and_lists() {
        let spec = parse_filter("status:eq:active,price:between:100,500,category:in:a,b,c", &allow()).unwrap().unwrap();
        assert_eq!(
            spec,
            Spec::leaf("status", Op::Eq, "active")
                & Spec::leaf("price", Op::Between, json!([100, 500]))
                & Spec::leaf("category", Op::In, json!(["a", "b", "c"]))
        );
        let spec = parse_filter(" status : ne : null , deleted_at:is_null:true", &allow()).unwrap().unwrap();
        assert_eq!(spec, Spec::leaf("status", Op::Ne, Value::Null) & Spec::unary("deleted_at", Op::IsNull));
        let spec = parse_filter("price:eq:99.99", &allow()).unwrap().unwrap();
        assert_eq!(spec, Spec::leaf("price", Op::Eq, 99.99));
    }

    #[test]
    fn list_elements_may_hold_colons() {
        let spec = parse_filter("at:in:12:30:00,13:00:00,status:eq:x", &allow()).unwrap().unwrap();
        assert_eq!(spec, Spec::leaf("at", Op::In, json!(["12:30:00", "13:00:00"])) & Spec::leaf("status", Op::Eq, "x"));
    }

    #[test]
    fn every_mistake_is_typed_and_suggests() {
        let e = parse_filter("stauts:eq:x", &allow()).unwrap_err();
        assert!(matches!(&e, FilterError::FieldNotFilterable { suggestions, .. } if suggestions == &["status"]));
        let e = parse_filter("status:eqq:x", &allow()).unwrap_err();
        assert!(matches!(e, FilterError::UnknownOp { .. }));
        let e = parse_filter("price:like:1%", &allow()).unwrap_err();
        assert!(matches!(e, FilterError::OpNotAllowed { op: Op::Like, .. }));
        assert!(matches!(parse_filter("price:between:1", &allow()), Err(FilterError::BadValue { .. })));
        assert!(matches!(parse_filter("status", &allow()), Err(FilterError::Malformed { .. })));
        assert!(matches!(parse_sort("-nmae", &allow()), Err(FilterError::FieldNotSortable { .. })));
        assert!(matches!(parse_query([("fields", "secret")], &allow()), Err(FilterError::FieldNotSelectable { .. })));
        assert!(matches!(parse_query([("limit", "0")], &allow()), Err(FilterError::BadNumber { param: "limit", .. })));
        assert!(matches!(parse_query([("offset", "-1")], &allow()), Err(FilterError::BadNumber { .. })));
    }

    #[test]
    fn json_groups_and_pages() {
        let spec = parse_filter(
            r#"{"or": [{"field": "status", "op": "eq", "value": "a"}, {"not": {"field": "price", "op": "gte", "value": 10}}]}"#,
            &allow(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec, Spec::leaf("status", Op::Eq, "a") | !Spec::leaf("price", Op::Ge, 10));
        let q =
            parse_query([("sort", "-price,name"), ("limit", "500"), ("offset", "40"), ("fields", "name")], &allow())
                .unwrap();
        assert_eq!(
            q.order,
            [
                Order { field: "price".to_owned(), dir: Dir::Desc, kind: FieldKind::Any },
                Order { field: "name".to_owned(), dir: Dir::Asc, kind: FieldKind::Any }
            ]
        );
        assert_eq!((q.limit, q.offset), (Some(MAX_LIMIT), 40));
        assert_eq!(q.select, ["name"]);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A small deterministic fuzz over the characters the syntax gives meaning to.
        let alphabet: Vec<char> = "ab:,-{}[]\"0 9.%_\\nulteq".chars().collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = usize::try_from(seed % 24).unwrap_or(0);
            let text: String = (0..len)
                .map(|i| alphabet[usize::try_from((seed >> (i % 8 * 8)) % alphabet.len() as u64).unwrap_or(0)])
                .collect();
            let _ =
                parse_query([("filter", text.as_str()), ("sort", text.as_str()), ("limit", text.as_str())], &allow());
        }
    }
}
