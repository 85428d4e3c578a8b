//! Specifications: conditions on read-model documents that compose, travel as JSON, and
//! are answered the same way in memory and, compiled to SQL, by PostgreSQL, SQLite and
//! MariaDB.
//!
//! ```
//! use cqrs_ddd::spec::{Op, Spec};
//! use serde_json::json;
//!
//! let available = Spec::leaf("status", Op::Eq, "available") & !Spec::leaf("copies", Op::Lt, 1);
//! assert!(available.matches(&json!({"status": "available", "copies": 3})).unwrap());
//! // A missing attribute is unknown, so neither the condition nor its negation matches.
//! assert!(!available.matches(&json!({"status": "available"})).unwrap());
//!
//! // The JSON form is the one the seed toolkit uses.
//! let spec: Spec = serde_json::from_str(r#"{"op": "or", "conditions": [
//!     {"op": "in", "attr": "genre", "val": ["poetry", "drama"]},
//!     {"op": "is_null", "attr": "genre", "val": null}
//! ]}"#).unwrap();
//! assert!(spec.matches(&json!({"genre": "drama"})).unwrap());
//! ```
//!
//! # One meaning everywhere
//!
//! - **Three-valued logic.** A condition on a missing or `null` field is *unknown*, `not`
//!   of unknown is unknown, and only a true specification selects a document, as a SQL
//!   `WHERE` does. `status != "lent"` does not select a book without a status, and
//!   neither does its negation.
//! - **Types.** A value compares with values of its own JSON type: a text field with a
//!   text, a number with a number (`1` equals `1.0`), a boolean with a boolean; any other
//!   pair is unknown. Texts compare by code point (no collation).
//! - **Paths** ([`Path`]) are names joined by `.`; `[*]` after a list name applies the
//!   rest to each element (`items[*].sku`): true if one element is true, else unknown if
//!   one is unknown, else false. A path crosses a list only where it says so.
//! - **Patterns.** `like` takes `%`, `_` and `\` escapes; `contains`, `startswith` and
//!   `endswith` take plain text (no wildcard). Regular expressions search the text (not
//!   anchored).
//! - **JSON operators** follow PostgreSQL's `jsonb` (`@>`, `<@`, `?`, `?|`, `?&`), written
//!   out in SQL on SQLite and MariaDB.
//!
//! The property test of the SQL adapter generates random documents and specifications
//! and holds memory, PostgreSQL, SQLite and MariaDB to the same rows, counts, orderings,
//! pages and aggregations.
//!
//! Where the backends differ, on purpose: `ilike`, `icontains` and the other
//! case-insensitive operators fold ASCII only on SQLite; `fts` on PostgreSQL is its
//! full-text search (`websearch_to_tsquery` with the `simple` configuration: words,
//! `"phrases"`, `or`, `-word`), elsewhere every word of the query must occur in the text,
//! ignoring case. Geometry needs the `geo` feature.
//!
//! # Queries
//!
//! [`QueryOptions`] adds to the filter an order ([`Order`], typed by [`FieldKind`]:
//! a text, number or boolean ordering, or any JSON value), a page (limit and offset, or a
//! keyset cursor from the previous [`Page`]: stable and fast deep into a collection),
//! and the fields to return. [`Aggregation`] groups and measures (count, sum, avg, min,
//! max). The document store of the projections answers both
//! ([`ProjectionStore::find_of`](crate::ports::ProjectionStore::find_of), `page_of`,
//! `count_of` as `SELECT count(*)`, `aggregate_of`), scoped to a tenant; a query handler
//! reaches them through [`QueryContext::read_models`](crate::QueryContext::read_models).
//!
//! ```
//! use cqrs_ddd::spec::{Aggregation, Dir, FieldKind, Op, QueryOptions, Spec};
//! use serde_json::json;
//!
//! let docs = vec![
//!     ("1".to_owned(), json!({"status": "available", "title": "Odyssey", "copies": 2})),
//!     ("2".to_owned(), json!({"status": "lent", "title": "Iliad", "copies": 1})),
//!     ("3".to_owned(), json!({"status": "available", "title": "Antigone", "copies": 5})),
//! ];
//! let first = QueryOptions::new()
//!     .filter(Spec::leaf("status", Op::Eq, "available"))
//!     .order_by_kind("title", Dir::Asc, FieldKind::Text)
//!     .limit(1);
//! let page = first.apply(docs.clone()).unwrap();
//! assert_eq!(page[0].0, "3");
//! // The next page starts after the last document of this one.
//! let cursor = cqrs_ddd::spec::Keyset::of(&first.order, "3", &page[0].1).encode();
//! let next = first.clone().after(&cursor).unwrap().apply(docs.clone()).unwrap();
//! assert_eq!(next[0].0, "1");
//!
//! let totals = Aggregation::new().group_by("status").sum("copies", "copies");
//! let values: Vec<_> = docs.iter().map(|(_, d)| d.clone()).collect();
//! assert_eq!(
//!     totals.apply(values.iter()).unwrap(),
//!     [json!({"status": "available", "copies": 7}), json!({"status": "lent", "copies": 1})]
//! );
//! ```
//!
//! # Indexes
//!
//! An [`Index`] declared on a collection
//! ([`ProjectionStore::ensure_index`](crate::ports::ProjectionStore::ensure_index)) is an
//! expression index on PostgreSQL and SQLite over the same typed expressions the compiled
//! queries use, so a filter and an ordering on those fields, with the same kinds, use
//! it; `SqlStore::explain` shows the plan. MariaDB has no expression indexes: there the
//! declaration does nothing.
//!
//! # From HTTP
//!
//! [`parse_query`] reads `filter=status:eq:available,price:between:10,50`, a JSON filter
//! for `or` and groups, `sort=-price,name`, `fields`, `limit`/`offset` (20 by default, at
//! most 100) and `cursor`, checked against an [`AllowList`]; every mistake is a typed
//! [`FilterError`] naming the part and suggesting close matches.

mod aggregate;
mod ast;
mod eval;
pub(crate) mod field;
mod filter;
mod op;
mod path;
mod query;

pub use aggregate::{AggFn, Aggregation, Measure, number};
pub use ast::{BuildSpecError, Condition, Spec, SpecBuilder, SpecError, SpecErrors};
/// Derives [`ReadModel`] (and [`Field`]): typed fields, an allow-list and indexes; see [`ReadModel`].
#[cfg(feature = "macros")]
pub use cqrs_ddd_macros::ReadModel;
pub use eval::{EvalError, Truth};
pub use field::{BoolField, Field, FieldHandle, JsonField, ListField, NumberField, Numeric, ReadModel, TextField};
pub use filter::{AllowList, DEFAULT_LIMIT, FilterError, MAX_LIMIT, op_alias, parse_filter, parse_query, parse_sort};
pub use op::Op;
pub use path::{JsonStep, Path, Step, json_path};
pub use query::{CursorError, Dir, FieldKind, Index, Keyset, Order, Page, QueryOptions, project};
