//! Merge strategies: how two versions of a JSON state become one, for state-stored
//! aggregates that would rather merge a concurrent write than fail on it.
//!
//! Each strategy takes the state another writer stored first (`existing`) and the state
//! this writer computed (`incoming`) and answers the state to store:
//!
//! | strategy | answer |
//! | --- | --- |
//! | [`MergeStrategy::LastWins`] | `incoming` |
//! | [`MergeStrategy::Fields`] | `existing` with `incoming`'s top-level fields laid over it, limited to `include` (when given), never those in `exclude`; with `keep_existing`, a field both have keeps `existing`'s value |
//! | [`MergeStrategy::Deep`] | objects merged field by field, recursively; lists of objects merged item by item by an identity field (`list_key`), existing items first, new ones after (an item without the field is added unless an equal one is there); lists without a key replaced (or appended with `append_lists`); anything else: `incoming` |
//! | [`MergeStrategy::Timestamp`] | whichever has the later time in `field` (RFC 3339); a tie goes to `incoming`; when either has no readable time, `incoming` with `fallback_to_incoming`, else `existing` |
//! | [`MergeStrategy::Union`] | two lists: every item of both once, existing order then new items; with `key`, items are the same when that field is, and `incoming`'s copy wins (items without the field are all kept); two objects (an aggregate's state): `existing` with `incoming`'s fields laid over it, each field that is a list in both being their union; anything else: `incoming` |
//! | [`MergeStrategy::Custom`] | your function |
//!
//! ```
//! use cqrs_ddd::conflict::MergeStrategy;
//! use serde_json::json;
//!
//! let deep = MergeStrategy::deep_by("id");
//! let existing = json!({"lines": [{"id": 1, "qty": 1}, {"id": 2, "qty": 1}]});
//! let incoming = json!({"lines": [{"id": 2, "qty": 5}, {"id": 3, "qty": 1}]});
//! assert_eq!(
//!     deep.merge(&existing, &incoming),
//!     json!({"lines": [{"id": 1, "qty": 1}, {"id": 2, "qty": 5}, {"id": 3, "qty": 1}]})
//! );
//! ```

//!
//! # On a state-stored aggregate
//!
//! Declared on the aggregate, a strategy merges a root command's write that meets a
//! version conflict, instead of deciding the command again:
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::prelude::*;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Tagged { pub tag: String }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("blank tag")]
//! pub struct BlankTag;
//!
//! #[aggregate(id = String, events(Tagged), error = BlankTag, state_stored, on_conflict = merge(union))]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Labels { pub tags: Vec<String> }
//!
//! #[aggregate]
//! impl Labels {
//!     #[handle(create_if_missing)]
//!     fn tag(&self, cmd: &Tag) -> Result<Vec<LabelsEvent>, BlankTag> {
//!         if cmd.tag.is_empty() { return Err(BlankTag) }
//!         Ok(vec![Tagged { tag: cmd.tag.clone() }.into()])
//!     }
//!
//!     #[apply]
//!     fn tagged(&mut self, e: &Tagged) { self.tags.push(e.tag.clone()) }
//! }
//!
//! #[command(aggregate = Labels)]
//! pub struct Tag { #[id] pub id: String, pub tag: String }
//!
//! assert!(<Labels as Aggregate>::on_conflict().is_some());
//! ```
//!
//! When another writer stored the row between the command's load and its commit, the
//! stored state is read, merged (`existing`: the stored one; `incoming`: the command's),
//! and written at the next version with the command's events journaled after the other
//! writer's; the cache, if any, keeps the merged state. Up to three writers may cut in
//! like this; the fourth conflict is returned. A conflict on any other stream of the
//! unit of work is decided again as usual ([`crate::AppBuilder::retry_on_conflict`]),
//! and a merged state that does not read back as the aggregate is
//! [`crate::Error::Merge`], with nothing written.
//!
//! | `on_conflict = ..` | strategy |
//! | --- | --- |
//! | `merge(last_wins)` | [`MergeStrategy::LastWins`] |
//! | `merge(fields)`, `merge(fields(include = [a, b], exclude = [c], keep_existing))` | [`MergeStrategy::Fields`] |
//! | `merge(deep)`, `merge(deep(key = id, append_lists))` | [`MergeStrategy::Deep`] |
//! | `merge(timestamp)`, `merge(timestamp(field = modified_at, fallback_to_incoming))` | [`MergeStrategy::Timestamp`] (`modified_at` by default) |
//! | `merge(union)`, `merge(union(key = code))` | [`MergeStrategy::Union`] |
//! | `merge(with = my_merge)` | [`MergeStrategy::Custom`]: `fn(&Value, &Value) -> Value` |
//!
//! Field names are words or strings (`"modifiedAt"` for a field serde renames). Merges
//! are counted in `cqrs_ddd_conflict_merges_total`.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A user's merge: `(existing, incoming) -> merged`.
pub type MergeFn = Arc<dyn Fn(&Value, &Value) -> Value + Send + Sync>;

/// How `existing` and `incoming` states become one; see the [module docs](self).
#[derive(Clone)]
pub enum MergeStrategy {
    /// `incoming` replaces `existing`.
    LastWins,
    /// A shallow merge of top-level fields.
    Fields {
        /// Only these fields of `incoming` are taken (all when `None`).
        include: Option<Vec<String>>,
        /// These fields of `incoming` are never taken.
        exclude: Vec<String>,
        /// A field both states have keeps `existing`'s value.
        keep_existing: bool,
    },
    /// A recursive merge.
    Deep {
        /// The field that identifies the items of lists of objects.
        list_key: Option<String>,
        /// Lists without a key are appended (`existing` then `incoming`) instead of
        /// replaced.
        append_lists: bool,
    },
    /// The later of the two by a time field.
    Timestamp {
        /// The field holding an RFC 3339 time (`modified_at`).
        field: String,
        /// When either time is missing or unreadable, take `incoming` (else `existing`).
        fallback_to_incoming: bool,
    },
    /// The union of two lists, or of the list fields of two objects.
    Union {
        /// The field that identifies items (whole items are compared without it).
        key: Option<String>,
    },
    /// A function of yours.
    Custom(MergeFn),
}

impl fmt::Debug for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeStrategy::LastWins => f.write_str("LastWins"),
            MergeStrategy::Fields { include, exclude, keep_existing } => f
                .debug_struct("Fields")
                .field("include", include)
                .field("exclude", exclude)
                .field("keep_existing", keep_existing)
                .finish(),
            MergeStrategy::Deep { list_key, append_lists } => {
                f.debug_struct("Deep").field("list_key", list_key).field("append_lists", append_lists).finish()
            }
            MergeStrategy::Timestamp { field, fallback_to_incoming } => f
                .debug_struct("Timestamp")
                .field("field", field)
                .field("fallback_to_incoming", fallback_to_incoming)
                .finish(),
            MergeStrategy::Union { key } => f.debug_struct("Union").field("key", key).finish(),
            MergeStrategy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl MergeStrategy {
    /// [`MergeStrategy::Fields`] over every field, `incoming` winning.
    pub fn fields() -> Self {
        MergeStrategy::Fields { include: None, exclude: Vec::new(), keep_existing: false }
    }

    /// [`MergeStrategy::Deep`] with lists of objects merged by `key`.
    pub fn deep_by(key: impl Into<String>) -> Self {
        MergeStrategy::Deep { list_key: Some(key.into()), append_lists: false }
    }

    /// [`MergeStrategy::Timestamp`] on `field`, keeping `existing` when a time is missing.
    pub fn timestamp(field: impl Into<String>) -> Self {
        MergeStrategy::Timestamp { field: field.into(), fallback_to_incoming: false }
    }

    /// [`MergeStrategy::Union`] of items identified by `key`.
    pub fn union_by(key: impl Into<String>) -> Self {
        MergeStrategy::Union { key: Some(key.into()) }
    }

    /// [`MergeStrategy::Custom`].
    pub fn custom(merge: impl Fn(&Value, &Value) -> Value + Send + Sync + 'static) -> Self {
        MergeStrategy::Custom(Arc::new(merge))
    }

    /// The merged state.
    pub fn merge(&self, existing: &Value, incoming: &Value) -> Value {
        match self {
            MergeStrategy::LastWins => incoming.clone(),
            MergeStrategy::Fields { include, exclude, keep_existing } => {
                let (Value::Object(old), Value::Object(new)) = (existing, incoming) else { return incoming.clone() };
                let mut merged = old.clone();
                for (k, v) in new {
                    let wanted = include.as_ref().is_none_or(|i| i.contains(k)) && !exclude.contains(k);
                    if wanted && !(*keep_existing && merged.contains_key(k)) {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(merged)
            }
            MergeStrategy::Deep { list_key, append_lists } => {
                deep(existing, incoming, list_key.as_deref(), *append_lists)
            }
            MergeStrategy::Timestamp { field, fallback_to_incoming } => {
                match (time_of(existing, field), time_of(incoming, field)) {
                    (Some(old), Some(new)) if new >= old => incoming.clone(),
                    (Some(_), Some(_)) => existing.clone(),
                    _ if *fallback_to_incoming => incoming.clone(),
                    _ => existing.clone(),
                }
            }
            MergeStrategy::Union { key } => match (existing, incoming) {
                (Value::Array(old), Value::Array(new)) => Value::Array(union(old, new, key.as_deref())),
                (Value::Object(old), Value::Object(new)) => {
                    let mut merged = old.clone();
                    for (k, v) in new {
                        let value = match (old.get(k), v) {
                            (Some(Value::Array(o)), Value::Array(n)) => Value::Array(union(o, n, key.as_deref())),
                            _ => v.clone(),
                        };
                        merged.insert(k.clone(), value);
                    }
                    Value::Object(merged)
                }
                _ => incoming.clone(),
            },
            MergeStrategy::Custom(merge) => merge(existing, incoming),
        }
    }
}

fn deep(existing: &Value, incoming: &Value, key: Option<&str>, append: bool) -> Value {
    match (existing, incoming) {
        (Value::Object(old), Value::Object(new)) => {
            let mut merged: Map<String, Value> = old.clone();
            for (k, v) in new {
                let value = match old.get(k) {
                    Some(o) => deep(o, v, key, append),
                    None => v.clone(),
                };
                merged.insert(k.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(old), Value::Array(new)) => match key {
            Some(key) => {
                let mut merged: Vec<Value> = old.clone();
                for item in new {
                    match identity(item, key) {
                        Some(id) => match merged.iter().position(|m| identity(m, key) == Some(id)) {
                            Some(i) => merged[i] = deep(&merged[i], item, Some(key), append),
                            None => merged.push(item.clone()),
                        },
                        // An item without the key is added unless an equal one is there.
                        None if merged.contains(item) => {}
                        None => merged.push(item.clone()),
                    }
                }
                Value::Array(merged)
            }
            None if append => Value::Array(old.iter().chain(new).cloned().collect()),
            None => incoming.clone(),
        },
        _ => incoming.clone(),
    }
}

fn union(old: &[Value], new: &[Value], key: Option<&str>) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::with_capacity(old.len() + new.len());
    for item in old.iter().chain(new) {
        let same = match key {
            Some(key) => identity(item, key).and_then(|id| merged.iter().position(|m| identity(m, key) == Some(id))),
            None => merged.iter().position(|m| m == item),
        };
        match same {
            // With a key, the later copy (incoming's) wins in the earlier place.
            Some(i) if key.is_some() => merged[i] = item.clone(),
            Some(_) => {}
            None => merged.push(item.clone()),
        }
    }
    merged
}

/// An item's identity: its `key` field, when it is an object that has one.
fn identity<'v>(item: &'v Value, key: &str) -> Option<&'v Value> {
    item.as_object().and_then(|o| o.get(key))
}

/// The time in `field` of an object, when it is a readable RFC 3339 time.
fn time_of(state: &Value, field: &str) -> Option<DateTime<Utc>> {
    let text = state.as_object()?.get(field)?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}
