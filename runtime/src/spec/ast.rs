//! The specification tree, its JSON form and how it is composed.

use std::ops::{BitAnd, BitOr, Not};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::op::Op;

/// A condition on one attribute: `{"op": "=", "attr": "address.city", "val": "Athens"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// A dot path into the document (`status`, `address.city`, `items.sku`).
    pub attr: String,
    /// The operator.
    pub op: Op,
    /// The value compared with; `Null` for the operators that take none.
    pub val: Value,
    /// The optional `value_type` of the wire form, kept so a specification reads back
    /// byte for byte.
    pub value_type: Option<String>,
}

/// A specification: conditions combined with `and`, `or` and `not`.
///
/// Compose with `&`, `|` and `!`, or with [`SpecBuilder`]. The JSON form is the seed
/// toolkit's, so a specification travels over HTTP or a broker unchanged:
///
/// ```
/// use cqrs_ddd::spec::{Op, Spec};
/// use serde_json::json;
///
/// let available = Spec::leaf("status", Op::Eq, "available") & Spec::leaf("copies", Op::Gt, 0);
/// let wire = serde_json::to_value(&available).unwrap();
/// assert_eq!(
///     wire,
///     json!({"op": "and", "conditions": [
///         {"op": "=", "attr": "status", "val": "available"},
///         {"op": ">", "attr": "copies", "val": 0},
///     ]})
/// );
/// assert_eq!(serde_json::from_value::<Spec>(wire).unwrap(), available);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// One condition.
    Leaf(Condition),
    /// Every child holds.
    And(Vec<Spec>),
    /// At least one child holds.
    Or(Vec<Spec>),
    /// The child does not hold.
    Not(Box<Spec>),
}

impl Spec {
    /// `spec`, joined with `and` to `current` when there is one.
    pub(crate) fn and_maybe(current: Option<Spec>, spec: Spec) -> Spec {
        match current {
            Some(current) => current & spec,
            None => spec,
        }
    }

    /// `attr op val`.
    pub fn leaf(attr: impl Into<String>, op: Op, val: impl Into<Value>) -> Spec {
        Spec::Leaf(Condition { attr: attr.into(), op, val: val.into(), value_type: None })
    }

    /// `attr op` for the operators that take no value (`is_null`, `is_empty`, ...).
    pub fn unary(attr: impl Into<String>, op: Op) -> Spec {
        Spec::leaf(attr, op, Value::Null)
    }

    /// This specification and `other` (the same as `self & other`).
    #[must_use]
    pub fn merge(self, other: Spec) -> Spec {
        self & other
    }

    /// Every condition of the tree, depth first.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Condition>) {
        match self {
            Spec::Leaf(c) => out.push(c),
            Spec::And(children) | Spec::Or(children) => children.iter().for_each(|c| c.collect(out)),
            Spec::Not(child) => child.collect(out),
        }
    }

    /// Reads the JSON form, reporting every mistake with its path (`<root>.conditions[1].op`),
    /// not only the first.
    pub fn from_json_value(value: &Value) -> Result<Spec, SpecErrors> {
        let mut errors = Vec::new();
        let spec = read(value, "<root>", &mut errors);
        match (spec, errors.is_empty()) {
            (Some(spec), true) => Ok(spec),
            _ => Err(SpecErrors(errors)),
        }
    }

    /// The JSON form.
    pub fn to_json_value(&self) -> Value {
        // Writing a specification cannot fail: its keys are texts and its values JSON.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One mistake in a specification's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A node that is not a JSON object.
    #[error(
        "{path}: a condition is an object with `op`, like {{\"op\": \"=\", \"attr\": \"status\", \"val\": \"open\"}}"
    )]
    NotAnObject {
        /// Where, like `<root>.conditions[0]`.
        path: String,
    },
    /// A node without `op`, or with `op` not a string.
    #[error("{path}: `op` is missing or not a string")]
    MissingOp {
        /// Where.
        path: String,
    },
    /// An operator no one knows.
    #[error("{path}: unknown operator `{op}`{}", did_you_mean(suggestions))]
    UnknownOp {
        /// Where.
        path: String,
        /// As written.
        op: String,
        /// Close operators, closest first (at most three).
        suggestions: Vec<&'static str>,
    },
    /// A leaf without `attr`, or with an empty one.
    #[error("{path}: `attr` is missing, empty or not a string")]
    MissingAttr {
        /// Where.
        path: String,
    },
    /// `and`/`or` without a list of conditions, or `not` without exactly one.
    #[error("{path}: `{op}` needs {expected}")]
    BadConditions {
        /// Where.
        path: String,
        /// `and`, `or` or `not`.
        op: &'static str,
        /// What it needs.
        expected: &'static str,
    },
}

fn did_you_mean(suggestions: &[&str]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            format!("; did you mean one of {}?", many.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))
        }
    }
}

/// Every mistake found in a specification's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid specification: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecErrors(pub Vec<SpecError>);

fn read(value: &Value, path: &str, errors: &mut Vec<SpecError>) -> Option<Spec> {
    let Some(map) = value.as_object() else {
        errors.push(SpecError::NotAnObject { path: path.to_owned() });
        return None;
    };
    let Some(op) = map.get("op").and_then(Value::as_str) else {
        errors.push(SpecError::MissingOp { path: path.to_owned() });
        return None;
    };
    let children = |errors: &mut Vec<SpecError>| -> Option<Vec<Spec>> {
        let list = map.get("conditions").and_then(Value::as_array);
        let list: Vec<&Value> = match (list, map.get("condition")) {
            (Some(list), _) => list.iter().collect(),
            (None, Some(one)) => vec![one],
            (None, None) => return None,
        };
        let before = errors.len();
        let read: Vec<Option<Spec>> =
            list.iter().enumerate().map(|(i, c)| read(c, &format!("{path}.conditions[{i}]"), errors)).collect();
        if errors.len() > before {
            // The children's mistakes are reported; the node itself reads as nothing.
            return None;
        }
        Some(read.into_iter().flatten().collect())
    };
    match op.trim().to_ascii_lowercase().as_str() {
        "and" | "or" => {
            let logical: &'static str = if op.eq_ignore_ascii_case("and") { "and" } else { "or" };
            let before = errors.len();
            let list = children(errors);
            match list {
                Some(list) if !list.is_empty() => Some(if logical == "and" { Spec::And(list) } else { Spec::Or(list) }),
                _ if errors.len() > before => None,
                _ => {
                    errors.push(SpecError::BadConditions {
                        path: path.to_owned(),
                        op: logical,
                        expected: "a non-empty list `conditions`",
                    });
                    None
                }
            }
        }
        "not" => {
            let before = errors.len();
            match children(errors) {
                // Several children are read as their conjunction, then negated.
                Some(mut list) if !list.is_empty() => {
                    let inner = if list.len() == 1 { list.remove(0) } else { Spec::And(list) };
                    Some(Spec::Not(Box::new(inner)))
                }
                _ if errors.len() > before => None,
                _ => {
                    errors.push(SpecError::BadConditions {
                        path: path.to_owned(),
                        op: "not",
                        expected: "one condition (`condition` or `conditions: [..]`)",
                    });
                    None
                }
            }
        }
        name => {
            let op = Op::from_name(name);
            let attr = map.get("attr").and_then(Value::as_str).filter(|a| !a.trim().is_empty());
            if op.is_none() {
                errors.push(SpecError::UnknownOp {
                    path: path.to_owned(),
                    op: name.to_owned(),
                    suggestions: Op::suggestions(name),
                });
            }
            if attr.is_none() {
                errors.push(SpecError::MissingAttr { path: path.to_owned() });
            }
            Some(Spec::Leaf(Condition {
                attr: attr?.to_owned(),
                op: op?,
                val: map.get("val").cloned().unwrap_or(Value::Null),
                value_type: map.get("value_type").and_then(Value::as_str).map(ToOwned::to_owned),
            }))
        }
    }
}

/// Written key by key, in the seed's order (`op`, `attr`, `val`, `value_type`;
/// `op`, `conditions`), so the text is the same byte for byte.
impl Serialize for Spec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Spec::Leaf(c) => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("op", c.op.name())?;
                map.serialize_entry("attr", &c.attr)?;
                map.serialize_entry("val", &c.val)?;
                if let Some(t) = &c.value_type {
                    map.serialize_entry("value_type", t)?;
                }
                map.end()
            }
            Spec::And(children) | Spec::Or(children) => {
                let op = if matches!(self, Spec::And(_)) { "and" } else { "or" };
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("op", op)?;
                map.serialize_entry("conditions", children)?;
                map.end()
            }
            Spec::Not(child) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("op", "not")?;
                map.serialize_entry("conditions", std::slice::from_ref(&**child))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Spec::from_json_value(&value).map_err(D::Error::custom)
    }
}

impl BitAnd for Spec {
    type Output = Spec;

    /// Both hold; nested `and`s are flattened.
    fn bitand(self, rhs: Spec) -> Spec {
        join(self, rhs, true)
    }
}

impl BitOr for Spec {
    type Output = Spec;

    /// Either holds; nested `or`s are flattened.
    fn bitor(self, rhs: Spec) -> Spec {
        join(self, rhs, false)
    }
}

/// `a and b` (or `a or b`), a side that is already such a group contributing its children.
fn join(a: Spec, b: Spec, and: bool) -> Spec {
    let mut children = Vec::new();
    for side in [a, b] {
        match side {
            Spec::And(c) if and => children.extend(c),
            Spec::Or(c) if !and => children.extend(c),
            other => children.push(other),
        }
    }
    if and { Spec::And(children) } else { Spec::Or(children) }
}

impl Not for Spec {
    type Output = Spec;

    /// Does not hold; `!!s` is `s`.
    fn not(self) -> Spec {
        match self {
            Spec::Not(inner) => *inner,
            other => Spec::Not(Box::new(other)),
        }
    }
}

/// Builds a specification condition by condition, with `and`, `or` and `not` groups.
///
/// ```
/// use cqrs_ddd::spec::{Op, SpecBuilder};
///
/// let spec = SpecBuilder::new()
///     .filter("status", Op::Eq, "available")
///     .or_group()
///     .filter("genre", Op::Eq, "poetry")
///     .filter("pages", Op::Lt, 100)
///     .end_group()
///     .build()
///     .unwrap();
/// assert_eq!(spec.conditions().len(), 3);
/// ```
#[derive(Debug)]
pub struct SpecBuilder {
    /// Open groups, the root first: their kind and their children so far.
    stack: Vec<(Group, Vec<Spec>)>,
    /// The first misuse, reported by `build`.
    error: Option<BuildSpecError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    And,
    Or,
    Not,
}

/// A builder used wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildSpecError {
    /// `build` with no condition.
    #[error("the builder has no condition; add one with `filter`")]
    Empty,
    /// `build` with groups still open.
    #[error("{0} group(s) still open; close each with `end_group`")]
    OpenGroups(usize),
    /// A `not` group without exactly one child.
    #[error("a `not` group holds exactly one condition or group, not {0}")]
    NotArity(usize),
    /// `end_group` with no group open.
    #[error("`end_group` without an open group")]
    NoOpenGroup,
    /// A group closed with nothing in it.
    #[error("an empty group; add conditions before `end_group`")]
    EmptyGroup,
}

impl SpecBuilder {
    /// An empty builder; conditions at the top level are joined with `and`.
    pub fn new() -> Self {
        SpecBuilder { stack: vec![(Group::And, Vec::new())], error: None }
    }

    /// Adds `attr op val` to the current group.
    #[must_use]
    pub fn filter(self, attr: impl Into<String>, op: Op, val: impl Into<Value>) -> Self {
        self.push(Spec::leaf(attr, op, val))
    }

    /// Adds a whole specification to the current group.
    #[must_use]
    pub fn push(mut self, spec: Spec) -> Self {
        if let Some((_, children)) = self.stack.last_mut() {
            children.push(spec);
        }
        self
    }

    /// Opens a group whose children all hold.
    #[must_use]
    pub fn and_group(mut self) -> Self {
        self.stack.push((Group::And, Vec::new()));
        self
    }

    /// Opens a group of which one child holds.
    #[must_use]
    pub fn or_group(mut self) -> Self {
        self.stack.push((Group::Or, Vec::new()));
        self
    }

    /// Opens a group that negates its one child.
    #[must_use]
    pub fn not_group(mut self) -> Self {
        self.stack.push((Group::Not, Vec::new()));
        self
    }

    /// Closes the innermost group; a misuse is reported by [`build`](Self::build).
    #[must_use]
    pub fn end_group(mut self) -> Self {
        if self.stack.len() < 2 {
            self.error.get_or_insert(BuildSpecError::NoOpenGroup);
            return self;
        }
        let Some((group, children)) = self.stack.pop() else { return self };
        match close(group, children) {
            Ok(spec) => self.push(spec),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// The specification: one condition alone, or the top-level conditions joined with
    /// `and`.
    pub fn build(mut self) -> Result<Spec, BuildSpecError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.stack.len() > 1 {
            return Err(BuildSpecError::OpenGroups(self.stack.len() - 1));
        }
        let Some((group, children)) = self.stack.pop() else { return Err(BuildSpecError::Empty) };
        if children.is_empty() {
            return Err(BuildSpecError::Empty);
        }
        close(group, children)
    }
}

impl Default for SpecBuilder {
    fn default() -> Self {
        SpecBuilder::new()
    }
}

fn close(group: Group, mut children: Vec<Spec>) -> Result<Spec, BuildSpecError> {
    match (group, children.len()) {
        (Group::Not, 1) => Ok(!children.remove(0)),
        (Group::Not, n) => Err(BuildSpecError::NotArity(n)),
        (_, 0) => Err(BuildSpecError::EmptyGroup),
        (_, 1) => Ok(children.remove(0)),
        (Group::And, _) => Ok(Spec::And(children)),
        (Group::Or, _) => Ok(Spec::Or(children)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_wire_form_reads_back_byte_for_byte() {
        let text = r#"{"op":"and","conditions":[{"op":"=","attr":"address.city","val":"Athens","value_type":"string"},{"op":"not","conditions":[{"op":"in","attr":"status","val":["a","b"]}]},{"op":"or","conditions":[{"op":"is_null","attr":"deleted_at","val":null},{"op":">=","attr":"age","val":18}]}]}"#;
        let spec: Spec = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&spec).unwrap(), text);
    }

    #[test]
    fn not_reads_condition_or_conditions_and_several_are_their_conjunction() {
        let one: Spec =
            serde_json::from_value(json!({"op": "NOT", "condition": {"op": "=", "attr": "a", "val": 1}})).unwrap();
        assert_eq!(one, !Spec::leaf("a", Op::Eq, 1));
        let two: Spec = serde_json::from_value(json!({"op": "not", "conditions": [
            {"op": "=", "attr": "a", "val": 1}, {"op": "=", "attr": "b", "val": 2}
        ]}))
        .unwrap();
        assert_eq!(two, !(Spec::leaf("a", Op::Eq, 1) & Spec::leaf("b", Op::Eq, 2)));
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        let value = json!({"op": "and", "conditions": [
            {"op": "contians", "attr": "title", "val": "x"},
            {"op": "=", "val": 1},
            7,
            {"op": "or", "conditions": []},
        ]});
        let SpecErrors(errors) = Spec::from_json_value(&value).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(matches!(&errors[0], SpecError::UnknownOp { path, op, suggestions }
            if path == "<root>.conditions[0]" && op == "contians" && suggestions.first() == Some(&"contains")));
        assert!(matches!(&errors[1], SpecError::MissingAttr { path } if path == "<root>.conditions[1]"));
        assert!(matches!(&errors[2], SpecError::NotAnObject { path } if path == "<root>.conditions[2]"));
        assert!(matches!(&errors[3], SpecError::BadConditions { op: "or", .. }));
        let message = SpecErrors(errors).to_string();
        assert!(message.contains("did you mean one of `contains`"), "{message}");
        assert!(serde_json::from_value::<Spec>(json!("nope")).is_err());
    }

    #[test]
    fn composition_flattens_and_double_negation_cancels() {
        let (a, b, c) = (Spec::leaf("a", Op::Eq, 1), Spec::leaf("b", Op::Eq, 2), Spec::leaf("c", Op::Eq, 3));
        assert_eq!(a.clone() & b.clone() & c.clone(), Spec::And(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(a.clone() | (b.clone() | c.clone()), Spec::Or(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(!!a.clone(), a.clone());
        assert_eq!(a.clone().merge(b.clone()), a & b);
    }

    #[test]
    fn the_builder_groups_and_reports_misuse() {
        let spec =
            SpecBuilder::new().filter("a", Op::Eq, 1).not_group().filter("b", Op::Eq, 2).end_group().build().unwrap();
        assert_eq!(spec, Spec::leaf("a", Op::Eq, 1) & !Spec::leaf("b", Op::Eq, 2));
        assert_eq!(SpecBuilder::new().filter("a", Op::Eq, 1).build().unwrap(), Spec::leaf("a", Op::Eq, 1));
        assert_eq!(SpecBuilder::new().build(), Err(BuildSpecError::Empty));
        assert_eq!(SpecBuilder::new().or_group().filter("a", Op::Eq, 1).build(), Err(BuildSpecError::OpenGroups(1)));
        assert_eq!(SpecBuilder::new().end_group().filter("a", Op::Eq, 1).build(), Err(BuildSpecError::NoOpenGroup));
        let two = SpecBuilder::new().not_group().filter("a", Op::Eq, 1).filter("b", Op::Eq, 2).end_group().build();
        assert_eq!(two, Err(BuildSpecError::NotArity(2)));
        assert_eq!(SpecBuilder::new().and_group().end_group().build(), Err(BuildSpecError::EmptyGroup));
    }
}
