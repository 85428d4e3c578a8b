//! Merge strategies (`cqrs_ddd::conflict`): the seed toolkit's cases and properties
//! each strategy keeps for any input.

use cqrs_ddd::conflict::MergeStrategy;
use cqrs_ddd::prelude::*;
use proptest::prelude::*;
use serde_json::{Value, json};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noted {
    text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

/// One state-stored aggregate per declared strategy; `declared!` also gives each the
/// `#[handle]`/`#[apply]` it needs.
macro_rules! declared {
    ($($name:ident: $merge:expr;)*) => {$(
        #[aggregate(id = String, events(Noted), error = Never, state_stored, on_conflict = $merge)]
        #[derive(Debug, Default, Serialize, Deserialize)]
        struct $name {
            notes: Vec<String>,
        }

        #[aggregate]
        impl $name {
            #[apply]
            fn noted(&mut self, e: &Noted) {
                self.notes.push(e.text.clone());
            }
        }
    )*};
}

declared! {
    ByLastWins: merge(last_wins);
    ByFields: merge(fields);
    ByFieldsListed: merge(fields(include = [name, "modifiedAt"], exclude = [secret], keep_existing));
    ByDeep: merge(deep);
    ByDeepKey: merge(deep(key = id, append_lists));
    ByTimestamp: merge(timestamp);
    ByTimestampField: merge(timestamp(field = "changed", fallback_to_incoming));
    ByUnion: merge(union);
    ByUnionKey: merge(union(key = code));
    ByFunction: merge(with = sum);
}

fn sum(existing: &Value, incoming: &Value) -> Value {
    json!(existing.as_i64().unwrap_or(0) + incoming.as_i64().unwrap_or(0))
}

#[test]
fn each_declared_strategy_is_the_runtime_s() {
    fn declared<A: Aggregate>() -> String {
        format!("{:?}", A::on_conflict().expect("a strategy"))
    }
    let fields = |include: Option<&[&str]>, exclude: &[&str], keep_existing| MergeStrategy::Fields {
        include: include.map(|i| i.iter().map(|s| (*s).to_owned()).collect()),
        exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
        keep_existing,
    };
    let cases: [(String, MergeStrategy); 9] = [
        (declared::<ByLastWins>(), MergeStrategy::LastWins),
        (declared::<ByFields>(), MergeStrategy::fields()),
        (declared::<ByFieldsListed>(), fields(Some(&["name", "modifiedAt"]), &["secret"], true)),
        (declared::<ByDeep>(), MergeStrategy::Deep { list_key: None, append_lists: false }),
        (declared::<ByDeepKey>(), MergeStrategy::Deep { list_key: Some("id".into()), append_lists: true }),
        (declared::<ByTimestamp>(), MergeStrategy::timestamp("modified_at")),
        (
            declared::<ByTimestampField>(),
            MergeStrategy::Timestamp { field: "changed".into(), fallback_to_incoming: true },
        ),
        (declared::<ByUnion>(), MergeStrategy::Union { key: None }),
        (declared::<ByUnionKey>(), MergeStrategy::union_by("code")),
    ];
    for (declared, expected) in cases {
        assert_eq!(declared, format!("{expected:?}"));
    }
    let function = ByFunction::on_conflict().expect("a strategy");
    assert_eq!(function.merge(&json!(2), &json!(3)), json!(5), "the declared function is called");
    assert!(Noted::NAME == "Noted" && Never.to_string() == "never");
}

#[test]
fn an_aggregate_without_on_conflict_has_no_strategy() {
    #[aggregate(id = String, events(Noted), error = Never, state_stored, name = "Plain")]
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Plain {
        notes: u32,
    }
    #[aggregate]
    impl Plain {
        #[apply]
        fn noted(&mut self, _e: &Noted) {
            self.notes += 1;
        }
    }
    assert!(Plain::on_conflict().is_none());
}

#[test]
fn last_wins_takes_incoming() {
    assert_eq!(MergeStrategy::LastWins.merge(&json!({"a": 1}), &json!({"b": 2})), json!({"b": 2}));
}

#[test]
fn field_level_merge_with_include_and_exclude() {
    let existing = json!({"id": 1, "name": "old", "status": "draft", "owner": "ann"});
    let incoming = json!({"id": 9, "name": "new", "status": "active", "secret": "x"});
    let include = MergeStrategy::Fields {
        include: Some(vec!["name".into(), "status".into()]),
        exclude: Vec::new(),
        keep_existing: false,
    };
    assert_eq!(
        include.merge(&existing, &incoming),
        json!({"id": 1, "name": "new", "status": "active", "owner": "ann"})
    );
    let exclude =
        MergeStrategy::Fields { include: None, exclude: vec!["id".into(), "secret".into()], keep_existing: false };
    assert_eq!(
        exclude.merge(&existing, &incoming),
        json!({"id": 1, "name": "new", "status": "active", "owner": "ann"})
    );
    let keep = MergeStrategy::Fields { include: None, exclude: Vec::new(), keep_existing: true };
    assert_eq!(
        keep.merge(&existing, &incoming),
        json!({"id": 1, "name": "old", "status": "draft", "owner": "ann", "secret": "x"}),
        "only new fields are taken"
    );
    assert_eq!(MergeStrategy::fields().merge(&json!(1), &json!({"a": 1})), json!({"a": 1}), "not two objects");
}

#[test]
fn deep_merge_of_a_list_by_id() {
    let existing = json!({"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b", "keep": true}, {"id": 3, "n": "c"}]});
    let incoming = json!({"items": [{"id": 2, "n": "B"}], "note": "x"});
    assert_eq!(
        MergeStrategy::deep_by("id").merge(&existing, &incoming),
        json!({"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "B", "keep": true}, {"id": 3, "n": "c"}], "note": "x"})
    );
    let replace = MergeStrategy::Deep { list_key: None, append_lists: false };
    assert_eq!(replace.merge(&json!({"t": [1, 2]}), &json!({"t": [3]})), json!({"t": [3]}));
    let append = MergeStrategy::Deep { list_key: None, append_lists: true };
    assert_eq!(append.merge(&json!({"t": ["a", "b"]}), &json!({"t": ["c"]})), json!({"t": ["a", "b", "c"]}));
}

#[test]
fn timestamps_in_iso_form_both_ways() {
    let ts = MergeStrategy::timestamp("modified_at");
    let older = json!({"v": "old", "modified_at": "2024-01-01T10:00:00Z"});
    let newer = json!({"v": "new", "modified_at": "2024-01-01T12:00:00+02:00"});
    let newest = json!({"v": "newest", "modified_at": "2024-01-01T11:00:00.5Z"});
    assert_eq!(ts.merge(&older, &newer)["v"], "new", "12:00+02:00 is 10:00Z: a tie goes to incoming");
    assert_eq!(ts.merge(&newest, &older)["v"], "newest", "an older incoming loses");
    assert_eq!(ts.merge(&older, &newest)["v"], "newest");
    assert_eq!(ts.merge(&older, &json!({"v": "no time"}))["v"], "old");
    let fallback = MergeStrategy::Timestamp { field: "modified_at".into(), fallback_to_incoming: true };
    assert_eq!(fallback.merge(&older, &json!({"v": "no time", "modified_at": "yesterday"}))["v"], "no time");
}

#[test]
fn union_by_code_with_incoming_winning() {
    let existing = json!([{"code": "A", "v": 1}, {"code": "B", "v": 1}]);
    let incoming = json!([{"code": "B", "v": 2}, {"code": "C", "v": 2}]);
    assert_eq!(
        MergeStrategy::union_by("code").merge(&existing, &incoming),
        json!([{"code": "A", "v": 1}, {"code": "B", "v": 2}, {"code": "C", "v": 2}])
    );
    let plain = MergeStrategy::Union { key: None };
    assert_eq!(plain.merge(&json!(["a", "b"]), &json!(["b", "c", "a"])), json!(["a", "b", "c"]));
    assert_eq!(plain.merge(&json!({"a": 1}), &json!(["x"])), json!(["x"]), "not two lists");
    // An aggregate's state: its list fields are unioned, its other fields laid over.
    assert_eq!(
        plain.merge(&json!({"tags": ["a", "b"], "n": 1, "kept": true}), &json!({"tags": ["c"], "n": 2})),
        json!({"tags": ["a", "b", "c"], "n": 2, "kept": true})
    );
}

#[test]
fn a_custom_merge_is_called() {
    let sum = MergeStrategy::custom(|a, b| json!(a.as_i64().unwrap_or(0) + b.as_i64().unwrap_or(0)));
    assert_eq!(sum.merge(&json!(2), &json!(3)), json!(5));
    assert_eq!(format!("{sum:?}"), "Custom(..)");
}

/// Small JSON values: scalars, lists and objects over a few keys, so that keys collide.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..5).prop_map(|n| json!(n)),
        "[ab]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[abc]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn items() -> impl Strategy<Value = Value> {
    prop::collection::vec((0u8..6, 0i64..3), 0..6)
        .prop_map(|v| Value::Array(v.into_iter().map(|(id, n)| json!({"id": id, "n": n})).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn last_wins_is_incoming(a in value(), b in value()) {
        prop_assert_eq!(MergeStrategy::LastWins.merge(&a, &b), b);
    }

    #[test]
    fn a_field_merge_keeps_every_key_and_takes_incoming_s_values(a in value(), b in value()) {
        let merged = MergeStrategy::fields().merge(&a, &b);
        if let (Value::Object(old), Value::Object(new)) = (&a, &b) {
            let merged = merged.as_object().unwrap();
            for (k, v) in new { prop_assert_eq!(merged.get(k), Some(v)); }
            for (k, v) in old { if !new.contains_key(k) { prop_assert_eq!(merged.get(k), Some(v)); } }
            prop_assert_eq!(merged.len(), old.keys().chain(new.keys()).collect::<std::collections::BTreeSet<_>>().len());
        } else {
            prop_assert_eq!(merged, b);
        }
    }

    #[test]
    fn merging_a_state_with_itself_changes_nothing(a in value()) {
        // Lists merged without a key are replaced by the incoming copy: the same list.
        for strategy in [MergeStrategy::fields(), MergeStrategy::deep_by("id"), MergeStrategy::timestamp("t")] {
            prop_assert_eq!(strategy.merge(&a, &a), a.clone());
        }
    }

    #[test]
    fn a_deep_merge_keeps_existing_keys_and_incoming_leaves(a in value(), b in value()) {
        let merged = MergeStrategy::Deep { list_key: None, append_lists: false }.merge(&a, &b);
        match (&a, &b) {
            (Value::Object(old), Value::Object(new)) => {
                let merged = merged.as_object().unwrap();
                for k in old.keys().chain(new.keys()) { prop_assert!(merged.contains_key(k)); }
                for (k, v) in new { if !v.is_object() { prop_assert_eq!(merged.get(k), Some(v)); } }
            }
            _ => prop_assert_eq!(merged, b),
        }
    }

    #[test]
    fn a_union_by_key_has_each_identity_once_with_incoming_s_copy(a in items(), b in items()) {
        let merged = MergeStrategy::union_by("id").merge(&a, &b);
        let merged = merged.as_array().unwrap();
        let ids: Vec<&Value> = merged.iter().map(|i| &i["id"]).collect();
        let unique: std::collections::BTreeSet<String> = ids.iter().map(ToString::to_string).collect();
        prop_assert_eq!(unique.len(), ids.len(), "each identity once");
        for item in a.as_array().unwrap().iter().chain(b.as_array().unwrap()) {
            prop_assert!(merged.iter().any(|m| m["id"] == item["id"]));
        }
        for item in b.as_array().unwrap() {
            let last = b.as_array().unwrap().iter().rev().find(|x| x["id"] == item["id"]).unwrap();
            prop_assert!(merged.contains(last), "incoming's (last) copy wins");
        }
    }

    #[test]
    fn a_timestamp_merge_answers_one_of_the_two(a in 0i64..1000, b in 0i64..1000) {
        let at = |s: i64| json!({"t": chrono::DateTime::from_timestamp(s, 0).unwrap().to_rfc3339(), "s": s});
        let merged = MergeStrategy::timestamp("t").merge(&at(a), &at(b));
        prop_assert_eq!(merged["s"].as_i64().unwrap(), a.max(b));
    }
}
