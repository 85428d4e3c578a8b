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
