//! The in-memory evaluator: a specification against a JSON document, with SQL's
//! three-valued logic.
//!
//! A condition on a missing or null attribute is *unknown* (except `is_null`,
//! `is_not_null`, `is_empty` and `is_not_empty`), `not unknown` is unknown, and a document
//! matches only when the whole specification is true, as a SQL `WHERE` does. So `!=`
//! and `not_in` do not match a document without the attribute, on every backend.
//!
//! A path that crosses a list (`items[*].sku` over `items: [{sku}, ..]`) holds when it
//! holds for one element (SQL's `EXISTS`): true if one element is true, else unknown if
//! one is unknown, else false. An empty list, or a value that is not a list, is a missing
//! value. See [`Path`](super::Path).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::ast::{Condition, Spec};
use super::op::Op;
use super::path::{JsonStep, Path, Step, json_path};

/// The truth of a condition under SQL's three-valued logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Cannot be decided (a missing or null value, values that do not compare).
    Unknown,
}

impl Truth {
    pub(crate) fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }

    fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, Truth::True) => Truth::True,
            _ => Truth::Unknown,
        }
    }

    fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, Truth::False) => Truth::False,
            _ => Truth::Unknown,
        }
    }

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

/// A specification that cannot be evaluated in memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The value does not have the shape the operator needs (`between` without two
    /// values, `in` without a list, a regex that does not compile).
    #[error("`{attr}` {op}: {reason}")]
    BadValue {
        /// The attribute.
        attr: String,
        /// The operator.
        op: Op,
        /// What is wrong with the value.
        reason: String,
    },
    /// An operator this build or this backend does not evaluate: the geometry operators
    /// need the `geo` feature, and in SQL PostgreSQL with PostGIS or SQLite with
    /// SpatiaLite.
    #[error(
        "operator `{0}` is not supported here (geometry needs the `geo` feature, and in SQL PostgreSQL with PostGIS \
         or SQLite with SpatiaLite)"
    )]
    Unsupported(Op),
    /// An aggregation that cannot be computed (a measure without a field, two results
    /// with one name).
    #[error("{0}")]
    BadAggregate(String),
}

impl Spec {
    /// Whether `document` satisfies the specification: only a true result matches.
    pub fn matches(&self, document: &Value) -> Result<bool, EvalError> {
        Ok(self.evaluate(document)? == Truth::True)
    }

    /// The truth of the specification for `document`.
    pub fn evaluate(&self, document: &Value) -> Result<Truth, EvalError> {
        match self {
            Spec::Leaf(c) => condition(c, document),
            Spec::And(children) => {
                let mut acc = Truth::True;
                for c in children {
                    acc = acc.and(c.evaluate(document)?);
                }
                Ok(acc)
            }
            Spec::Or(children) => {
                let mut acc = Truth::False;
                for c in children {
                    acc = acc.or(c.evaluate(document)?);
                }
                Ok(acc)
            }
            Spec::Not(child) => Ok(child.evaluate(document)?.not()),
        }
    }
}

impl Condition {
    /// Checks what does not depend on a document: the path and the value's shape. A
    /// store that compiles the condition refuses the same conditions the evaluator does.
    pub fn check(&self) -> Result<Path, EvalError> {
        let path = Path::parse(&self.attr).map_err(|reason| bad(self, reason))?;
        check_value(self)?;
        Ok(path)
    }
}

fn condition(c: &Condition, document: &Value) -> Result<Truth, EvalError> {
    if c.op.is_geometry() {
        return geometry(c, document);
    }
    let path = c.check()?;
    resolve(document, &path.steps, &|field| leaf(c, field))
}

/// A geometry condition: its value is read once, then tested against each field.
#[cfg(feature = "geo")]
fn geometry(c: &Condition, document: &Value) -> Result<Truth, EvalError> {
    let path = c.check()?;
    let query = super::geometry::Query::of(c)?;
    resolve(document, &path.steps, &|field| Ok(query.test(field.filter(|v| !v.is_null()))))
}

#[cfg(not(feature = "geo"))]
fn geometry(c: &Condition, _: &Value) -> Result<Truth, EvalError> {
    Err(EvalError::Unsupported(c.op))
}

/// Walks `steps` into `value`; over a list, the condition holds for one element.
fn resolve(
    value: &Value,
    steps: &[Step],
    test: &dyn Fn(Option<&Value>) -> Result<Truth, EvalError>,
) -> Result<Truth, EvalError> {
    let Some((first, rest)) = steps.split_first() else { return test(Some(value)) };
    match (first, value) {
        (Step::Key(key), Value::Object(map)) => match map.get(key) {
            Some(next) => resolve(next, rest, test),
            None => test(None),
        },
        (Step::Each, Value::Array(items)) if !items.is_empty() => {
            let mut acc = Truth::False;
            for item in items {
                acc = acc.or(resolve(item, rest, test)?);
                if acc == Truth::True {
                    break;
                }
            }
            Ok(acc)
        }
        _ => test(None),
    }
}

/// The value of a condition has the shape its operator needs. Checked before any
/// document is read, so a bad value is an error even on an empty collection, as it is
/// when the condition is compiled to SQL.
fn check_value(c: &Condition) -> Result<(), EvalError> {
    let val = &c.val;
    let list = || val.as_array().ok_or_else(|| bad(c, "takes a list of values"));
    match c.op {
        Op::In | Op::NotIn | Op::All => {
            list()?;
        }
        Op::Between | Op::NotBetween if val.as_array().is_none_or(|l| l.len() != 2) => {
            return Err(bad(c, "takes two values, `[low, high]`"));
        }
        Op::Like | Op::NotLike | Op::Ilike => {
            val.as_str().ok_or_else(|| bad(c, "takes a text pattern"))?;
        }
        Op::Contains | Op::Icontains | Op::StartsWith | Op::IstartsWith | Op::EndsWith | Op::IendsWith => {
            val.as_str().ok_or_else(|| bad(c, "takes a text"))?;
        }
        Op::Regex | Op::Iregex => {
            regex(c)?;
        }
        Op::JsonHasKey => {
            val.as_str().ok_or_else(|| bad(c, "takes a key"))?;
        }
        Op::JsonHasAny | Op::JsonHasAll => {
            val.as_array().filter(|l| l.iter().all(Value::is_string)).ok_or_else(|| bad(c, "takes a list of keys"))?;
        }
        Op::JsonPathExists => {
            json_path(val.as_str().ok_or_else(|| bad(c, "takes a path like `$.a.b[0]`"))?)
                .map_err(|reason| bad(c, reason))?;
        }
        Op::Fts | Op::FtsPhrase => {
            val.as_str().ok_or_else(|| bad(c, "takes a text"))?;
        }
        #[cfg(feature = "geo")]
        op if op.is_geometry() => {
            super::geometry::Query::of(c)?;
        }
        _ => {}
    }
    Ok(())
}

/// The regular expression of a `regex` or `iregex` condition.
pub(crate) fn regex(c: &Condition) -> Result<regex::Regex, EvalError> {
    let pattern = c.val.as_str().ok_or_else(|| bad(c, "takes a regular expression"))?;
    regex::RegexBuilder::new(pattern)
        .case_insensitive(c.op == Op::Iregex)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| bad(c, format!("the regular expression does not compile: {e}")))
}

pub(crate) fn bad(c: &Condition, reason: impl Into<String>) -> EvalError {
    EvalError::BadValue { attr: c.attr.clone(), op: c.op, reason: reason.into() }
}

fn leaf(c: &Condition, field: Option<&Value>) -> Result<Truth, EvalError> {
    let field = field.filter(|v| !v.is_null());
    match c.op {
        Op::IsNull => return Ok(Truth::from_bool(field.is_none())),
        Op::IsNotNull => return Ok(Truth::from_bool(field.is_some())),
        Op::IsEmpty => return Ok(Truth::from_bool(field.is_none_or(is_empty))),
        Op::IsNotEmpty => return Ok(Truth::from_bool(!field.is_none_or(is_empty))),
        _ => {}
    }
    let Some(field) = field else { return Ok(Truth::Unknown) };
    let val = &c.val;
    let text = |v: &Value| v.as_str().map(ToOwned::to_owned);
    Ok(match c.op {
        Op::Eq => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o == Ordering::Equal)),
        Op::Ne => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o != Ordering::Equal)),
        Op::Gt => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o == Ordering::Greater)),
        Op::Lt => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o == Ordering::Less)),
        Op::Ge => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o != Ordering::Less)),
        Op::Le => compare(field, val).map_or(Truth::Unknown, |o| Truth::from_bool(o != Ordering::Greater)),
        Op::In | Op::NotIn => {
            let list = val.as_array().ok_or_else(|| bad(c, "takes a list of values"))?;
            let truth = in_list(field, list);
            if c.op == Op::In { truth } else { truth.not() }
        }
        Op::All => {
            let list = val.as_array().ok_or_else(|| bad(c, "takes a list of values"))?;
            match field.as_array() {
                Some(items) => {
                    Truth::from_bool(list.iter().all(|v| items.iter().any(|i| compare(i, v) == Some(Ordering::Equal))))
                }
                None => Truth::Unknown,
            }
        }
        Op::Between | Op::NotBetween => {
            let Some([low, high]) = val.as_array().map(Vec::as_slice).and_then(|s| <&[Value; 2]>::try_from(s).ok())
            else {
                return Err(bad(c, "takes two values, `[low, high]`"));
            };
            let truth = match (compare(field, low), compare(field, high)) {
                (Some(l), Some(h)) => Truth::from_bool(l != Ordering::Less && h != Ordering::Greater),
                _ => Truth::Unknown,
            };
            if c.op == Op::Between { truth } else { truth.not() }
        }
        Op::Like | Op::NotLike | Op::Ilike => {
            let pattern = text(val).ok_or_else(|| bad(c, "takes a text pattern"))?;
            match field.as_str() {
                Some(s) => {
                    let found = if c.op == Op::Ilike {
                        like(&s.to_lowercase(), &pattern.to_lowercase())
                    } else {
                        like(s, &pattern)
                    };
                    Truth::from_bool(if c.op == Op::NotLike { !found } else { found })
                }
                None => Truth::Unknown,
            }
        }
        Op::Contains | Op::Icontains | Op::StartsWith | Op::IstartsWith | Op::EndsWith | Op::IendsWith => {
            let needle = text(val).ok_or_else(|| bad(c, "takes a text"))?;
            match field.as_str() {
                Some(s) => {
                    let fold = matches!(c.op, Op::Icontains | Op::IstartsWith | Op::IendsWith);
                    let (s, needle) =
                        if fold { (s.to_lowercase(), needle.to_lowercase()) } else { (s.to_owned(), needle) };
                    Truth::from_bool(match c.op {
                        Op::Contains | Op::Icontains => s.contains(&needle),
                        Op::StartsWith | Op::IstartsWith => s.starts_with(&needle),
                        _ => s.ends_with(&needle),
                    })
                }
                None => Truth::Unknown,
            }
        }
        Op::Regex | Op::Iregex => {
            let re = regex(c)?;
            field.as_str().map_or(Truth::Unknown, |s| Truth::from_bool(re.is_match(s)))
        }
        Op::JsonContains => Truth::from_bool(json_contains(field, val)),
        Op::JsonContainedBy => Truth::from_bool(json_contains(val, field)),
        Op::JsonHasKey => {
            let key = text(val).ok_or_else(|| bad(c, "takes a key"))?;
            Truth::from_bool(has_key(field, &key))
        }
        Op::JsonHasAny | Op::JsonHasAll => {
            let keys: Vec<&str> = val
                .as_array()
                .and_then(|l| l.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad(c, "takes a list of keys"))?;
            let has = |k: &&str| has_key(field, k);
            Truth::from_bool(if c.op == Op::JsonHasAny { keys.iter().any(has) } else { keys.iter().all(has) })
        }
        Op::JsonPathExists => {
            let path = text(val).ok_or_else(|| bad(c, "takes a path like `$.a.b[0]`"))?;
            let steps = json_path(&path).map_err(|reason| bad(c, reason))?;
            Truth::from_bool(follow(field, &steps).is_some())
        }
        Op::Fts | Op::FtsPhrase => {
            let query = text(val).ok_or_else(|| bad(c, "takes a text"))?;
            match field.as_str() {
                Some(s) => {
                    let s = s.to_lowercase();
                    let q = query.to_lowercase();
                    Truth::from_bool(if c.op == Op::Fts {
                        q.split_whitespace().all(|w| s.contains(w))
                    } else {
                        s.contains(q.trim())
                    })
                }
                None => Truth::Unknown,
            }
        }
        // The geometry operators (the value-less ones were answered above).
        other => return Err(EvalError::Unsupported(other)),
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// SQL comparison: numbers with numbers, texts with texts, booleans with booleans; any
/// other pair does not compare (unknown).
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `field IN (list)`: true when equal to one; else unknown when the list holds a null or
/// a value that does not compare; else false.
fn in_list(field: &Value, list: &[Value]) -> Truth {
    let mut acc = Truth::False;
    for v in list {
        let t = if v.is_null() {
            Truth::Unknown
        } else {
            compare(field, v).map_or(Truth::Unknown, |o| Truth::from_bool(o == Ordering::Equal))
        };
        acc = acc.or(t);
        if acc == Truth::True {
            break;
        }
    }
    acc
}

/// SQL `LIKE`: `%` any run, `_` one character, `\` escapes the next character.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let mut p: Vec<(char, bool)> = Vec::new(); // (char, literal)
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => p.push((chars.next().unwrap_or('\\'), true)),
            other => p.push((other, false)),
        }
    }
    // Iterative wildcard match with backtracking on the last `%`.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(('%', false)) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(('_', false)) => {
                ti += 1;
                pi += 1;
            }
            Some((ch, _)) if *ch == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|(ch, literal)| *ch == '%' && !literal)
}

/// PostgreSQL's `@>`: objects contain the pairs of the needle, arrays contain each needle
/// element somewhere, scalars are equal; and (at the top only) an array contains a bare
/// scalar it holds.
pub(crate) fn json_contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(h), scalar) if !scalar.is_object() && !scalar.is_array() => {
            h.iter().any(|hv| json_equal(hv, scalar))
        }
        _ => contains_inner(haystack, needle),
    }
}

fn contains_inner(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Object(h), Value::Object(n)) => {
            n.iter().all(|(k, nv)| h.get(k).is_some_and(|hv| contains_inner(hv, nv)))
        }
        (Value::Array(h), Value::Array(n)) => n.iter().all(|nv| h.iter().any(|hv| contains_inner(hv, nv))),
        (h, n) => json_equal(h, n),
    }
}

pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// PostgreSQL's `?`: an object with the key, or an array holding the string.
fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(o) => o.contains_key(key),
        Value::Array(a) => a.iter().any(|e| e.as_str() == Some(key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

/// Follows the steps of a `json_path_exists` path.
fn follow<'a>(v: &'a Value, steps: &[JsonStep]) -> Option<&'a Value> {
    steps.iter().try_fold(v, |current, step| match step {
        JsonStep::Key(k) => current.as_object().and_then(|o: &Map<String, Value>| o.get(k)),
        JsonStep::Index(i) => current.as_array()?.get(usize::try_from(*i).ok()?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(spec: &Spec, doc: &Value) -> Truth {
        spec.evaluate(doc).expect("evaluates")
    }

    #[test]
    fn missing_and_null_values_are_unknown_so_negations_do_not_match_them() {
        let doc = json!({"a": null});
        for op in [Op::Eq, Op::Ne, Op::Gt, Op::Like, Op::Contains] {
            let s = Spec::leaf("a", op, "x");
            assert_eq!(holds(&s, &doc), Truth::Unknown, "{op}");
            assert_eq!(holds(&!s.clone(), &doc), Truth::Unknown, "not {op}");
            assert!(!s.matches(&doc).unwrap());
            assert!(!(!s).matches(&doc).unwrap());
        }
        assert_eq!(holds(&Spec::leaf("b", Op::NotIn, json!(["x"])), &doc), Truth::Unknown);
        assert!(Spec::unary("a", Op::IsNull).matches(&doc).unwrap());
        assert!(Spec::unary("b", Op::IsNull).matches(&doc).unwrap());
        assert!(Spec::unary("a", Op::IsEmpty).matches(&doc).unwrap());
        assert!(!Spec::unary("a", Op::IsNotEmpty).matches(&doc).unwrap());
    }

    #[test]
    fn kleene_logic_for_and_or() {
        let doc = json!({"n": 1});
        let t = Spec::leaf("n", Op::Eq, 1);
        let f = Spec::leaf("n", Op::Eq, 2);
        let u = Spec::leaf("missing", Op::Eq, 1);
        assert_eq!(holds(&(t.clone() | u.clone()), &doc), Truth::True);
        assert_eq!(holds(&(f.clone() | u.clone()), &doc), Truth::Unknown);
        assert_eq!(holds(&(f.clone() & u.clone()), &doc), Truth::False);
        assert_eq!(holds(&(t & u), &doc), Truth::Unknown);
    }

    #[test]
    fn comparisons_follow_their_types() {
        let doc = json!({"n": 5, "f": 2.5, "s": "b", "t": true});
        assert!(Spec::leaf("n", Op::Gt, 4).matches(&doc).unwrap());
        assert!(Spec::leaf("n", Op::Le, 5.0).matches(&doc).unwrap());
        assert!(Spec::leaf("f", Op::Between, json!([2, 3])).matches(&doc).unwrap());
        assert!(!Spec::leaf("f", Op::NotBetween, json!([2, 3])).matches(&doc).unwrap());
        assert!(Spec::leaf("s", Op::Lt, "c").matches(&doc).unwrap());
        assert!(Spec::leaf("t", Op::Gt, false).matches(&doc).unwrap());
        // A text and a number do not compare: unknown, not false.
        assert_eq!(holds(&Spec::leaf("n", Op::Eq, "5"), &doc), Truth::Unknown);
    }

    #[test]
    fn in_with_a_null_in_the_list_is_unknown_when_nothing_equals() {
        let doc = json!({"s": "a"});
        assert_eq!(holds(&Spec::leaf("s", Op::In, json!(["a", null])), &doc), Truth::True);
        assert_eq!(holds(&Spec::leaf("s", Op::In, json!(["b", null])), &doc), Truth::Unknown);
        assert_eq!(holds(&Spec::leaf("s", Op::NotIn, json!(["b", null])), &doc), Truth::Unknown);
        assert_eq!(holds(&Spec::leaf("s", Op::NotIn, json!(["b"])), &doc), Truth::True);
    }

    #[test]
    fn like_treats_only_percent_and_underscore_as_wildcards() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "_b_"));
        assert!(!like("abc", "a.c"));
        assert!(like("a.c", "a.c"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("", "%"));
        assert!(!like("ab", "a"));
        assert!(like("aXbXc", "%b%c"));
        let doc = json!({"s": "100% cotton"});
        assert!(Spec::leaf("s", Op::Contains, "0% c").matches(&doc).unwrap());
        assert!(!Spec::leaf("s", Op::Contains, "1_0").matches(&doc).unwrap());
        assert!(Spec::leaf("s", Op::Ilike, "%COTTON").matches(&doc).unwrap());
        assert!(Spec::leaf("s", Op::IstartsWith, "100%").matches(&doc).unwrap());
    }

    #[test]
    fn paths_cross_objects_and_lists() {
        let doc = json!({"address": {"city": "Athens"}, "items": [{"sku": "a"}, {"sku": "b"}, {}]});
        assert!(Spec::leaf("address.city", Op::Eq, "Athens").matches(&doc).unwrap());
        assert!(Spec::leaf("items[*].sku", Op::Eq, "b").matches(&doc).unwrap());
        assert_eq!(holds(&Spec::leaf("items[*].sku", Op::Eq, "c"), &doc), Truth::Unknown);
        assert!(!Spec::leaf("items[*].sku", Op::Eq, "c").matches(&doc).unwrap());
        // Without `[*]` a list is not an object: the value is missing.
        assert_eq!(holds(&Spec::leaf("items.sku", Op::Eq, "b"), &doc), Truth::Unknown);
        assert!(Spec::unary("items.sku", Op::IsNull).matches(&doc).unwrap());
        assert!(Spec::unary("items[*].sku", Op::IsNull).matches(&doc).unwrap());
        assert!(Spec::leaf("address[*]", Op::IsNull, Value::Null).matches(&doc).unwrap());
        assert!(matches!(Spec::leaf("items..sku", Op::Eq, 1).matches(&doc), Err(EvalError::BadValue { .. })));
    }

    #[test]
    fn json_operators_follow_postgresql() {
        let doc = json!({"j": {"a": 1, "tags": ["x", "y"], "n": {"m": [1, 2]}}});
        assert!(Spec::leaf("j", Op::JsonContains, json!({"tags": ["y"]})).matches(&doc).unwrap());
        assert!(!Spec::leaf("j", Op::JsonContains, json!({"tags": ["z"]})).matches(&doc).unwrap());
        assert!(
            Spec::leaf("j", Op::JsonContainedBy, json!({"a": 1, "tags": ["x", "y"], "n": {"m": [1, 2]}, "b": 2}))
                .matches(&doc)
                .unwrap()
        );
        assert!(Spec::leaf("j", Op::JsonHasKey, "a").matches(&doc).unwrap());
        // A bare scalar is in an array only at the top, as in PostgreSQL.
        assert!(json_contains(&json!(["a"]), &json!("a")));
        assert!(json_contains(&json!([1]), &json!(1.0)));
        assert!(!json_contains(&json!({"a": ["x"]}), &json!({"a": "x"})));
        assert!(!json_contains(&json!([[1]]), &json!([1])));
        assert!(json_contains(&json!([[1, 2]]), &json!([[1]])));
        assert!(!json_contains(&json!([{"a": 1}]), &json!({"a": 1})));
        assert!(Spec::leaf("j", Op::JsonHasAny, json!(["q", "a"])).matches(&doc).unwrap());
        assert!(!Spec::leaf("j", Op::JsonHasAll, json!(["q", "a"])).matches(&doc).unwrap());
        assert!(Spec::leaf("j", Op::JsonPathExists, "$.n.m[1]").matches(&doc).unwrap());
        assert!(!Spec::leaf("j", Op::JsonPathExists, "$.n.m[2]").matches(&doc).unwrap());
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let doc = json!({"n": 1, "s": "a"});
        assert!(matches!(Spec::leaf("n", Op::In, 1).matches(&doc), Err(EvalError::BadValue { .. })));
        assert!(matches!(Spec::leaf("n", Op::Between, json!([1])).matches(&doc), Err(EvalError::BadValue { .. })));
        assert!(matches!(Spec::leaf("s", Op::Regex, "(").matches(&doc), Err(EvalError::BadValue { .. })));
        let within = Spec::leaf("s", Op::Within, json!({})).matches(&doc);
        if cfg!(feature = "geo") {
            assert!(matches!(within, Err(EvalError::BadValue { .. })), "{within:?}");
        } else {
            assert!(matches!(within, Err(EvalError::Unsupported(Op::Within))), "{within:?}");
        }
    }
}
