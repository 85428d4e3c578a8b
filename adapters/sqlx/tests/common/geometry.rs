//! The geometry operators answer the same on every backend: a table of fixtures of all
//! eleven (true, false, and unknown for fields that are missing or not geometries), then
//! random points, boxes and segments against random values, memory against the store.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::spec::{Op, QueryOptions, Spec, Truth};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

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

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
}

fn square(x: f64, y: f64, side: f64) -> Value {
    rect(x, y, x + side, y + side)
}

/// Documents whose `g` is a point.
fn points() -> Vec<(&'static str, Value)> {
    vec![
        ("a_new_york", point(NEW_YORK)),
        ("b_london", point(LONDON)),
        ("c_paris", point(PARIS)),
        ("d_times_square", point(TIMES_SQUARE)),
        // A height is read and ignored.
        ("k_high", json!({"type": "Point", "coordinates": [0.5, 0.5, 100]})),
        // Members other than `type` and `coordinates` are ignored.
        (
            "l_paris_with_members",
            json!({"type": "Point", "coordinates": PARIS, "bbox": [2.3522, 48.8566, 2.3522, 48.8566], "name": "Paris"}),
        ),
        ("m_on_an_edge", point([1.0, 0.5])),
    ]
}

/// Documents whose `g` is another geometry.
fn shapes() -> Vec<(&'static str, Value)> {
    vec![
        ("e_manhattan", manhattan()),
        ("f_across_manhattan", json!({"type": "LineString", "coordinates": [[-74.10, 40.75], [-73.90, 40.75]]})),
        ("g_square", square(0.0, 0.0, 1.0)),
        ("h_square_beside", square(1.0, 0.0, 1.0)),
        ("i_square_big", square(0.0, 0.0, 2.0)),
        ("j_two_points", json!({"type": "MultiPoint", "coordinates": [[0.5, 0.5], [5, 5]]})),
    ]
}

/// Documents whose `g` is missing or not a geometry: unknown for every operator.
fn not_geometries() -> Vec<(&'static str, Value)> {
    vec![
        ("u_missing", json!({})),
        ("u_null", json!({"g": null})),
        ("u_text", json!({"g": "POINT(1 2)"})),
        ("u_list", json!({"g": [1, 2]})),
        ("u_number", json!({"g": 7})),
        ("u_no_type", json!({"g": {"coordinates": [1, 2]}})),
        ("u_text_coordinate", json!({"g": {"type": "Point", "coordinates": [1, "a"]}})),
        ("u_four_coordinates", json!({"g": {"type": "Point", "coordinates": [1, 2, 3, 4]}})),
        ("u_mixed_dimensions", json!({"g": {"type": "LineString", "coordinates": [[1, 2], [3, 4, 5]]}})),
        ("u_flat_line", json!({"g": {"type": "LineString", "coordinates": [1, 2]}})),
        ("u_one_point_line", json!({"g": {"type": "LineString", "coordinates": [[1, 2]]}})),
        ("u_repeated_point_line", json!({"g": {"type": "LineString", "coordinates": [[1, 2], [1, 2]]}})),
        ("u_empty_multipoint", json!({"g": {"type": "MultiPoint", "coordinates": []}})),
        ("u_open_ring", json!({"g": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}})),
        ("u_bow_tie", json!({"g": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}})),
        ("u_out_of_range", json!({"g": {"type": "Point", "coordinates": [200, 10]}})),
        ("u_collection", json!({"g": {"type": "GeometryCollection", "geometries": [point(PARIS)]}})),
        ("u_feature", json!({"g": {"type": "Feature", "geometry": point(PARIS), "properties": {}}})),
        ("u_lower_case_type", json!({"g": {"type": "point", "coordinates": PARIS}})),
    ]
}

fn documents() -> Vec<(String, Value)> {
    let mut docs: Vec<(String, Value)> =
        points().into_iter().chain(shapes()).map(|(id, g)| (id.to_owned(), json!({ "g": g }))).collect();
    docs.extend(not_geometries().into_iter().map(|(id, d)| (id.to_owned(), d)));
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    docs
}

/// A condition and the documents it holds for; of the others, the ones it is false for
/// are the geometries (the points, for a distance), the rest are unknown.
fn fixtures() -> Vec<(Op, Value, Vec<&'static str>)> {
    let near = |p: [f64; 2], m: f64| json!([point(p), m]);
    vec![
        (Op::Within, manhattan(), vec!["a_new_york", "d_times_square", "e_manhattan"]),
        (Op::Intersects, manhattan(), vec!["a_new_york", "d_times_square", "e_manhattan", "f_across_manhattan"]),
        (Op::ContainsGeom, point(TIMES_SQUARE), vec!["d_times_square", "e_manhattan"]),
        (Op::ContainsGeom, point([0.5, 0.5]), vec!["g_square", "i_square_big", "j_two_points", "k_high"]),
        (Op::Touches, square(1.0, 0.0, 1.0), vec!["g_square", "m_on_an_edge"]),
        (Op::Crosses, manhattan(), vec!["f_across_manhattan"]),
        (Op::Crosses, square(0.0, 0.0, 1.0), vec!["j_two_points"]),
        (Op::Overlaps, square(1.0, 1.0, 2.0), vec!["i_square_big"]),
        (
            Op::Disjoint,
            manhattan(),
            vec![
                "b_london",
                "c_paris",
                "g_square",
                "h_square_beside",
                "i_square_big",
                "j_two_points",
                "k_high",
                "l_paris_with_members",
                "m_on_an_edge",
            ],
        ),
        // The same square, its ring starting at another corner and turning the other way.
        (
            Op::GeomEquals,
            json!({"type": "Polygon", "coordinates": [[[1, 1], [0, 1], [0, 0], [1, 0], [1, 1]]]}),
            vec!["g_square"],
        ),
        (Op::GeomEquals, point([0.5, 0.5]), vec!["k_high"]),
        // London to Paris is 343 923 m; New York to London 5 585 234 m.
        (Op::DistanceLt, near(LONDON, 344_000.0), vec!["b_london", "c_paris", "l_paris_with_members"]),
        (Op::DistanceLt, near(LONDON, 343_900.0), vec!["b_london"]),
        (
            Op::Dwithin,
            json!({"geometry": point(NEW_YORK), "distance": 5_586_000}),
            vec!["a_new_york", "b_london", "d_times_square"],
        ),
        // `dwithin` includes its bound, `distance_lt` does not.
        (Op::Dwithin, near(PARIS, 0.0), vec!["c_paris", "l_paris_with_members"]),
        (Op::DistanceLt, near(PARIS, 0.0), vec![]),
        (Op::BboxIntersects, json!([-10, 35, 30, 60]), vec!["b_london", "c_paris", "l_paris_with_members"]),
        (Op::BboxIntersects, json!([1.5, 0.5, 3, 3]), vec!["h_square_beside", "i_square_big", "j_two_points"]),
        // Edges included: the big square's corner is the box's.
        (Op::BboxIntersects, json!([2, 2, 3, 3]), vec!["i_square_big", "j_two_points"]),
        (Op::BboxIntersects, json!([2.5, 2, 3, 3]), vec!["j_two_points"]),
    ]
}

fn ids(found: Vec<cqrs_ddd::ports::Document>) -> Vec<String> {
    found.into_iter().map(|d| d.id).collect()
}

async fn put(store: &impl ProjectionStore, tenant: &str, collection: &str, docs: &[(String, Value)]) {
    let mut tx = store.begin().await.unwrap();
    tx.put_docs(Some(tenant), collection, docs.iter().map(|(id, d)| (id.clone(), d.to_string())).collect())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Every fixture answered by the evaluator and by `store`: the documents a condition
/// holds for, those its negation holds for (where it is false), and the count.
pub async fn geometry_operators_answer_the_fixtures<S: ProjectionStore>(store: &S) {
    let tenant = format!("geo-{}", uuid::Uuid::now_v7().simple());
    let docs = documents();
    put(store, &tenant, "places", &docs).await;
    let point_ids: BTreeSet<&str> = points().iter().map(|(id, _)| *id).collect();
    let geometry_ids: BTreeSet<&str> = point_ids.iter().copied().chain(shapes().iter().map(|(id, _)| *id)).collect();
    let mut seen = BTreeSet::new();
    for (op, val, holds) in fixtures() {
        seen.insert(op);
        let decided = if matches!(op, Op::DistanceLt | Op::Dwithin) { &point_ids } else { &geometry_ids };
        let spec = Spec::leaf("g", op, val.clone());
        let label = format!("`g` {op} {val}");
        for (id, doc) in &docs {
            let expected = if holds.contains(&id.as_str()) {
                Truth::True
            } else if decided.contains(id.as_str()) {
                Truth::False
            } else {
                Truth::Unknown
            };
            assert_eq!(spec.evaluate(doc).unwrap(), expected, "memory: {label} for {id}: {doc}");
        }
        let is_true: Vec<String> = holds.iter().map(|s| (*s).to_owned()).collect();
        let is_false: Vec<String> = decided.iter().filter(|id| !holds.contains(id)).map(|s| (*s).to_owned()).collect();
        for (spec, expected) in [(spec.clone(), &is_true), (!spec, &is_false)] {
            let q = QueryOptions::new().filter(spec);
            let found = store.find_of(Some(&tenant), "places", &q).await.unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(&ids(found), expected, "store: {label}");
            assert_eq!(store.count_of(Some(&tenant), "places", &q).await.unwrap(), expected.len() as u64, "{label}");
        }
    }
    assert_eq!(seen.len(), 11, "every geometry operator has a fixture");
}

/// A bad value is refused before any row is read, alike by memory and the store.
pub async fn bad_geometry_values_are_refused_alike<S: ProjectionStore>(store: &S) {
    let tenant = format!("geo-{}", uuid::Uuid::now_v7().simple());
    put(store, &tenant, "places", &documents()).await;
    for (op, val) in [
        (Op::Within, json!({"type": "Point"})),
        (Op::Intersects, json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]})),
        (Op::Dwithin, point(PARIS)),
        (Op::DistanceLt, json!([manhattan(), 10])),
        (Op::Dwithin, json!([point(PARIS), -1])),
        (Op::BboxIntersects, json!([1, 0, 0, 1])),
    ] {
        let q = QueryOptions::new().filter(Spec::leaf("g", op, val.clone()));
        assert!(q.apply(documents()).is_err(), "memory takes {op} {val}");
        let found = store.find_of(Some(&tenant), "places", &q).await;
        assert!(
            matches!(found, Err(cqrs_ddd::Error::Spec(cqrs_ddd::spec::EvalError::BadValue { .. }))),
            "{op} {val}: {found:?}"
        );
    }
}

/// A coordinate on a grid of quarter degrees, so that points fall exactly on edges and
/// corners and every backend sees the same numbers.
fn grid(rng: &mut StdRng, max: i32) -> f64 {
    f64::from(rng.random_range(-max..=max)) / 4.0
}

/// A point, a box (of sides up to `side` quarter degrees), a segment or two points, on
/// the grid.
fn random_geometry(rng: &mut StdRng, side: i32) -> Value {
    // Positions in quarter degrees, compared exactly before they become degrees.
    let at = |rng: &mut StdRng| [rng.random_range(-8..=8), rng.random_range(-8..=8)];
    let deg = |q: [i32; 2]| [f64::from(q[0]) / 4.0, f64::from(q[1]) / 4.0];
    match rng.random_range(0..5) {
        0 | 1 => point(deg(at(rng))),
        2 => {
            let [x, y] = at(rng);
            let (w, h) = (rng.random_range(1..=side), rng.random_range(1..=side));
            let [x0, y0] = deg([x, y]);
            let [x1, y1] = deg([x + w, y + h]);
            rect(x0, y0, x1, y1)
        }
        3 => {
            let (a, mut b) = (at(rng), at(rng));
            if a == b {
                b[0] += 1;
            }
            json!({"type": "LineString", "coordinates": [deg(a), deg(b)]})
        }
        _ => json!({"type": "MultiPoint", "coordinates": [deg(at(rng)), deg(at(rng))]}),
    }
}

/// `cases` random collections of points, boxes, segments and point pairs, each asked
/// random conditions of every operator, and their negations; the store must find what
/// memory finds. Distances
/// within a metre of a bound are left out (backends round the last digits differently).
pub async fn random_geometry_conditions_agree_with_memory<S: ProjectionStore>(store: &S, cases: u32) {
    let tenant = format!("geo-{}", uuid::Uuid::now_v7().simple());
    let seed: u64 = std::env::var("GEO_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let ops: Vec<Op> = Op::ALL.into_iter().filter(|op| op.is_geometry()).collect();
    let (mut compared, mut selective) = (0u32, 0u32);
    for n in 0..cases {
        let collection = format!("c{n}");
        let docs: Vec<(String, Value)> =
            (0..12).map(|i| (format!("d{i:02}"), json!({ "g": random_geometry(&mut rng, 6) }))).collect();
        put(store, &tenant, &collection, &docs).await;
        for _ in 0..8 {
            let op = ops[rng.random_range(0..ops.len())];
            let val = match op {
                Op::DistanceLt | Op::Dwithin => {
                    let from = [grid(&mut rng, 8), grid(&mut rng, 8)];
                    let metres = f64::from(rng.random_range(0..300_000));
                    json!([point(from), metres])
                }
                Op::BboxIntersects => {
                    let (x, y) = (grid(&mut rng, 8), grid(&mut rng, 8));
                    json!([x, y, x + grid(&mut rng, 8).abs(), y + grid(&mut rng, 8).abs()])
                }
                _ => random_geometry(&mut rng, 12),
            };
            let spec = Spec::leaf("g", op, val.clone());
            if matches!(op, Op::DistanceLt | Op::Dwithin) && near_a_bound(&docs, &val) {
                continue;
            }
            let report = || {
                let mut r = format!("case {n} (GEO_SEED={seed}): `g` {op} {val}; documents:\n");
                for (id, d) in &docs {
                    let _ = writeln!(r, "  {id}: {d}");
                }
                r
            };
            for spec in [spec.clone(), !spec] {
                let q = QueryOptions::new().filter(spec);
                let expected: Vec<String> = q.apply(docs.clone()).unwrap().into_iter().map(|(id, _)| id).collect();
                let found =
                    store.find_of(Some(&tenant), &collection, &q).await.unwrap_or_else(|e| panic!("{}{e}", report()));
                assert_eq!(ids(found), expected, "{}", report());
                compared += 1;
                selective += u32::from(!expected.is_empty() && expected.len() < docs.len());
            }
        }
    }
    eprintln!("{compared} geometry conditions compared, {selective} selective");
    assert!(selective * 4 >= compared, "too few selective conditions ({selective} of {compared})");
}

/// Whether a document's point lies within a metre of the distance of a condition.
fn near_a_bound(docs: &[(String, Value)], val: &Value) -> bool {
    let metres = val[1].as_f64().unwrap();
    docs.iter().any(|(_, d)| {
        let spec = |m: f64| Spec::leaf("g", Op::Dwithin, json!([val[0], m]));
        spec(metres + 1.0).evaluate(d).unwrap() != spec((metres - 1.0).max(0.0)).evaluate(d).unwrap()
            || (metres < 1.0 && spec(0.0).evaluate(d).unwrap() == Truth::True)
    })
}
