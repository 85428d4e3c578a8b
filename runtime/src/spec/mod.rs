//! Specifications: conditions on read-model documents that can be composed, sent as
//! JSON, and evaluated in memory (and, by the SQL store, compiled to SQL).
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

mod aggregate;
mod ast;
mod eval;
mod filter;
#[cfg(feature = "geo")]
mod geometry;
mod op;
mod path;
mod query;

pub use aggregate::{AggFn, Aggregate, Measure, number};
pub use ast::{BuildSpecError, Condition, Spec, SpecBuilder, SpecError, SpecErrors};
pub use eval::{EvalError, Truth};
pub use filter::{AllowList, DEFAULT_LIMIT, FilterError, MAX_LIMIT, op_alias, parse_filter, parse_query, parse_sort};
#[cfg(feature = "geo")]
pub use geometry::GeoValue;
pub use op::Op;
pub use path::{JsonStep, Path, Step, json_path};
pub use query::{CursorError, Dir, FieldKind, Index, Keyset, Order, Page, QueryOptions, project};
