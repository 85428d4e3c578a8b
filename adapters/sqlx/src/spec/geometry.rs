//! Geometry conditions in SQL (the `geo` feature): PostGIS on PostgreSQL, SpatiaLite on
//! SQLite; MariaDB refuses them with [`EvalError::Unsupported`].
//!
//! A field is a geometry under the evaluator's rules ([`cqrs_ddd::spec`], "Geometry"),
//! checked in the database before any spatial function sees it, so a document the
//! evaluator reads as unknown never makes the query fail:
//!
//! * its shape: a JSON object whose `type` is one of the six supported ones, with
//!   coordinates nested as that type needs, positions of two or three numbers, the same
//!   count throughout. PostgreSQL tests it with a JSON path (PostGIS reads `[1, "a"]` as
//!   `POINT(1 0)`); SpatiaLite's reader refuses such text itself (`NULL`);
//! * only `type` and `coordinates` reach the GeoJSON reader (SpatiaLite refuses foreign
//!   members, PostGIS would honour a `crs`);
//! * valid in the OGC sense (`ST_IsValidDetail`, `ST_IsValid`), so GEOS never meets a
//!   ring that is not closed or crosses itself;
//! * its bounding box within the WGS84 range.
//!
//! Then the predicates are GEOS's, on the plane of the coordinates; distances are
//! geodesic metres on the WGS84 ellipsoid (`geography` on PostGIS, `ST_Distance(a, b, 1)`
//! on SpatiaLite), between points only; a box is compared with the field's bounding box
//! in double precision (`ST_XMin`..., `MbrMinX`...), edges included.

use cqrs_ddd::spec::{Condition, EvalError, GeoValue, Op};
use cqrs_ddd::{Error, Result};

use super::{Arg, Compiler, Frag};
use crate::dialect::Flavor;

/// The GeoJSON types a field may hold, with how deep their coordinates nest (a position
/// is depth 1) and the fewest items each list above the positions holds.
const SHAPES: [(&str, &[usize]); 6] = [
    ("Point", &[]),
    ("MultiPoint", &[1]),
    ("LineString", &[2]),
    ("MultiLineString", &[1, 2]),
    ("Polygon", &[1, 4]),
    ("MultiPolygon", &[1, 1, 4]),
];

/// A PostgreSQL JSON path (strict mode) that is true when the value has the shape of
/// one of [`SHAPES`].
fn shape_path() -> String {
    let mut alternatives = Vec::new();
    for (kind, mins) in SHAPES {
        let levels = |k: usize| format!("$.coordinates{}", "[*]".repeat(k));
        let first = format!("$.coordinates{}", "[0]".repeat(mins.len()));
        let mut bad = Vec::new();
        for (k, min) in mins.iter().enumerate() {
            bad.push(format!("exists({} ? (@.type() != \"array\" || @.size() < {min}))", levels(k)));
        }
        bad.push(format!("exists({} ? (@.type() != \"array\" || @.size() != {first}.size()))", levels(mins.len())));
        bad.push(format!("exists({} ? (@.type() != \"number\"))", levels(mins.len() + 1)));
        alternatives.push(format!(
            "($.type == \"{kind}\" && !({}) && ({first}.size() == 2 || {first}.size() == 3))",
            bad.join(" || ")
        ));
    }
    format!("strict {}", alternatives.join(" || "))
}

impl Compiler {
    /// A geometry condition on the JSON value `x`: unknown unless `x` is a geometry.
    pub(super) fn geometry(&mut self, c: &Condition, x: &str) -> Result<Frag> {
        let value = c.geo_value().map_err(Error::Spec)?;
        if self.f == Flavor::MariaDb {
            return Err(Error::Spec(EvalError::Unsupported(c.op)));
        }
        let pg = self.f == Flavor::Postgres;
        let alias = self.alias();
        let geom = format!("{alias}.g");
        let kinds = SHAPES.iter().map(|(k, _)| format!("'{k}'")).collect::<Vec<_>>().join(", ");
        // The field's geometry, NULL unless it has a geometry's shape.
        let parse = if pg {
            format!(
                "CASE WHEN jsonb_path_match({x}, '{}', '{{}}', true) THEN ST_SetSRID(ST_GeomFromGeoJSON(\
                 jsonb_build_object('type', {x} -> 'type', 'coordinates', {x} -> 'coordinates')), 4326) END",
                shape_path()
            )
        } else {
            format!(
                "CASE WHEN json_type({x}) = 'object' AND ({x} ->> '$.type') IN ({kinds}) THEN SetSRID(GeomFromGeoJSON(\
                 json_object('type', {x} ->> '$.type', 'coordinates', json({x} -> '$.coordinates'))), 4326) END"
            )
        };
        let (valid, [xmin, xmax, ymin, ymax]) = if pg {
            (format!("(ST_IsValidDetail({geom})).valid"), ["ST_XMin", "ST_XMax", "ST_YMin", "ST_YMax"])
        } else {
            (format!("ST_IsValid({geom}) = 1"), ["MbrMinX", "MbrMaxX", "MbrMinY", "MbrMaxY"])
        };
        let mut known = format!(
            "{valid} AND {xmin}({geom}) >= -180 AND {xmax}({geom}) <= 180 AND {ymin}({geom}) >= -90 AND {ymax}({geom}) <= 90"
        );
        let real = if pg { "CAST(? AS double precision)" } else { "CAST(? AS REAL)" };
        let mut pred = Frag::default();
        match value {
            GeoValue::Shape(geojson) => {
                let function = match c.op {
                    Op::Intersects => "ST_Intersects",
                    Op::Within => "ST_Within",
                    Op::ContainsGeom => "ST_Contains",
                    Op::Touches => "ST_Touches",
                    Op::Crosses => "ST_Crosses",
                    Op::Overlaps => "ST_Overlaps",
                    Op::Disjoint => "ST_Disjoint",
                    _ => "ST_Equals",
                };
                let shape = if pg {
                    "ST_SetSRID(ST_GeomFromGeoJSON(CAST(? AS text)), 4326)"
                } else {
                    "SetSRID(GeomFromGeoJSON(?), 4326)"
                };
                // SpatiaLite answers -1 when it cannot decide: unknown, as in memory.
                let (before, after) = if pg { ("", "") } else { ("CASE ", " WHEN 1 THEN 1 WHEN 0 THEN 0 END") };
                pred.sql = format!("{before}{function}({geom}, {shape}){after}");
                pred.args.push(Arg::Text(geojson));
            }
            GeoValue::Near { lon, lat, metres } => {
                let kind = if pg { format!("({x} ->> 'type')") } else { format!("({x} ->> '$.type')") };
                known = format!("{known} AND {kind} = 'Point'");
                let cmp = if c.op == Op::Dwithin { "<=" } else { "<" };
                pred.sql = if pg {
                    format!(
                        "ST_Distance({geom}::geography, ST_SetSRID(ST_MakePoint({real}, {real}), 4326)::geography) {cmp} {real}"
                    )
                } else {
                    format!("ST_Distance({geom}, MakePoint({real}, {real}, 4326), 1) {cmp} {real}")
                };
                pred.args.extend([Arg::Real(lon), Arg::Real(lat), Arg::Real(metres)]);
            }
            GeoValue::Box([x0, y0, x1, y1]) => {
                pred.sql = format!(
                    "({xmin}({geom}) <= {real} AND {xmax}({geom}) >= {real} AND {ymin}({geom}) <= {real} AND {ymax}({geom}) >= {real})"
                );
                pred.args.extend([Arg::Real(x1), Arg::Real(x0), Arg::Real(y1), Arg::Real(y0)]);
            }
            _ => return Err(Error::Spec(EvalError::Unsupported(c.op))),
        }
        let mut f = Frag::new(format!("(SELECT CASE WHEN {known} THEN "));
        f.append(pred).push(&format!(" END FROM (SELECT {parse} AS g) AS {alias})"));
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use cqrs_ddd::spec::Spec;

    #[test]
    fn geometry_values_are_parameters() {
        let hostile = "x'); DROP TABLE documents; --";
        let spec = Spec::leaf("g", Op::Within, json!({"type": "Point", "coordinates": [1, 2], hostile: hostile}))
            | Spec::leaf("g", Op::Dwithin, json!([{"type": "Point", "coordinates": [1, 2]}, 10]))
            | Spec::leaf("g", Op::BboxIntersects, json!([0, 0, 1, 1]));
        for f in [Flavor::Postgres, Flavor::Sqlite] {
            let frag = Compiler::new(f).spec(&spec).unwrap();
            assert!(!frag.sql.contains("DROP"), "{f:?}: {}", frag.sql);
            // Placeholders are the `?` outside quotes (PostgreSQL's JSON path has filters).
            let outside: String = frag.sql.split('\'').step_by(2).collect();
            assert_eq!(outside.matches('?').count(), frag.args.len(), "{f:?}: {}", frag.sql);
        }
    }

    #[test]
    fn mariadb_refuses_geometry_and_every_backend_refuses_a_bad_value() {
        let spec = Spec::leaf("g", Op::Intersects, json!({"type": "Point", "coordinates": [1, 2]}));
        let err = Compiler::new(Flavor::MariaDb).spec(&spec).unwrap_err();
        assert!(matches!(err, Error::Spec(EvalError::Unsupported(Op::Intersects))), "{err}");
        for f in [Flavor::Postgres, Flavor::Sqlite, Flavor::MariaDb] {
            let err = Compiler::new(f).spec(&Spec::leaf("g", Op::Dwithin, json!([1, 2]))).unwrap_err();
            assert!(matches!(err, Error::Spec(EvalError::BadValue { .. })), "{f:?}: {err}");
        }
    }
}
