//! Aggregations: documents grouped by fields, with counts, sums, averages, minimums and
//! maximums.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ast::Spec;
use super::eval::EvalError;
use super::query::{lookup, plain_path, sort_cmp};

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    /// How many documents (without a field), or how many have a non-null value there.
    Count,
    /// The sum of the field's numbers.
    Sum,
    /// The average of the field's numbers.
    Avg,
    /// The smallest of the field's numbers.
    Min,
    /// The largest of the field's numbers.
    Max,
}

/// One measure of an [`Aggregation`]: a function of a field, named by an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    /// The function.
    pub func: AggFn,
    /// The field (dot path); `None` only for a count of documents.
    pub field: Option<String>,
    /// The name of the result.
    pub alias: String,
}

/// Documents grouped by fields, with measures per group.
///
/// A group is one combination of the group fields' values; a value that is missing, null,
/// a list or an object groups as `null`. Sums, averages, minimums and maximums take the
/// numbers of their field and leave other values out (a group without numbers gives
/// `null`), as SQL does. Groups come ordered by their values, like an ascending order
/// on the group fields. Every store gives the same rows (averages to floating-point
/// rounding).
///
/// ```
/// use cqrs_ddd::spec::{Aggregation, Op, Spec};
/// use serde_json::json;
///
/// let by_genre = Aggregation::new()
///     .filter(Spec::leaf("copies", Op::Gt, 0))
///     .group_by("genre")
///     .count("books")
///     .sum("copies", "copies");
/// let docs = [json!({"genre": "poetry", "copies": 2}), json!({"genre": "poetry", "copies": 3}), json!({"genre": "drama", "copies": 0})];
/// let rows = by_genre.apply(docs.iter()).unwrap();
/// assert_eq!(rows, [json!({"genre": "poetry", "books": 2, "copies": 5})]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregation {
    /// The filter; `None` takes every document.
    pub spec: Option<Spec>,
    /// The group fields; none makes one group of every document.
    pub group_by: Vec<String>,
    /// The measures.
    pub measures: Vec<Measure>,
}

impl Aggregation {
    /// One group, no measures yet.
    pub fn new() -> Self {
        Aggregation::default()
    }

    /// Adds a filter (joined with `and`).
    #[must_use]
    pub fn filter(mut self, spec: Spec) -> Self {
        self.spec = Some(Spec::and_maybe(self.spec.take(), spec));
        self
    }

    /// Groups by a field too.
    #[must_use]
    pub fn group_by(mut self, field: impl Into<String>) -> Self {
        self.group_by.push(field.into());
        self
    }

    /// Counts the documents of each group.
    #[must_use]
    pub fn count(self, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Count, None, alias)
    }

    /// Counts the documents with a non-null value in `field`.
    #[must_use]
    pub fn count_of(self, field: impl Into<String>, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Count, Some(field.into()), alias)
    }

    /// Sums `field`.
    #[must_use]
    pub fn sum(self, field: impl Into<String>, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Sum, Some(field.into()), alias)
    }

    /// Averages `field`.
    #[must_use]
    pub fn avg(self, field: impl Into<String>, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Avg, Some(field.into()), alias)
    }

    /// The smallest number of `field`.
    #[must_use]
    pub fn min(self, field: impl Into<String>, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Min, Some(field.into()), alias)
    }

    /// The largest number of `field`.
    #[must_use]
    pub fn max(self, field: impl Into<String>, alias: impl Into<String>) -> Self {
        self.measure(AggFn::Max, Some(field.into()), alias)
    }

    /// Adds a measure.
    #[must_use]
    pub fn measure(mut self, func: AggFn, field: Option<String>, alias: impl Into<String>) -> Self {
        self.measures.push(Measure { func, field, alias: alias.into() });
        self
    }

    /// Checks what does not depend on a document: the filter, the fields (which do not
    /// cross lists), a field for every measure but a count, names that do not collide.
    pub fn check(&self) -> Result<(), EvalError> {
        if let Some(spec) = &self.spec {
            for c in spec.conditions() {
                c.check()?;
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for field in &self.group_by {
            plain_path(field)?;
            names.push(field);
        }
        for m in &self.measures {
            match &m.field {
                Some(f) => {
                    plain_path(f)?;
                }
                None if m.func != AggFn::Count => {
                    return Err(EvalError::BadAggregate(format!("`{}` needs a field", m.alias)));
                }
                None => {}
            }
            if m.alias.is_empty() || names.contains(&m.alias.as_str()) {
                return Err(EvalError::BadAggregate(format!(
                    "the result name `{}` is empty or already used by another group field or measure",
                    m.alias
                )));
            }
            names.push(&m.alias);
        }
        Ok(())
    }

    /// The aggregation over documents, in memory.
    pub fn apply<'a>(&self, documents: impl IntoIterator<Item = &'a Value>) -> Result<Vec<Value>, EvalError> {
        self.check()?;
        let mut groups: Vec<(Vec<Value>, Vec<Acc>)> = Vec::new();
        for doc in documents {
            if let Some(spec) = &self.spec
                && !spec.matches(doc)?
            {
                continue;
            }
            let key: Vec<Value> = self.group_by.iter().map(|f| group_value(lookup(doc, f))).collect();
            let at = match groups.iter().position(|(k, _)| same_key(k, &key)) {
                Some(i) => i,
                None => {
                    groups.push((key, vec![Acc::default(); self.measures.len()]));
                    groups.len() - 1
                }
            };
            for (acc, m) in groups[at].1.iter_mut().zip(&self.measures) {
                acc.add(m, doc);
            }
        }
        if groups.is_empty() && self.group_by.is_empty() {
            groups.push((Vec::new(), vec![Acc::default(); self.measures.len()]));
        }
        groups.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| sort_cmp(non_null(x), non_null(y)))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        Ok(groups
            .into_iter()
            .map(|(key, accs)| {
                let mut row = Map::new();
                for (field, v) in self.group_by.iter().zip(key) {
                    row.insert(field.clone(), v);
                }
                for (m, acc) in self.measures.iter().zip(accs) {
                    row.insert(m.alias.clone(), acc.result(m.func));
                }
                Value::Object(row)
            })
            .collect())
    }
}

fn non_null(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

fn same_key(a: &[Value], b: &[Value]) -> bool {
    a.iter().zip(b).all(|(x, y)| sort_cmp(non_null(x), non_null(y)) == Ordering::Equal && x.is_null() == y.is_null())
}

/// A group field's value: scalars as they are (numbers in their shortest form), else
/// `null`.
fn group_value(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => n.as_f64().map_or(Value::Null, number),
        Some(v @ (Value::String(_) | Value::Bool(_))) => v.clone(),
        _ => Value::Null,
    }
}

/// A number as JSON: a whole number when it is one, else a float.
pub fn number(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)]
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[derive(Debug, Clone, Default)]
struct Acc {
    n: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Acc {
    fn add(&mut self, m: &Measure, doc: &Value) {
        let Some(field) = &m.field else {
            self.n += 1;
            return;
        };
        let v = lookup(doc, field);
        if m.func == AggFn::Count {
            self.n += u64::from(v.is_some());
            return;
        }
        let Some(x) = v.and_then(Value::as_f64) else { return };
        self.n += 1;
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
    }

    fn result(&self, func: AggFn) -> Value {
        match func {
            AggFn::Count => Value::from(self.n),
            _ if self.n == 0 => Value::Null,
            AggFn::Sum => number(self.sum),
            #[allow(clippy::cast_precision_loss)]
            AggFn::Avg => number(self.sum / self.n as f64),
            AggFn::Min => self.min.map_or(Value::Null, number),
            AggFn::Max => self.max.map_or(Value::Null, number),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_measure_and_order_by_key() {
        let docs = [
            json!({"g": "b", "n": 1}),
            json!({"g": "a", "n": 2.5}),
            json!({"g": "b", "n": "x"}),
            json!({"n": 4}),
            json!({"g": ["list"], "n": 1}),
            json!({"g": "a"}),
        ];
        let rows = Aggregation::new()
            .group_by("g")
            .count("docs")
            .count_of("n", "with_n")
            .sum("n", "sum")
            .avg("n", "avg")
            .min("n", "min")
            .max("n", "max")
            .apply(docs.iter())
            .unwrap();
        assert_eq!(
            rows,
            [
                json!({"g": "a", "docs": 2, "with_n": 1, "sum": 2.5, "avg": 2.5, "min": 2.5, "max": 2.5}),
                json!({"g": "b", "docs": 2, "with_n": 2, "sum": 1, "avg": 1, "min": 1, "max": 1}),
                json!({"g": null, "docs": 2, "with_n": 2, "sum": 5, "avg": 2.5, "min": 1, "max": 4}),
            ]
        );
    }

    #[test]
    fn no_group_gives_one_row_even_when_empty() {
        let rows = Aggregation::new().count("n").sum("x", "s").apply(std::iter::empty()).unwrap();
        assert_eq!(rows, [json!({"n": 0, "s": null})]);
    }

    #[test]
    fn bad_aggregates_are_typed_errors() {
        assert!(matches!(Aggregation::new().measure(AggFn::Sum, None, "s").check(), Err(EvalError::BadAggregate(_))));
        assert!(matches!(Aggregation::new().group_by("g").count("g").check(), Err(EvalError::BadAggregate(_))));
        assert!(matches!(Aggregation::new().group_by("a[*].b").check(), Err(EvalError::BadValue { .. })));
    }
}
