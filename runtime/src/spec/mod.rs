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
//! [`FilterError`] naming the part and suggesting close matches. [`parse_query_in`]
//! also applies the request: a read model may require a tenant and show each caller
//! only their own documents.
//!
//! # Geometry
//!
//! Eleven operators compare a field holding a GeoJSON geometry with a value. They need
//! the `geo` cargo feature (in memory, through the [`geo`](https://docs.rs/geo) crate);
//! without it they are [`EvalError::Unsupported`]. The SQL store of `cqrs-ddd-sqlx`
//! compiles them for PostgreSQL with PostGIS and SQLite with SpatiaLite, with the same
//! answers; MariaDB refuses them with [`EvalError::Unsupported`].
//!
//! | operator | value | holds when the field ... |
//! | --- | --- | --- |
//! | `intersects` | a geometry | shares a point with it |
//! | `disjoint` | a geometry | shares no point with it |
//! | `within` | a geometry | lies inside it (boundary alone is not enough) |
//! | `contains_geom` | a geometry | has it inside |
//! | `touches` | a geometry | meets it on boundaries only |
//! | `crosses` | a geometry | crosses it (a line through an area, two lines at a point, points partly in) |
//! | `overlaps` | a geometry | overlaps it, both of one dimension, neither inside the other |
//! | `geom_equals` | a geometry | covers the same points (vertex order and ring start aside) |
//! | `distance_lt` | `[point, metres]` | is a point less than `metres` away |
//! | `dwithin` | `[point, metres]` | is a point at most `metres` away |
//! | `bbox_intersects` | `[min_lon, min_lat, max_lon, max_lat]` | has a bounding box meeting the box (edges included) |
//!
//! - **Geometries** are GeoJSON `Point`, `LineString`, `Polygon`, `MultiPoint`,
//!   `MultiLineString` and `MultiPolygon` objects, in WGS84 longitude and latitude
//!   degrees: positions of two or three numbers (a third, a height, is ignored), the same
//!   count throughout; longitudes within [-180, 180], latitudes within [-90, 90]; valid
//!   in the OGC sense (lines of two distinct points or more, rings closed and simple,
//!   holes inside their shell). Members other than `type` and `coordinates` are ignored.
//!   `GeometryCollection` is not supported.
//! - **A field** that is missing, null, or not such a geometry is *unknown*, as for every
//!   other operator: neither the condition nor its negation matches it. For the two
//!   distances, a field that is not a point is unknown too.
//! - **A value** that is not such a geometry (a point, for the distances; a box whose
//!   minimums are not above its maximums, in range, for `bbox_intersects`) is
//!   [`EvalError::BadValue`], before any document is read, on every backend. The
//!   distances also take `{"geometry": point, "distance": metres}`; metres are a number,
//!   not negative.
//! - **Predicates** are DE-9IM relations on the plane of the coordinates, as PostGIS's
//!   `geometry` computes them with SRID 4326: degrees are treated as plane coordinates.
//! - **Distances** are metres on the WGS84 ellipsoid (geodesics, Karney's algorithm; PostGIS
//!   `geography`, SpatiaLite `ST_Distance(a, b, 1)`). `dwithin` is `<=`, `distance_lt`
//!   is `<`, on every backend. They are measured between points only: geodesic distances
//!   to lines and areas are not computed in memory, so no backend answers them.
//! - **Boxes** compare the field's bounding box in double precision.
//!
//! ```
//! # #[cfg(feature = "geo")] {
//! use cqrs_ddd::spec::{Op, Spec};
//! use serde_json::json;
//!
//! let paris = json!({"type": "Point", "coordinates": [2.3522, 48.8566]});
//! let london = json!({"type": "Point", "coordinates": [-0.1278, 51.5074]});
//! // London and Paris are 343 923 m apart.
//! let near_london = Spec::leaf("location", Op::Dwithin, json!([london, 350_000]));
//! assert!(near_london.matches(&json!({"location": paris})).unwrap());
//!
//! let europe = Spec::leaf("location", Op::BboxIntersects, json!([-10, 35, 30, 60]));
//! assert!(europe.matches(&json!({"location": paris})).unwrap());
//!
//! let square = json!({"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]});
//! let inside = Spec::leaf("location", Op::Within, square);
//! assert!(inside.matches(&json!({"location": {"type": "Point", "coordinates": [1, 1]}})).unwrap());
//! // Not a geometry: unknown, so neither the condition nor its negation matches.
//! assert!(!inside.matches(&json!({"location": "1, 1"})).unwrap());
//! assert!(!(!inside).matches(&json!({"location": "1, 1"})).unwrap());
//! # }
//! ```
//!
//! On SQLite, SpatiaLite must be loaded on every connection of the store:
//! `SqliteStore::connect_with(SqliteStore::options(url)?.extension("mod_spatialite"))`
//! (Debian's package `libsqlite3-mod-spatialite`). The store then adds SpatiaLite's
//! metadata with the WGS84 reference systems to the database if it has none (geodesic
//! distances read the ellipsoid there). On PostgreSQL, `CREATE EXTENSION postgis` in
//! the database (Debian's `postgresql-15-postgis-3`), with its functions on the search
//! path.

mod aggregate;
mod ast;
mod eval;
pub(crate) mod field;
mod filter;
#[cfg(feature = "geo")]
mod geometry;
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
pub use filter::{
    AllowList, DEFAULT_LIMIT, FilterError, MAX_LIMIT, op_alias, parse_filter, parse_query, parse_query_in, parse_sort,
};
#[cfg(feature = "geo")]
pub use geometry::GeoValue;
pub use op::Op;
pub use path::{JsonStep, Path, Step, json_path};
pub use query::{CursorError, Dir, FieldKind, Index, Keyset, Order, Page, QueryOptions, project};
