//! `RedisCache` behind the typed `Cache` on the Redis at `REDIS_URL`.

mod common;

use std::time::Duration;

use cqrs_ddd::RequestContext;
use cqrs_ddd::cache::{Cache, CacheError};
use cqrs_ddd_redis::RedisCache;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    id: String,
    balance: i64,
}

fn cache(test: &str) -> Cache {
    Cache::new(RedisCache::new(&common::url()).unwrap().with_prefix(common::prefix(test)))
}

#[tokio::test]
async fn values_round_trip_and_batches_keep_order() {
    let cache = cache("roundtrip");
    let a = Account { id: "a".into(), balance: 10 };
    cache.set("acc:a", &a, None).await.unwrap();
    assert_eq!(cache.get::<Account>("acc:a").await.unwrap(), Some(a));
    assert_eq!(cache.get::<Account>("acc:missing").await.unwrap(), None);
    cache.set_many(&[("n:1", 1), ("n:2", 2), ("n:3", 3)], Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(cache.get_many::<i32>(&["n:3", "n:x", "n:1"]).await.unwrap(), [Some(3), None, Some(1)]);
    cache.delete_many(&["n:1", "n:3"]).await.unwrap();
    assert_eq!(cache.get_many::<i32>(&["n:1", "n:2", "n:3"]).await.unwrap(), [None, Some(2), None]);
    cache.delete("n:2").await.unwrap();
    assert_eq!(cache.get::<i32>("n:2").await.unwrap(), None);
    assert!(cache.get_many::<i32>(&[]).await.unwrap().is_empty());
    // A value of another type is a typed error, not a silent miss.
    assert!(matches!(cache.get::<i32>("acc:a").await, Err(CacheError::Serde { .. })));
    cache.health().await.unwrap();
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let cache = cache("ttl");
    cache.set("short", &1, Some(Duration::from_millis(50))).await.unwrap();
    cache.set("long", &2, None).await.unwrap();
    let mut gone = false;
    for _ in 0..500 {
        if cache.get::<i32>("short").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the value did not expire within 5 s");
    assert_eq!(cache.get::<i32>("long").await.unwrap(), Some(2));
}

#[tokio::test]
async fn clear_prefix_removes_only_that_prefix_in_batches() {
    let cache = cache("clear");
    let items: Vec<(String, usize)> = (0..1200).map(|i| (format!("p*[x]:{i}"), i)).collect();
    let refs: Vec<(&str, usize)> = items.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    cache.set_many(&refs, None).await.unwrap();
    cache.set("p*other", &1, None).await.unwrap();
    cache.set("q", &1, None).await.unwrap();
    assert_eq!(cache.clear_prefix("p*[x]:").await.unwrap(), 1200);
    assert_eq!(cache.get::<usize>("p*[x]:7").await.unwrap(), None);
    assert_eq!(cache.get::<i32>("p*other").await.unwrap(), Some(1), "glob characters match literally");
    assert_eq!(cache.get::<i32>("q").await.unwrap(), Some(1));
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_values() {
    let cache = cache("tenants");
    RequestContext::new().with_tenant("t1").scope(cache.set("k", &"secret", None)).await.unwrap();
    let t2: Option<String> = RequestContext::new().with_tenant("t2").scope(cache.get("k")).await.unwrap();
    assert_eq!(t2, None);
    let none: Option<String> = cache.get("k").await.unwrap();
    assert_eq!(none, None);
    assert_eq!(RequestContext::new().with_tenant("t2").scope(cache.clear_prefix("")).await.unwrap(), 0);
    let t1: Option<String> = RequestContext::new().with_tenant("t1").scope(cache.get("k")).await.unwrap();
    assert_eq!(t1.as_deref(), Some("secret"));
}

#[tokio::test]
async fn an_unreachable_redis_is_a_typed_error() {
    let url = format!("redis://127.0.0.1:{}", common::free_port());
    let cache = Cache::new(RedisCache::new(&url).unwrap());
    assert!(matches!(cache.get::<i32>("k").await, Err(CacheError::Unavailable { operation: "GET", .. })));
    assert!(matches!(cache.set("k", &1, None).await, Err(CacheError::Unavailable { .. })));
    assert!(cache.health().await.is_err());
    let err: cqrs_ddd::Error = cache.delete("k").await.unwrap_err().into();
    assert!(matches!(err, cqrs_ddd::Error::Store(_)));
}

/// Two processes (two caches on one Redis, one document store): a commit in one renews
/// the answers the other serves.
#[tokio::test]
async fn read_model_answers_are_renewed_across_processes_after_a_commit() {
    use std::sync::Arc;

    use cqrs_ddd::cache::CachedDocuments;
    use cqrs_ddd::memory::MemoryProjectionStore;
    use cqrs_ddd::ports::ProjectionStore;
    use cqrs_ddd::spec::{Op, QueryOptions, Spec};

    let store = MemoryProjectionStore::new();
    // One prefix, two clients.
    let prefix = common::prefix("read-models");
    let redis = || -> Arc<dyn cqrs_ddd::cache::CacheBackend> {
        Arc::new(RedisCache::new(&common::url()).unwrap().with_prefix(prefix.clone()))
    };
    let a = CachedDocuments::new(store.clone(), redis(), Duration::from_secs(60));
    let b = CachedDocuments::new(store.clone(), redis(), Duration::from_secs(60));
    let open = QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "open"));
    let mut tx = a.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "1", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.count_of(Some("t1"), "tickets", &open).await.unwrap(), 1);
    let mut tx = a.begin().await.unwrap();
    tx.put_doc(Some("t1"), "tickets", "2", r#"{"status":"open"}"#.into()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.count_of(Some("t1"), "tickets", &open).await.unwrap(), 2, "b sees a's commit");
    assert_eq!(b.count_of(Some("t2"), "tickets", &open).await.unwrap(), 0, "another tenant");
}

#[tokio::test]
async fn the_health_checks_follow_the_server() {
    use cqrs_ddd::health::{HealthCheck, Status, cache_check, lock_check};
    use std::sync::Arc;

    let up = cache_check("cache", Arc::new(RedisCache::new(&common::url()).unwrap()));
    assert_eq!(up.check().await.status, Status::Up);
    let locks = lock_check("locks", Arc::new(cqrs_ddd_redis::RedisLocks::new(&common::url()).unwrap()));
    assert_eq!(locks.check().await.status, Status::Up);
    // Nothing listens on this port: the check is down and says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = cache_check("cache", Arc::new(RedisCache::new(&format!("redis://{closed}")).unwrap()));
    let check = tokio::time::timeout(Duration::from_secs(30), down.check()).await.expect("the check answers");
    assert_eq!(check.status, Status::Down, "{check:?}");
    assert!(check.detail["error"].is_string(), "{check:?}");
}
