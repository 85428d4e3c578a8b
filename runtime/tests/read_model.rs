//! `#[derive(ReadModel)]` end to end: typed fields at the paths serde writes, specs
//! evaluated in memory over serialized documents, the allow-list behind HTTP filter
//! strings, and the declared indexes.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_ddd::spec::{
    Dir, FieldKind, FilterError, Index, Op, Order, QueryOptions, ReadModel, Spec, TextField, parse_query,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, ReadModel)]
#[serde(rename_all = "camelCase")]
#[read_model(collection = "orders", index(status, placed_at))]
struct Purchase {
    #[read_model(filter(eq, in_), select)]
    id: Uuid,
    #[read_model(filter(eq, ne, in_, not_in), sort, select)]
    status: String,
    #[read_model(filter, sort)]
    placed_at: DateTime<Utc>,
    #[read_model(filter(gt, ge, lt, le, between), sort, index)]
    total_cents: i64,
    #[read_model(filter(eq))]
    paid: bool,
    #[serde(rename = "note")]
    #[read_model(filter(icontains, is_null))]
    customer_note: Option<String>,
    #[read_model(filter(all, is_empty))]
    tags: Vec<String>,
    #[read_model(filter(json_has_key, json_contains))]
    extra: BTreeMap<String, Value>,
    shipping: Address,
    lines: Vec<Line>,
    #[serde(skip)]
    #[allow(dead_code)]
    scratch: Scratch,
}

/// Not a field: skipped by serde, so it needs no `Field`.
#[derive(Debug, Clone, Default)]
struct Scratch;

#[derive(Debug, Clone, Serialize, Deserialize, ReadModel)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Address {
    #[read_model(filter, sort, select, index)]
    city: String,
    #[read_model(filter(starts_with))]
    post_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ReadModel)]
#[serde(rename_all = "kebab-case")]
struct Line {
    #[read_model(filter(eq, in_), sort, select, index)]
    sku: String,
    #[read_model(filter(ge))]
    unit_count: u32,
}

fn order(n: u8, status: &str, total_cents: i64, city: &str, lines: &[(&str, u32)]) -> Purchase {
    Purchase {
        id: Uuid::from_u128(u128::from(n)),
        status: status.to_owned(),
        placed_at: Utc.with_ymd_and_hms(2024, 1, n.into(), 12, 0, 0).unwrap(),
        total_cents,
        paid: n.is_multiple_of(2),
        customer_note: (n == 1).then(|| "Leave at the DOOR".to_owned()),
        tags: if n == 1 { vec!["gift".into(), "fragile".into()] } else { vec![] },
        extra: if n == 2 { BTreeMap::from([("coupon".to_owned(), json!("SPRING"))]) } else { BTreeMap::new() },
        shipping: Address { city: city.to_owned(), post_code: format!("{n}0100") },
        lines: lines.iter().map(|(sku, unit_count)| Line { sku: (*sku).to_owned(), unit_count: *unit_count }).collect(),
        scratch: Scratch,
    }
}

/// The documents as the store holds them: the orders serialized by serde.
fn documents() -> Vec<(String, Value)> {
    [
        order(1, "placed", 2_500, "Athens", &[("book", 1), ("pen", 3)]),
        order(2, "shipped", 12_000, "Patras", &[("lamp", 1)]),
        order(3, "placed", 700, "Athens", &[]),
        order(4, "cancelled", 4_000, "Volos", &[("pen", 10)]),
    ]
    .into_iter()
    .map(|o| (o.id.to_string(), serde_json::to_value(o).unwrap()))
    .collect()
}

fn order_key(field: &str, dir: Dir, kind: FieldKind) -> Order {
    Order { field: field.to_owned(), dir, kind }
}

fn found(query: &QueryOptions) -> Vec<u8> {
    query
        .apply(documents())
        .unwrap()
        .into_iter()
        .map(|(id, _)| u8::try_from(Uuid::parse_str(&id).unwrap().as_u128()).unwrap())
        .collect()
}

fn matching(spec: Spec) -> Vec<u8> {
    found(&QueryOptions::new().filter(spec))
}

#[test]
fn handles_sit_at_the_paths_serde_writes() {
    let f = Purchase::fields();
    let doc = &documents()[0].1;
    for path in [
        f.id.path(),
        f.status.path(),
        f.placed_at.path(),
        f.total_cents.path(),
        f.paid.path(),
        f.customer_note.path(),
        f.tags.path(),
        f.extra.path(),
        f.shipping.city.path(),
        f.shipping.post_code.path(),
    ] {
        let keys: Vec<&str> = path.split('.').collect();
        let value = keys.iter().try_fold(doc, |v, k| v.get(k));
        assert!(value.is_some(), "`{path}` is not in {doc}");
    }
    assert_eq!(f.total_cents.path(), "totalCents");
    assert_eq!(f.customer_note.path(), "note");
    assert_eq!(f.shipping.post_code.path(), "shipping.POST_CODE");
    assert_eq!(f.lines.each().unit_count.path(), "lines[*].unit-count");
    assert_eq!(f.shipping.path(), "shipping");
}

#[test]
fn specs_from_fields_select_the_matching_documents() {
    let f = Purchase::fields();
    assert_eq!(matching(f.status.eq("placed")), [1, 3]);
    assert_eq!(matching(f.status.not_in(["placed", "cancelled"])), [2]);
    assert_eq!(matching(f.total_cents.between(1_000, 5_000)), [1, 4]);
    assert_eq!(matching(f.total_cents.gt(1_000) & f.paid.eq(true)), [2, 4]);
    assert_eq!(matching(f.id.eq(Uuid::from_u128(3).to_string())), [3]);
    assert_eq!(matching(f.placed_at.ge("2024-01-03T00:00:00Z")), [3, 4]);
    assert_eq!(matching(f.customer_note.icontains("door")), [1]);
    assert_eq!(matching(f.customer_note.is_null()), [2, 3, 4]);
    assert_eq!(matching(f.tags.all(["fragile", "gift"])), [1]);
    assert_eq!(matching(f.tags.is_empty()), [2, 3, 4]);
    assert_eq!(matching(f.tags.each().eq("gift")), [1]);
    assert_eq!(matching(f.extra.json_has_key("coupon")), [2]);
    assert_eq!(matching(f.shipping.city.eq("Athens") | f.shipping.post_code.starts_with("4")), [1, 3, 4]);
    assert_eq!(matching(f.lines.each().sku.eq("pen")), [1, 4]);
    assert_eq!(matching(f.lines.each().unit_count.ge(5)), [4]);
    assert_eq!(matching(f.lines.is_empty()), [3]);
    assert_eq!(matching(f.lines.json_contains(json!([{"sku": "lamp"}]))), [2]);
    // An order without lines holds no sku: unknown, so neither side of a negation matches.
    assert_eq!(matching(!f.lines.each().sku.eq("pen")), [2]);
}

#[test]
fn orders_use_the_kind_of_the_field() {
    let f = Purchase::fields();
    assert_eq!(f.total_cents.desc(), order_key("totalCents", Dir::Desc, FieldKind::Number));
    assert_eq!(f.shipping.city.asc().kind, FieldKind::Text);
    let by_total = QueryOptions::new().filter(f.status.ne("cancelled"));
    let by_total = QueryOptions { order: vec![f.total_cents.desc()], ..by_total };
    assert_eq!(found(&by_total), [2, 1, 3]);
    let by_city_then_date =
        QueryOptions { order: vec![f.shipping.city.asc(), f.placed_at.desc()], ..QueryOptions::new() };
    assert_eq!(found(&by_city_then_date), [3, 1, 2, 4]);
}

#[test]
fn the_allow_list_accepts_flagged_fields_and_operators() {
    let allow = Purchase::allow_list();
    for filter in [
        "status:in:placed,shipped",
        "status:ne:cancelled",
        "totalCents:between:1000,5000",
        "paid:eq:true",
        "note:icontains:door",
        "note:is_null:true",
        "placedAt:gte:2024-01-02",
        "tags:all:gift",
        "extra:json_has_key:coupon",
        "shipping.CITY:eq:Athens",
        "shipping.POST_CODE:startswith:1",
        "lines[*].sku:in:pen,book",
        "lines[*].unit-count:gte:2",
    ] {
        let query = parse_query([("filter", filter)], &allow);
        assert!(query.is_ok(), "`{filter}` was refused: {query:?}");
    }
    let query = parse_query(
        [("filter", "status:eq:placed"), ("sort", "-totalCents,shipping.CITY"), ("fields", "id,status,shipping.CITY")],
        &allow,
    )
    .unwrap();
    assert_eq!(
        query.order,
        [order_key("totalCents", Dir::Desc, FieldKind::Number), order_key("shipping.CITY", Dir::Asc, FieldKind::Text)]
    );
    let picked = query.apply(documents()).unwrap();
    assert_eq!(picked.len(), 2);
    assert_eq!(picked[0].1, json!({"id": Uuid::from_u128(1), "status": "placed", "shipping": {"CITY": "Athens"}}));
}

#[test]
fn the_allow_list_refuses_what_is_not_flagged() {
    let allow = Purchase::allow_list();
    let refused = |params: &[(&'static str, &'static str)]| parse_query(params.iter().copied(), &allow).unwrap_err();
    assert!(matches!(refused(&[("filter", "status:like:pl%")]), FilterError::OpNotAllowed { op: Op::Like, .. }));
    assert!(matches!(refused(&[("filter", "totalCents:eq:700")]), FilterError::OpNotAllowed { op: Op::Eq, .. }));
    assert!(matches!(
        refused(&[("filter", "stauts:eq:placed")]),
        FilterError::FieldNotFilterable { suggestions, .. } if suggestions == ["status"]
    ));
    // Fields without `filter` (`shipping` and `lines` themselves), and Rust names that are
    // not the stored ones (`customerNote` is stored as `note`), are not filterable.
    for filter in ["shipping:is_null:true", "lines:is_empty:true", "customerNote:is_null:true"] {
        assert!(matches!(refused(&[("filter", filter)]), FilterError::FieldNotFilterable { .. }), "{filter}");
    }
    // Inside a list only `filter` counts: no single value to sort by or select.
    assert!(matches!(refused(&[("sort", "lines[*].sku")]), FilterError::FieldNotSortable { .. }));
    assert!(matches!(refused(&[("fields", "lines[*].sku")]), FilterError::FieldNotSelectable { .. }));
    assert!(matches!(refused(&[("sort", "paid")]), FilterError::FieldNotSortable { .. }));
    assert!(matches!(refused(&[("fields", "totalCents")]), FilterError::FieldNotSelectable { .. }));
}

#[test]
fn indexes_list_the_struct_then_the_fields_then_nested_types() {
    assert_eq!(
        Purchase::indexes(),
        [
            Index::on("status", FieldKind::Text).then("placedAt", FieldKind::Text),
            Index::on("totalCents", FieldKind::Number),
            Index::on("shipping.CITY", FieldKind::Text),
        ]
    );
    assert_eq!(Purchase::COLLECTION, "orders");
}

#[test]
fn handles_are_copies_of_one_interned_path() {
    let (a, b) = (Purchase::fields(), Purchase::fields());
    assert!(std::ptr::eq(a.status.path(), b.status.path()));
    let status: TextField = *a.status;
    assert_eq!(status.eq("placed"), Spec::leaf("status", Op::Eq, "placed"));
}

/// A category tree: a read model that holds a list of itself.
#[derive(Serialize, ReadModel)]
#[read_model(collection = "categories")]
struct Category {
    #[read_model(filter, sort)]
    name: String,
    children: Vec<Category>,
}

#[test]
fn a_read_model_may_hold_a_list_of_itself() {
    let f = Category::fields();
    let grandchild = f.children.each().children.each().name;
    assert_eq!(grandchild.path(), "children[*].children[*].name");
    let tree =
        json!({"name": "books", "children": [{"name": "poetry", "children": [{"name": "epic", "children": []}]}]});
    assert!(grandchild.eq("epic").matches(&tree).unwrap());
    assert!(!f.children.each().name.eq("epic").matches(&tree).unwrap());

    // Allow-list entries follow the lists eight deep, then stop.
    let allow = Category::allow_list();
    let at_depth = |depth: usize| format!("{}name:eq:x", "children[*].".repeat(depth));
    for depth in 0..=8 {
        assert!(parse_query([("filter", at_depth(depth).as_str())], &allow).is_ok(), "depth {depth}");
    }
    assert!(parse_query([("filter", at_depth(9).as_str())], &allow).is_err());
    assert!(parse_query([("sort", "children[*].name")], &allow).is_err());
}

#[derive(Debug, Clone, Serialize, Deserialize, ReadModel)]
#[read_model(collection = "tickets", owner = reporter, tenant_required)]
struct Ticket {
    #[serde(rename = "by")]
    reporter: String,
    #[read_model(filter)]
    state: String,
}

/// A read model that shows each caller their own documents, and only inside a tenant.
#[test]
fn an_owned_read_model_adds_the_owner_and_requires_a_tenant() {
    use cqrs_ddd::RequestContext;
    use cqrs_ddd::spec::parse_query_in;
    let ada = RequestContext { principal: Some("ada".into()), ..RequestContext::new().with_tenant("acme") };
    let q = parse_query_in([("filter", "state:eq:open")], &Ticket::allow_list(), &ada).unwrap();
    assert!(q.matches(&json!({"by": "ada", "state": "open"})).unwrap());
    assert!(!q.matches(&json!({"by": "bob", "state": "open"})).unwrap());
    let no_tenant = RequestContext { principal: Some("ada".into()), ..RequestContext::new() };
    assert_eq!(parse_query_in([], &Ticket::allow_list(), &no_tenant).unwrap_err(), FilterError::NoTenant);
    let anonymous = RequestContext::new().with_tenant("acme");
    assert_eq!(parse_query_in([], &Ticket::allow_list(), &anonymous).unwrap_err(), FilterError::NoPrincipal);
    // The owner is not something a caller can filter away: it is not in the allow-list.
    assert!(parse_query_in([("filter", "by:eq:bob")], &Ticket::allow_list(), &ada).is_err());
}
