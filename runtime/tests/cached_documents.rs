//! Read-model queries from a cache: served while nothing committed, renewed after a
//! commit (never before, never on a rollback), per tenant.

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::cache::{CachedDocuments, MemoryCache};
use cqrs_ddd::memory::MemoryProjectionStore;
use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::spec::{Aggregation, Op, QueryOptions, Spec};

fn open() -> QueryOptions {
    QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "open"))
}

async fn ids(store: &impl ProjectionStore, tenant: Option<&str>) -> Vec<String> {
    store.find_of(tenant, "tickets", &open()).await.unwrap().into_iter().map(|d| d.id).collect()
}

#[tokio::test]
async fn answers_are_cached_until_a_commit_renews_them_and_a_rollback_does_not() {
    let inner = MemoryProjectionStore::new();
    let cached = CachedDocuments::new(inner.clone(), Arc::new(MemoryCache::new()), Duration::from_secs(60));
    let mut tx = cached.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "1", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["1"]);
    assert_eq!(cached.count_of(Some("t1"), "tickets", &open()).await.unwrap(), 1);

    // A write that does not go through the decorator is not seen: the answer is cached.
    let mut behind = inner.begin().await.unwrap();
    behind.put_doc(Some("t1"), "tickets", "2", r#"{"status":"open"}"#.into()).await.unwrap();
    behind.commit().await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["1"], "served from the cache");

    // Written through the decorator: not renewed before the commit, nor by a rollback.
    let mut tx = cached.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "3", r#"{"status":"open"}"#.into()).await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["1"], "not before the commit");
    tx.rollback().await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["1"], "not on a rollback");

    let mut tx = cached.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "4", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["1", "2", "4"], "renewed after the commit");
    assert_eq!(cached.count_of(Some("t1"), "tickets", &open()).await.unwrap(), 3);
    let by = Aggregation::new().group_by("status").count("n");
    assert_eq!(
        cached.aggregate_of(Some("t1"), "tickets", &by).await.unwrap(),
        [serde_json::json!({"status": "open", "n": 3})]
    );
}

#[tokio::test]
async fn a_tenants_answer_is_never_served_to_another_and_a_clear_renews_every_tenant() {
    let inner = MemoryProjectionStore::new();
    let cached = CachedDocuments::new(inner, Arc::new(MemoryCache::new()), Duration::from_secs(60));
    let mut tx = cached.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "a", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.put_doc(Some("t2"), "tickets", "b", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&cached, Some("t1")).await, ["a"]);
    assert_eq!(ids(&cached, Some("t2")).await, ["b"]);
    assert!(ids(&cached, None).await.is_empty());

    // A write of t2 leaves t1's answer cached, and renews t2's.
    let mut tx = cached.begin().await.unwrap();
    tx.put_doc(Some("t2"), "tickets", "c", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&cached, Some("t2")).await, ["b", "c"]);

    let mut tx = cached.begin().await.unwrap();
    tx.clear_docs("tickets").await.unwrap();
    tx.commit().await.unwrap();
    assert!(ids(&cached, Some("t1")).await.is_empty());
    assert!(ids(&cached, Some("t2")).await.is_empty());
}
