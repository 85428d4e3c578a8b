//! Specifications compiled to SQL agree with the in-memory evaluator: random documents,
//! random specifications, orderings, keyset pages and aggregations, on every database.

use std::fmt::Write as _;

use cqrs_ddd::Error;
use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::spec::{AggFn, Aggregation, Dir, FieldKind, Index, Op, QueryOptions, Spec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use super::TestDb;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(Value::from),
        (-3i64..4).prop_map(|i| json!(f64::from(i32::try_from(i).unwrap()) + 0.5)),
        prop::sample::select(vec!["", "a", "A", "ab", "b%", "a_b", "ba", "x!y", "*?[", "Ab c", "b"])
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn maybe(v: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => v.prop_map(Some)]
}

fn document() -> impl Strategy<Value = Value> {
    let list = || prop::collection::vec(scalar(), 0..4).prop_map(Value::from);
    let item = maybe(scalar()).prop_map(|k| match k {
        Some(k) => json!({"k": k}),
        None => json!({}),
    });
    let object = (maybe(scalar()), prop::collection::vec(scalar(), 0..3)).prop_map(|(a, k)| {
        let mut o = serde_json::Map::new();
        if let Some(a) = a {
            o.insert("a".into(), a);
        }
        o.insert("k".into(), Value::from(k));
        Value::Object(o)
    });
    (
        maybe(scalar()),
        maybe(scalar()),
        maybe(prop_oneof![list(), scalar()]),
        maybe(prop_oneof![3 => object, 1 => list()]),
        maybe(prop_oneof![3 => prop::collection::vec(item, 0..4).prop_map(Value::from), 1 => scalar()]),
    )
        .prop_map(|(n, s, t, o, items)| {
            let mut doc = serde_json::Map::new();
            for (name, v) in [("n", n), ("s", s), ("t", t), ("o", o), ("items", items)] {
                if let Some(v) = v {
                    doc.insert(name.into(), v);
                }
            }
            Value::Object(doc)
        })
}

const ATTRS: [&str; 10] = ["n", "s", "t", "o", "o.a", "items[*].k", "t[*]", "missing", "o.k[*]", "items"];

const OPS: [Op; 32] = [
    Op::Eq,
    Op::Ne,
    Op::Gt,
    Op::Lt,
    Op::Ge,
    Op::Le,
    Op::In,
    Op::NotIn,
    Op::All,
    Op::Between,
    Op::NotBetween,
    Op::Like,
    Op::NotLike,
    Op::Ilike,
    Op::Contains,
    Op::Icontains,
    Op::StartsWith,
    Op::IstartsWith,
    Op::EndsWith,
    Op::IendsWith,
    Op::Regex,
    Op::Iregex,
    Op::IsNull,
    Op::IsNotNull,
    Op::IsEmpty,
    Op::IsNotEmpty,
    Op::JsonContains,
    Op::JsonContainedBy,
    Op::JsonHasKey,
    Op::JsonHasAny,
    Op::JsonHasAll,
    Op::JsonPathExists,
];

fn value_for(op: Op) -> BoxedStrategy<Value> {
    let text = |pool: Vec<&'static str>| prop::sample::select(pool).prop_map(Value::from).boxed();
    match op {
        Op::In | Op::NotIn | Op::All => prop::collection::vec(prop_oneof![4 => scalar(), 1 => Just(Value::Null)], 0..4)
            .prop_map(Value::from)
            .boxed(),
        Op::Between | Op::NotBetween => (scalar(), scalar()).prop_map(|(a, b)| json!([a, b])).boxed(),
        Op::Like | Op::NotLike | Op::Ilike => {
            text(vec!["a%", "%b", "_b", "a\\%", "%", "A%", "a_b", "b\\%", "%!%", "*%"])
        }
        Op::Contains | Op::Icontains | Op::StartsWith | Op::IstartsWith | Op::EndsWith | Op::IendsWith => {
            text(vec!["a", "b%", "_", "!", "*", "A", "", "?["])
        }
        Op::Regex | Op::Iregex => text(vec!["a", "^a", "b$", "a.b", "[ab]", "A"]),
        Op::IsNull | Op::IsNotNull | Op::IsEmpty | Op::IsNotEmpty => Just(Value::Null).boxed(),
        Op::JsonContains | Op::JsonContainedBy => prop_oneof![
            scalar(),
            scalar().prop_map(|v| json!({ "a": v })),
            prop::collection::vec(scalar(), 0..3).prop_map(Value::from),
            (scalar(), prop::collection::vec(scalar(), 0..2)).prop_map(|(a, k)| json!({"a": a, "k": k})),
            Just(json!({})),
            Just(json!([[1]])),
        ]
        .boxed(),
        Op::JsonHasKey => text(vec!["a", "k", "x", "b"]),
        Op::JsonHasAny | Op::JsonHasAll => {
            prop::collection::vec(prop::sample::select(vec!["a", "k", "x", "b"]), 0..3).prop_map(Value::from).boxed()
        }
        Op::JsonPathExists => text(vec!["$.a", "$.k[0]", "$[1]", "$", "a", "$.k[2]"]),
        _ => scalar().boxed(),
    }
}

fn leaf() -> impl Strategy<Value = Spec> {
    let good = (prop::sample::select(ATTRS.to_vec()), prop::sample::select(OPS.to_vec()))
        .prop_flat_map(|(attr, op)| value_for(op).prop_map(move |v| Spec::leaf(attr, op, v)));
    // Now and then a condition both must refuse: a bad value, a bad path, a bad pattern.
    let bad = prop::sample::select(vec![
        Spec::leaf("n", Op::Between, json!([1])),
        Spec::leaf("n", Op::In, 1),
        Spec::leaf("s", Op::Regex, "("),
        Spec::leaf("s", Op::Like, 1),
        Spec::leaf("o..a", Op::Eq, 1),
        Spec::leaf("o", Op::JsonPathExists, "$.a[x]"),
        Spec::leaf("o", Op::JsonHasAny, json!([1])),
    ]);
    prop_oneof![40 => good, 1 => bad]
}

fn spec() -> impl Strategy<Value = Spec> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Spec::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Spec::Or),
            inner.prop_map(|s| Spec::Not(Box::new(s))),
        ]
    })
}

fn order() -> impl Strategy<Value = Vec<(String, Dir, FieldKind)>> {
    let key = (
        prop::sample::select(vec!["n", "s", "o.a", "t"]),
        prop::sample::select(vec![Dir::Asc, Dir::Desc]),
        prop::sample::select(vec![FieldKind::Any, FieldKind::Text, FieldKind::Number, FieldKind::Bool]),
    )
        .prop_map(|(f, d, k)| (f.to_owned(), d, k));
    prop::collection::vec(key, 0..3)
}

fn aggregate() -> impl Strategy<Value = Aggregation> {
    (prop::option::of(prop::sample::select(vec!["s", "n", "o.a"])), prop::option::of(leaf())).prop_map(
        |(group, filter)| {
            let mut a = Aggregation::new()
                .count("docs")
                .count_of("n", "with_n")
                .sum("n", "sum")
                .avg("n", "avg")
                .min("n", "min")
                .max("n", "max")
                .measure(AggFn::Sum, Some("o.a".into()), "sum_a");
            if let Some(g) = group {
                a = a.group_by(g);
            }
            if let Some(f) = filter {
                a = a.filter(f);
            }
            a
        },
    )
}

#[derive(Debug)]
struct Case {
    docs: Vec<Value>,
    specs: Vec<Spec>,
    order: Vec<(String, Dir, FieldKind)>,
    aggregate: Aggregation,
}

fn case() -> impl Strategy<Value = Case> {
    (prop::collection::vec(document(), 0..14), prop::collection::vec(spec(), 4), order(), aggregate())
        .prop_map(|(docs, specs, order, aggregate)| Case { docs, specs, order, aggregate })
}

fn ids(found: &[(String, Value)]) -> Vec<String> {
    found.iter().map(|(id, _)| id.clone()).collect()
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9,
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| close(v, w)),
        _ => a == b,
    }
}

/// `cases` random collections, each with random filters, an ordering walked by keyset
/// pages and an aggregation; the database's answers must be the evaluator's.
pub async fn random_specifications_agree_with_memory<D: TestDb>(db: &D, cases: u32) {
    let store = db.store().await;
    // The same cases on every run (`SPEC_SEED` picks others).
    let seed: u64 = std::env::var("SPEC_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let strategy = case();
    let tenant = format!("spec-{}", uuid::Uuid::now_v7().simple());
    let (mut checked, mut selective, mut refused) = (0u32, 0u32, 0u32);
    for n in 0..cases {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let collection = format!("c{n}");
        let docs: Vec<(String, Value)> =
            case.docs.iter().enumerate().map(|(i, d)| (format!("d{i:02}"), d.clone())).collect();
        let mut tx = store.begin().await.unwrap();
        for (id, doc) in &docs {
            tx.put_doc(Some(&tenant), &collection, id, doc.to_string()).await.unwrap();
        }
        tx.commit().await.unwrap();
        let mut report = String::new();
        let _ = writeln!(report, "case {n}; documents:");
        for (id, d) in &docs {
            let _ = writeln!(report, "  {id}: {d}");
        }

        for spec in &case.specs {
            let q = QueryOptions::new().filter(spec.clone());
            let expected = q.apply(docs.clone());
            let found = store.find_of(Some(&tenant), &collection, &q).await;
            let counted = store.count_of(Some(&tenant), &collection, &q).await;
            let wire = serde_json::to_string(spec).unwrap();
            match expected {
                Ok(expected) => {
                    let found = found.unwrap_or_else(|e| panic!("{report}spec {wire}: the store failed: {e}"));
                    let found: Vec<String> = found.into_iter().map(|d| d.id).collect();
                    assert_eq!(found, ids(&expected), "{report}spec {wire}");
                    assert_eq!(counted.unwrap(), expected.len() as u64, "{report}count of {wire}");
                    checked += 1;
                    selective += u32::from(!expected.is_empty() && expected.len() < docs.len());
                }
                Err(e) => {
                    assert!(
                        matches!(found, Err(Error::Spec(_))),
                        "{report}spec {wire}: memory refused ({e}), the store gave {found:?}"
                    );
                    assert!(matches!(counted, Err(Error::Spec(_))), "{report}count {wire}");
                    refused += 1;
                }
            }
        }

        // The ordering, in full, then walked three at a time by keyset cursors.
        let mut q = QueryOptions::new();
        for (field, dir, kind) in &case.order {
            q = q.order_by_kind(field.clone(), *dir, *kind);
        }
        let expected = ids(&q.apply(docs.clone()).unwrap());
        let found: Vec<String> =
            store.find_of(Some(&tenant), &collection, &q).await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(found, expected, "{report}order {:?}", case.order);
        let mut walked = Vec::new();
        let mut page_q = q.clone().limit(3);
        loop {
            let page = store.page_of(Some(&tenant), &collection, &page_q).await.unwrap();
            walked.extend(page.items.into_iter().map(|d| d.id));
            match page.next {
                Some(cursor) => page_q = q.clone().limit(3).after(&cursor).unwrap(),
                None => break,
            }
            assert!(walked.len() <= docs.len(), "{report}keyset pages do not end: {walked:?}");
        }
        assert_eq!(walked, expected, "{report}keyset pages of {:?}", case.order);
        let offset = q.clone().page(4, 2);
        let found: Vec<String> =
            store.find_of(Some(&tenant), &collection, &offset).await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(found, ids(&offset.apply(docs.clone()).unwrap()), "{report}offset page of {:?}", case.order);

        let values: Vec<Value> = docs.iter().map(|(_, d)| d.clone()).collect();
        match case.aggregate.apply(values.iter()) {
            Ok(expected) => {
                let found = store.aggregate_of(Some(&tenant), &collection, &case.aggregate).await.unwrap();
                assert!(
                    close(&Value::from(found.clone()), &Value::from(expected.clone())),
                    "{report}aggregate {:?}:\n  store  {found:?}\n  memory {expected:?}",
                    case.aggregate
                );
            }
            Err(_) => {
                let found = store.aggregate_of(Some(&tenant), &collection, &case.aggregate).await;
                assert!(matches!(found, Err(Error::Spec(_))), "{report}aggregate {:?}", case.aggregate);
            }
        }
    }
    // The generator must keep producing specifications that tell documents apart.
    eprintln!("{checked} specifications compared, {selective} selective, {refused} refused alike");
    assert!(
        selective * 5 >= checked && refused > 0,
        "too few selective ({selective} of {checked}) or refused ({refused}) specifications"
    );
}

/// Declared indexes are built once, and the store still answers the same.
pub async fn declared_indexes_are_built_and_queries_still_agree<D: TestDb>(db: &D) {
    let store = db.store().await;
    let tenant = format!("ix-{}", uuid::Uuid::now_v7().simple());
    let index = Index::on("status", FieldKind::Text).then("title", FieldKind::Text);
    store.ensure_index("books", &index).await.unwrap();
    store.ensure_index("books", &index).await.unwrap();
    store.ensure_index("books", &Index::on("copies", FieldKind::Number)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for (id, doc) in [
        ("1", json!({"status": "available", "title": "b", "copies": 1})),
        ("2", json!({"status": "lent", "title": "a", "copies": 3})),
        ("3", json!({"status": "available", "title": "a", "copies": "x"})),
    ] {
        tx.put_doc(Some(&tenant), "books", id, doc.to_string()).await.unwrap();
    }
    tx.commit().await.unwrap();
    let q = QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "available")).order_by_kind(
        "title",
        Dir::Asc,
        FieldKind::Text,
    );
    let found: Vec<String> =
        store.find_of(Some(&tenant), "books", &q).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(found, ["3", "1"]);
    let q = QueryOptions::new().filter(Spec::leaf("copies", Op::Ge, 1)).order_by_kind(
        "copies",
        Dir::Desc,
        FieldKind::Number,
    );
    let found: Vec<String> =
        store.find_of(Some(&tenant), "books", &q).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(found, ["2", "1"]);
}

/// The "available books" query of a collection of `n` documents is served by the index
/// its read model declares (the database's own plan says so).
pub async fn the_available_books_query_uses_its_declared_index<D: TestDb>(db: &D, n: usize)
where
    D::Store: Explain,
{
    let store = db.store().await;
    let tenant = "library";
    store.ensure_index("books", &Index::on("status", FieldKind::Text).then("title", FieldKind::Text)).await.unwrap();
    let statuses = ["available", "lent", "lost", "repair", "reserved", "sold", "gone", "draft", "archived", "hold"];
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut tx = store.begin().await.unwrap();
        let docs = chunk
            .iter()
            .map(|i| {
                (
                    format!("b{i:06}"),
                    json!({"title": format!("t{}", i * 7919 % n), "status": statuses[i % 10]}).to_string(),
                )
            })
            .collect();
        tx.put_docs(Some(tenant), "books", docs).await.unwrap();
        tx.commit().await.unwrap();
    }
    db.exec("ANALYZE {t}documents").await;
    let q = QueryOptions::new()
        .filter(Spec::leaf("status", Op::Eq, "available"))
        .order_by_kind("title", Dir::Asc, FieldKind::Text)
        .limit(20);
    let plan = store.explain_of(Some(tenant), "books", &q).await;
    assert!(plan.contains("documents_ix_"), "the plan does not use the declared index:\n{plan}");
    let found = store.find_of(Some(tenant), "books", &q).await.unwrap();
    assert_eq!(found.len(), 20);
    assert_eq!(
        store
            .count_of(Some(tenant), "books", &QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "available")))
            .await
            .unwrap(),
        n as u64 / 10
    );
}

/// A store that shows its query plans.
#[cqrs_ddd::ports::async_trait]
pub trait Explain {
    async fn explain_of(&self, tenant: Option<&str>, collection: &str, q: &QueryOptions) -> String;
}

#[cqrs_ddd::ports::async_trait]
impl<Db: cqrs_ddd_sqlx::Dialect> Explain for cqrs_ddd_sqlx::SqlStore<Db> {
    async fn explain_of(&self, tenant: Option<&str>, collection: &str, q: &QueryOptions) -> String {
        self.explain(tenant, collection, q).await.unwrap()
    }
}
