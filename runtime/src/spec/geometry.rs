//! The geometry operators in memory (the `geo` feature): GeoJSON read into the `geo`
//! crate's types, the eight DE-9IM predicates on the plane of the coordinates, geodesic
//! distances in metres on the WGS84 ellipsoid, and bounding boxes.
//!
//! The rules of what counts as a geometry are written once here; the SQL store applies
//! the same ones in the database (see [`super`]'s module docs, "Geometry").

use std::panic::{AssertUnwindSafe, catch_unwind};

use geo::{BoundingRect, Coord, Distance, Geodesic, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon};
use geo::{Point, Polygon, Relate, Validation};
use serde_json::{Value, json};

use super::ast::Condition;
use super::eval::{EvalError, Truth, bad};
use super::op::Op;

/// The value of a geometry condition, checked, in the one form every backend reads.
///
/// [`Condition::geo_value`] reads it; a store that compiles geometry conditions to SQL
/// binds these numbers and this GeoJSON, so it refuses exactly the values the in-memory
/// evaluator refuses.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GeoValue {
    /// The geometry of the eight predicates, as GeoJSON text with two coordinates per
    /// position (longitude, latitude; a third one, a height, is dropped).
    Shape(String),
    /// The point and the distance in metres of `distance_lt` and `dwithin`.
    Near {
        /// Longitude, in degrees.
        lon: f64,
        /// Latitude, in degrees.
        lat: f64,
        /// The distance on the WGS84 ellipsoid, in metres (finite, not negative).
        metres: f64,
    },
    /// The box of `bbox_intersects`: `[min_lon, min_lat, max_lon, max_lat]`.
    Box([f64; 4]),
}

impl Condition {
    /// The checked value of a geometry condition; [`EvalError::BadValue`] says what is
    /// wrong with it, and [`EvalError::Unsupported`] is the answer for any other operator.
    pub fn geo_value(&self) -> Result<GeoValue, EvalError> {
        Ok(match Query::of(self)? {
            Query::Relation(_, g) => GeoValue::Shape(geojson(&g).to_string()),
            Query::Distance { from, metres, .. } => GeoValue::Near { lon: from.x(), lat: from.y(), metres },
            Query::Box(b) => GeoValue::Box(b),
        })
    }
}

/// A geometry condition's value, read once and tested against each document's field.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// One of the eight predicates, with the value's geometry.
    Relation(Op, Geometry<f64>),
    /// `distance_lt` or `dwithin`.
    Distance { op: Op, from: Point<f64>, metres: f64 },
    /// `bbox_intersects`: `[min_lon, min_lat, max_lon, max_lat]`.
    Box([f64; 4]),
}

impl Query {
    /// Reads the value of `c`, or says what is wrong with it.
    pub(crate) fn of(c: &Condition) -> Result<Query, EvalError> {
        match c.op {
            Op::Intersects
            | Op::Within
            | Op::ContainsGeom
            | Op::Touches
            | Op::Crosses
            | Op::Overlaps
            | Op::Disjoint
            | Op::GeomEquals => {
                let g = geometry(&c.val).map_err(|reason| bad(c, format!("takes a GeoJSON geometry: {reason}")))?;
                Ok(Query::Relation(c.op, g))
            }
            Op::DistanceLt | Op::Dwithin => {
                let shape = "takes `[point, metres]` or `{\"geometry\": point, \"distance\": metres}`, a GeoJSON \
                             point and a distance in metres";
                let (g, d) = match &c.val {
                    Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
                    Value::Object(o) if o.len() == 2 => match (o.get("geometry"), o.get("distance")) {
                        (Some(g), Some(d)) => (g, d),
                        _ => return Err(bad(c, shape)),
                    },
                    _ => return Err(bad(c, shape)),
                };
                let Geometry::Point(from) = geometry(g).map_err(|reason| bad(c, format!("{shape}: {reason}")))? else {
                    return Err(bad(c, "measures from a point (distances to other geometries are not supported)"));
                };
                let metres = d
                    .as_f64()
                    .filter(|m| *m >= 0.0)
                    .ok_or_else(|| bad(c, format!("{shape}: the distance is a number of metres, not negative")))?;
                Ok(Query::Distance { op: c.op, from, metres })
            }
            Op::BboxIntersects => {
                let numbers: Option<Vec<f64>> = c.val.as_array().and_then(|l| l.iter().map(Value::as_f64).collect());
                let b = match numbers.as_deref() {
                    Some(&[x0, y0, x1, y1]) => [x0, y0, x1, y1],
                    _ => return Err(bad(c, "takes a box, `[min_lon, min_lat, max_lon, max_lat]`")),
                };
                if b[0] > b[2] || b[1] > b[3] {
                    return Err(bad(c, "takes a box whose minimums are not above its maximums"));
                }
                if !(in_range(b[0], b[1]) && in_range(b[2], b[3])) {
                    return Err(bad(c, RANGE));
                }
                Ok(Query::Box(b))
            }
            other => Err(EvalError::Unsupported(other)),
        }
    }

    /// The truth of the condition for a field: unknown when the field is missing, null or
    /// not a geometry (or, for a distance, not a point).
    pub(crate) fn test(&self, field: Option<&Value>) -> Truth {
        let Some(field) = field.and_then(|v| geometry(v).ok()) else { return Truth::Unknown };
        match self {
            Query::Relation(op, value) => {
                // `relate` has no failure mode but a panic on geometry it cannot node;
                // such a field is one this build cannot decide, not a crash.
                let Ok(m) = catch_unwind(AssertUnwindSafe(|| field.relate(value))) else { return Truth::Unknown };
                Truth::from_bool(match op {
                    Op::Intersects => m.is_intersects(),
                    Op::Within => m.is_within(),
                    Op::ContainsGeom => m.is_contains(),
                    Op::Touches => m.is_touches(),
                    Op::Crosses => m.is_crosses(),
                    Op::Overlaps => m.is_overlaps(),
                    Op::Disjoint => m.is_disjoint(),
                    _ => m.is_equal_topo(),
                })
            }
            Query::Distance { op, from, metres } => {
                let Geometry::Point(p) = field else { return Truth::Unknown };
                let d = Geodesic.distance(p, *from);
                Truth::from_bool(if *op == Op::Dwithin { d <= *metres } else { d < *metres })
            }
            Query::Box([x0, y0, x1, y1]) => match field.bounding_rect() {
                Some(r) => {
                    Truth::from_bool(r.min().x <= *x1 && r.max().x >= *x0 && r.min().y <= *y1 && r.max().y >= *y0)
                }
                None => Truth::Unknown,
            },
        }
    }
}

const RANGE: &str = "a longitude is within [-180, 180] and a latitude within [-90, 90] (WGS84 degrees)";

fn in_range(lon: f64, lat: f64) -> bool {
    (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)
}

/// Reads a GeoJSON geometry: a `Point`, `LineString`, `Polygon`, `MultiPoint`,
/// `MultiLineString` or `MultiPolygon` whose positions are two or three numbers (the
/// same count throughout), in the WGS84 range, that is valid in the OGC sense (closed,
/// simple rings, holes inside their shell...). Anything else says why it is not one.
pub(crate) fn geometry(v: &Value) -> Result<Geometry<f64>, String> {
    let o = v.as_object().ok_or("a geometry is a JSON object")?;
    let kind = o.get("type").and_then(Value::as_str).ok_or("a geometry has a `type`")?;
    let coordinates = o.get("coordinates");
    let mut dims = None;
    let mut read = Reader { dims: &mut dims };
    let g = match (kind, coordinates) {
        ("GeometryCollection", _) => return Err("a `GeometryCollection` is not supported".to_owned()),
        (_, None) => return Err(format!("a `{kind}` has `coordinates`")),
        ("Point", Some(c)) => Geometry::Point(Point(read.position(c)?)),
        ("MultiPoint", Some(c)) => Geometry::MultiPoint(MultiPoint(read.list(c, 1, |r, p| r.position(p).map(Point))?)),
        ("LineString", Some(c)) => Geometry::LineString(read.line(c)?),
        ("MultiLineString", Some(c)) => Geometry::MultiLineString(MultiLineString(read.list(c, 1, Reader::line)?)),
        ("Polygon", Some(c)) => Geometry::Polygon(read.polygon(c)?),
        ("MultiPolygon", Some(c)) => Geometry::MultiPolygon(MultiPolygon(read.list(c, 1, Reader::polygon)?)),
        (other, _) => {
            return Err(format!(
                "`{}` is not a geometry type (`Point`, `LineString`, `Polygon`, `MultiPoint`, `MultiLineString`, \
                 `MultiPolygon`)",
                other.escape_default()
            ));
        }
    };
    g.check_validation().map_err(|e| format!("not a valid `{kind}`: {e}"))?;
    Ok(g)
}

/// Reads nested coordinate lists, keeping the number of coordinates per position.
struct Reader<'a> {
    dims: &'a mut Option<usize>,
}

impl Reader<'_> {
    fn position(&mut self, v: &Value) -> Result<Coord<f64>, String> {
        let numbers: Option<Vec<f64>> = v.as_array().and_then(|l| l.iter().map(Value::as_f64).collect());
        let numbers = numbers.filter(|n| (2..=3).contains(&n.len())).ok_or("a position is two or three numbers")?;
        if *self.dims.get_or_insert(numbers.len()) != numbers.len() {
            return Err("every position of a geometry has the same number of coordinates".to_owned());
        }
        if !in_range(numbers[0], numbers[1]) {
            return Err(RANGE.to_owned());
        }
        Ok(Coord { x: numbers[0], y: numbers[1] })
    }

    /// A list of at least `min` items, each read by `item`.
    fn list<T>(
        &mut self,
        v: &Value,
        min: usize,
        item: impl Fn(&mut Self, &Value) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let l =
            v.as_array().filter(|l| l.len() >= min).ok_or_else(|| format!("a list of at least {min} is expected"))?;
        l.iter().map(|i| item(self, i)).collect()
    }

    fn line(&mut self, v: &Value) -> Result<LineString<f64>, String> {
        self.list(v, 2, Reader::position).map(LineString).map_err(|e| format!("a line: {e}"))
    }

    fn polygon(&mut self, v: &Value) -> Result<Polygon<f64>, String> {
        let mut rings = self.list(v, 1, |r, ring| {
            let coords = r.list(ring, 4, Reader::position).map_err(|e| format!("a ring: {e}"))?;
            if coords.first() != coords.last() {
                return Err("a ring ends where it starts".to_owned());
            }
            Ok(LineString(coords))
        })?;
        let shell = rings.remove(0);
        Ok(Polygon::new(shell, rings))
    }
}

/// The GeoJSON of a geometry read by [`geometry`] (two coordinates per position).
fn geojson(g: &Geometry<f64>) -> Value {
    fn pos(c: &Coord<f64>) -> Value {
        json!([c.x, c.y])
    }
    fn line(l: &LineString<f64>) -> Value {
        Value::from(l.0.iter().map(pos).collect::<Vec<_>>())
    }
    fn polygon(p: &Polygon<f64>) -> Value {
        Value::from(std::iter::once(p.exterior()).chain(p.interiors()).map(line).collect::<Vec<_>>())
    }
    let (kind, coordinates) = match g {
        Geometry::Point(p) => ("Point", pos(&p.0)),
        Geometry::MultiPoint(m) => ("MultiPoint", Value::from(m.0.iter().map(|p| pos(&p.0)).collect::<Vec<_>>())),
        Geometry::LineString(l) => ("LineString", line(l)),
        Geometry::MultiLineString(m) => ("MultiLineString", Value::from(m.0.iter().map(line).collect::<Vec<_>>())),
        Geometry::Polygon(p) => ("Polygon", polygon(p)),
        Geometry::MultiPolygon(m) => ("MultiPolygon", Value::from(m.0.iter().map(polygon).collect::<Vec<_>>())),
        // `geometry` makes no other kind.
        _ => ("GeometryCollection", Value::Array(Vec::new())),
    };
    json!({"type": kind, "coordinates": coordinates})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::Spec;

    const NEW_YORK: [f64; 2] = [-74.006, 40.7128];
    const LONDON: [f64; 2] = [-0.1278, 51.5074];
    const PARIS: [f64; 2] = [2.3522, 48.8566];
    const TIMES_SQUARE: [f64; 2] = [-73.9855, 40.758];

    fn point(p: [f64; 2]) -> Value {
        json!({"type": "Point", "coordinates": p})
    }

    /// A rough outline of Manhattan.
    fn manhattan() -> Value {
        json!({"type": "Polygon", "coordinates": [[
            [-74.02, 40.70], [-73.97, 40.70], [-73.91, 40.80], [-73.93, 40.88], [-74.02, 40.75], [-74.02, 40.70]
        ]]})
    }

    fn square(x: f64, y: f64, side: f64) -> Value {
        json!({"type": "Polygon", "coordinates": [[
            [x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]
        ]]})
    }

    fn truth(field: Value, op: Op, val: Value) -> Truth {
        Spec::leaf("g", op, val).evaluate(&json!({ "g": field })).expect("evaluates")
    }

    #[test]
    fn predicates_follow_de9im_on_known_shapes() {
        use Truth::{False, True};
        let crossing = json!({"type": "LineString", "coordinates": [[-74.10, 40.75], [-73.90, 40.75]]});
        let cases = [
            (point(TIMES_SQUARE), Op::Within, manhattan(), True),
            (point(TIMES_SQUARE), Op::Intersects, manhattan(), True),
            (point(NEW_YORK), Op::Within, manhattan(), True),
            (point(LONDON), Op::Within, manhattan(), False),
            (point(LONDON), Op::Disjoint, manhattan(), True),
            (manhattan(), Op::ContainsGeom, point(TIMES_SQUARE), True),
            (manhattan(), Op::ContainsGeom, point(PARIS), False),
            (crossing.clone(), Op::Crosses, manhattan(), True),
            (crossing.clone(), Op::Within, manhattan(), False),
            (crossing.clone(), Op::Overlaps, manhattan(), False),
            (square(0.0, 0.0, 1.0), Op::Touches, square(1.0, 0.0, 1.0), True),
            (square(0.0, 0.0, 1.0), Op::Intersects, square(1.0, 0.0, 1.0), True),
            (square(0.0, 0.0, 1.0), Op::Overlaps, square(1.0, 0.0, 1.0), False),
            (square(0.0, 0.0, 2.0), Op::Overlaps, square(1.0, 1.0, 2.0), True),
            (square(0.0, 0.0, 2.0), Op::Touches, square(1.0, 1.0, 2.0), False),
            (square(0.0, 0.0, 4.0), Op::ContainsGeom, square(1.0, 1.0, 1.0), True),
            (square(1.0, 1.0, 1.0), Op::Within, square(0.0, 0.0, 4.0), True),
            (square(0.0, 0.0, 1.0), Op::Disjoint, square(3.0, 3.0, 1.0), True),
            // The same square, its ring starting at another corner: topologically equal.
            (
                square(0.0, 0.0, 1.0),
                Op::GeomEquals,
                json!({"type": "Polygon", "coordinates": [[[1, 1], [0, 1], [0, 0], [1, 0], [1, 1]]]}),
                True,
            ),
            (square(0.0, 0.0, 1.0), Op::GeomEquals, square(0.0, 0.0, 2.0), False),
            // A point on the boundary touches; it is not within.
            (point([1.0, 0.5]), Op::Touches, square(0.0, 0.0, 1.0), True),
            (point([1.0, 0.5]), Op::Within, square(0.0, 0.0, 1.0), False),
            (
                json!({"type": "MultiPoint", "coordinates": [[0.5, 0.5], [5, 5]]}),
                Op::Crosses,
                square(0.0, 0.0, 1.0),
                True,
            ),
        ];
        for (field, op, val, expected) in cases {
            assert_eq!(truth(field.clone(), op, val.clone()), expected, "{field} {op} {val}");
        }
    }

    #[test]
    fn distances_are_geodesic_metres() {
        let near = |p: [f64; 2], m: f64| json!([point(p), m]);
        // New York to London is 5 585 234 m on the WGS84 ellipsoid; London to Paris 343 923 m.
        assert_eq!(truth(point(NEW_YORK), Op::Dwithin, near(LONDON, 5_586_000.0)), Truth::True);
        assert_eq!(truth(point(NEW_YORK), Op::Dwithin, near(LONDON, 5_585_000.0)), Truth::False);
        assert_eq!(truth(point(LONDON), Op::DistanceLt, near(PARIS, 344_000.0)), Truth::True);
        assert_eq!(truth(point(LONDON), Op::DistanceLt, near(PARIS, 343_900.0)), Truth::False);
        // The object form, and the bounds: `dwithin` is `<=`, `distance_lt` is `<`.
        let here = json!({"geometry": point(PARIS), "distance": 0});
        assert_eq!(truth(point(PARIS), Op::Dwithin, here.clone()), Truth::True);
        assert_eq!(truth(point(PARIS), Op::DistanceLt, here), Truth::False);
        // A field that is not a point has no distance here: unknown.
        assert_eq!(truth(manhattan(), Op::Dwithin, near(NEW_YORK, 1e7)), Truth::Unknown);
    }

    #[test]
    fn boxes_compare_bounding_boxes_edges_included() {
        let europe = json!([-10, 35, 30, 60]);
        assert_eq!(truth(point(LONDON), Op::BboxIntersects, europe.clone()), Truth::True);
        assert_eq!(truth(point(NEW_YORK), Op::BboxIntersects, europe), Truth::False);
        assert_eq!(truth(square(0.0, 0.0, 1.0), Op::BboxIntersects, json!([1, 1, 2, 2])), Truth::True);
        assert_eq!(truth(square(0.0, 0.0, 1.0), Op::BboxIntersects, json!([1.5, 0, 2, 2])), Truth::False);
        // The line's box holds the point although the line does not pass through it.
        let diagonal = json!({"type": "LineString", "coordinates": [[0, 0], [2, 2]]});
        assert_eq!(truth(diagonal.clone(), Op::BboxIntersects, json!([1.5, 0.1, 1.6, 0.2])), Truth::True);
        assert_eq!(truth(diagonal, Op::Intersects, square(1.5, 0.1, 0.1)), Truth::False);
    }

    #[test]
    fn a_field_that_is_not_a_valid_geometry_is_unknown() {
        let fields = [
            json!(null),
            json!("POINT(1 2)"),
            json!([1, 2]),
            json!({"a": 1}),
            json!({"type": "Point", "coordinates": [1, "a"]}),
            json!({"type": "Point", "coordinates": [1, 2, 3, 4]}),
            json!({"type": "Point", "coordinates": []}),
            json!({"type": "Point", "coordinates": [200, 10]}),
            json!({"type": "LineString", "coordinates": [1, 2]}),
            json!({"type": "LineString", "coordinates": [[1, 2]]}),
            json!({"type": "LineString", "coordinates": [[1, 2], [1, 2]]}),
            json!({"type": "LineString", "coordinates": [[1, 2], [3, 4, 5]]}),
            json!({"type": "MultiPoint", "coordinates": []}),
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            // A bow tie: its ring crosses itself.
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
            json!({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]}),
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}),
        ];
        for field in fields {
            for op in Op::ALL.into_iter().filter(|op| op.is_geometry()) {
                let val = match op {
                    Op::DistanceLt | Op::Dwithin => json!([point([1.0, 2.0]), 1e7]),
                    Op::BboxIntersects => json!([-180, -90, 180, 90]),
                    _ => square(-10.0, -10.0, 40.0),
                };
                assert_eq!(truth(field.clone(), op, val.clone()), Truth::Unknown, "{field} {op}");
                assert_eq!((!Spec::leaf("g", op, val)).evaluate(&json!({ "g": field })).unwrap(), Truth::Unknown);
            }
        }
        assert_eq!(Spec::leaf("g", Op::Intersects, point(LONDON)).evaluate(&json!({})).unwrap(), Truth::Unknown);
    }

    #[test]
    fn three_coordinates_are_read_and_the_height_ignored() {
        let high = json!({"type": "Point", "coordinates": [0.5, 0.5, 100]});
        assert_eq!(truth(high.clone(), Op::Within, square(0.0, 0.0, 1.0)), Truth::True);
        assert_eq!(truth(high, Op::GeomEquals, point([0.5, 0.5])), Truth::True);
    }

    #[test]
    fn bad_values_are_refused_before_any_document_is_read() {
        let bad = [
            (Op::Intersects, json!({"type": "Point"})),
            (Op::Within, json!("POINT(1 2)")),
            (Op::Within, json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]})),
            (Op::Touches, json!({"type": "GeometryCollection", "geometries": []})),
            (Op::Crosses, json!({"type": "Point", "coordinates": [0, 91]})),
            (Op::Dwithin, point(LONDON)),
            (Op::Dwithin, json!([point(LONDON)])),
            (Op::Dwithin, json!([point(LONDON), -1])),
            (Op::Dwithin, json!([point(LONDON), "10 km"])),
            (Op::DistanceLt, json!([manhattan(), 10])),
            (Op::DistanceLt, json!({"geometry": point(LONDON)})),
            (Op::BboxIntersects, json!([0, 0, 1])),
            (Op::BboxIntersects, json!([1, 0, 0, 1])),
            (Op::BboxIntersects, json!([0, 0, 1, 100])),
        ];
        for (op, val) in bad {
            let spec = Spec::leaf("g", op, val.clone());
            for doc in [json!({}), json!({"g": point(LONDON)})] {
                assert!(matches!(spec.evaluate(&doc), Err(EvalError::BadValue { .. })), "{op} {val}");
            }
        }
    }

    #[test]
    fn values_are_given_in_one_form() {
        let c = |op, val| Condition { attr: "g".into(), op, val, value_type: None };
        assert_eq!(
            c(Op::Within, json!({"type": "Point", "coordinates": [1, 2.5, 7], "bbox": [1]})).geo_value().unwrap(),
            GeoValue::Shape(r#"{"coordinates":[1.0,2.5],"type":"Point"}"#.to_owned())
        );
        assert_eq!(
            c(Op::Dwithin, json!({"distance": 10, "geometry": point(PARIS)})).geo_value().unwrap(),
            GeoValue::Near { lon: PARIS[0], lat: PARIS[1], metres: 10.0 }
        );
        assert_eq!(
            c(Op::BboxIntersects, json!([0, 1, 2, 3])).geo_value().unwrap(),
            GeoValue::Box([0.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(c(Op::Eq, json!(1)).geo_value(), Err(EvalError::Unsupported(Op::Eq)));
    }
}
