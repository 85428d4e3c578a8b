//! Every option of `#[derive(ReadModel)]`, and what it generates, checked at run time.
use std::collections::HashMap;

use cqrs_ddd::spec::{Dir, FieldKind, Index, Op, QueryOptions, ReadModel, Spec, parse_query};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, ReadModel)]
#[serde(rename_all = "camelCase")]
#[read_model(collection = "books", index(status), index(status, title))]
pub struct Book {
    #[read_model(filter, sort, select)]
    title: String,
    #[read_model(filter(eq, in_), select)]
    status: String,
    #[read_model(filter(gt, lt, between), sort, index)]
    copies_left: u32,
    #[serde(rename = "isLent")]
    #[read_model(filter(eq))]
    lent: bool,
    price: Option<f64>,
    #[read_model(filter)]
    tags: Vec<String>,
    attrs: HashMap<String, String>,
    address: Address,
    items: Vec<Item>,
    #[read_model(skip)]
    cache: NotAField,
    #[serde(skip)]
    scratch: NotAField,
}

#[derive(Default)]
pub struct NotAField;

impl Serialize for NotAField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for NotAField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| NotAField)
    }
}

/// A nested type: no collection, flags counted under its path.
#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(crate = ::cqrs_ddd)]
pub struct Address {
    #[read_model(filter, sort, index)]
    city: String,
    zip: Option<String>,
}

#[derive(Serialize, Deserialize, ReadModel)]
pub struct Item {
    #[read_model(filter(eq), sort)]
    sku: String,
    qty: u16,
}

fn main() {
    let f = Book::fields();
    assert_eq!(Book::COLLECTION, "books");
    assert_eq!(f.copies_left.path(), "copiesLeft");
    assert_eq!(f.lent.path(), "isLent");
    assert_eq!(f.address.city.path(), "address.city");
    assert_eq!(f.address.path(), "address");
    assert_eq!(f.items.each().sku.path(), "items[*].sku");

    let docs = vec![
        (
            "1".to_owned(),
            json!({"title": "Iliad", "status": "available", "copiesLeft": 2, "isLent": false, "price": 9.5,
                   "tags": ["epic"], "attrs": {"lang": "grc"}, "address": {"city": "Athens", "zip": null},
                   "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}]}),
        ),
        (
            "2".to_owned(),
            json!({"title": "Odyssey", "status": "lent", "copiesLeft": 0, "isLent": true,
                   "tags": [], "attrs": {}, "address": {"city": "Ithaca"}, "items": []}),
        ),
    ];
    let ids = |spec: Spec| -> Vec<String> {
        QueryOptions::new().filter(spec).apply(docs.clone()).unwrap().into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(ids(f.status.in_(["available", "reserved"])), ["1"]);
    assert_eq!(ids(f.copies_left.between(1, 5) & f.lent.eq(false)), ["1"]);
    assert_eq!(ids(f.price.is_null()), ["2"]);
    assert_eq!(ids(f.tags.is_empty()), ["2"]);
    assert_eq!(ids(f.attrs.json_has_key("lang")), ["1"]);
    assert_eq!(ids(f.address.city.istarts_with("ITH")), ["2"]);
    assert_eq!(ids(f.address.zip.is_null()), ["1", "2"]);
    assert_eq!(ids(f.items.each().qty.ge(3)), ["1"]);
    // An empty list holds no sku: unknown, so neither the condition nor its negation matches.
    assert_eq!(ids(!f.items.each().sku.eq("c")), ["1"]);
    let by_copies = QueryOptions::new().order_by_kind(f.copies_left.path(), Dir::Desc, f.copies_left.desc().kind);
    assert_eq!(by_copies.apply(docs.clone()).unwrap()[0].0, "1");

    let allow = Book::allow_list();
    for accepted in [
        "title:like:Il%",
        "status:in:available,lent",
        "copiesLeft:between:1,3",
        "isLent:eq:true",
        "tags:all:epic",
        "address.city:eq:Athens",
        "items[*].sku:eq:a",
    ] {
        assert!(parse_query([("filter", accepted)], &allow).is_ok(), "{accepted}");
    }
    for refused in ["status:like:a%", "copiesLeft:eq:1", "price:gt:1", "attrs:json_has_key:a", "items[*].qty:eq:1"] {
        assert!(parse_query([("filter", refused)], &allow).is_err(), "{refused}");
    }
    let q = parse_query([("sort", "-copiesLeft,address.city"), ("fields", "title,status")], &allow).unwrap();
    assert_eq!(q.order[0].kind, FieldKind::Number);
    assert_eq!(q.order[1].kind, FieldKind::Text);
    assert!(parse_query([("sort", "items[*].sku")], &allow).is_err());
    assert!(parse_query([("fields", "copiesLeft")], &allow).is_err());

    assert_eq!(
        Book::indexes(),
        [
            Index::on("status", FieldKind::Text),
            Index::on("status", FieldKind::Text).then("title", FieldKind::Text),
            Index::on("copiesLeft", FieldKind::Number),
            Index::on("address.city", FieldKind::Text),
        ]
    );
    assert_eq!(f.lent.eq(true), Spec::leaf("isLent", Op::Eq, true));
    let _ = Book {
        title: String::new(),
        status: String::new(),
        copies_left: 0,
        lent: false,
        price: None,
        tags: Vec::new(),
        attrs: HashMap::new(),
        address: Address { city: String::new(), zip: None },
        items: vec![Item { sku: String::new(), qty: 0 }],
        cache: NotAField,
        scratch: NotAField,
    };
}
