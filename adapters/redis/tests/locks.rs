//! `RedisLocks` on the Redis at `REDIS_URL` (127.0.0.1:6379 by default); each test works
//! under its own key prefix.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cqrs_ddd::lock::{LockBackend, LockError, LockManager, LockMode, LockOptions, Resource};
use cqrs_ddd_redis::RedisLocks;
use parking_lot::Mutex;

fn res(id: &str) -> Resource {
    Resource::of_tenant(Some("t1"), "Account", id)
}

fn opts(timeout_ms: u64) -> LockOptions {
    LockOptions { timeout: Duration::from_millis(timeout_ms), ttl: Duration::from_secs(30) }
}

fn locks(test: &str) -> RedisLocks {
    RedisLocks::new(&common::url()).unwrap().with_prefix(common::prefix(test))
}

/// Two clients (two "processes") on one prefix.
fn two(test: &str) -> (RedisLocks, RedisLocks) {
    let prefix = common::prefix(test);
    (
        RedisLocks::new(&common::url()).unwrap().with_prefix(prefix.clone()),
        RedisLocks::new(&common::url()).unwrap().with_prefix(prefix),
    )
}

#[tokio::test]
async fn a_failed_multi_lock_releases_what_it_held() {
    let (p1, p2) = two("multi");
    let (m1, m2) = (LockManager::new(p1), LockManager::new(p2));
    let b = m1.lock([(res("b"), LockMode::Write)], "other", &opts(1000)).await.unwrap();
    let err = m2
        .lock([(res("a"), LockMode::Write), (res("b"), LockMode::Write)], "me", &opts(100))
        .await
        .err()
        .expect("b is held by another process");
    assert!(matches!(&err, LockError::Timeout { resource, .. } if resource.id == "b"), "{err}");
    // `a` was given back: another process takes it at once.
    let a = m1.lock([(res("a"), LockMode::Write)], "third", &opts(100)).await.unwrap();
    a.release().await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test]
async fn reentrancy_needs_as_many_releases() {
    let (p1, p2) = two("reentry");
    let (m1, m2) = (LockManager::new(p1), LockManager::new(p2));
    let outer = m1.lock([(res("a"), LockMode::Write)], "root", &opts(100)).await.unwrap();
    let inner = m1.lock([(res("a"), LockMode::Write)], "root", &opts(100)).await.unwrap();
    assert_eq!(inner.leases()[0], outer.leases()[0], "the same lease");
    inner.release().await.unwrap();
    assert!(matches!(
        m2.lock([(res("a"), LockMode::Write)], "else", &opts(100)).await.err(),
        Some(LockError::Timeout { .. })
    ));
    outer.release().await.unwrap();
    m2.lock([(res("a"), LockMode::Write)], "else", &opts(1000)).await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn readers_share_and_writers_exclude_across_processes() {
    for fair in [false, true] {
        let (mut p1, mut p2) = two("rw");
        if fair {
            (p1, p2) = (p1.fair(), p2.fair());
        }
        let r1 = p1.acquire(&res("a"), LockMode::Read, &opts(100)).await.unwrap();
        let r2 = p2.acquire(&res("a"), LockMode::Read, &opts(100)).await.unwrap();
        let err = p1.acquire(&res("a"), LockMode::Write, &opts(100)).await.unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "readers hold it: {err}");
        p1.release(&r1).await.unwrap();
        assert!(p2.acquire(&res("a"), LockMode::Write, &opts(100)).await.is_err(), "one reader still holds it");
        p2.release(&r2).await.unwrap();
        let w = p2.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap();
        assert!(p1.acquire(&res("a"), LockMode::Read, &opts(100)).await.is_err(), "a writer holds it");
        assert!(p1.acquire(&res("a"), LockMode::Write, &opts(100)).await.is_err(), "a writer holds it");
        p2.release(&w).await.unwrap();
        let r = p1.acquire(&res("a"), LockMode::Read, &opts(1000)).await.unwrap();
        p1.release(&r).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_never_overlap_in_the_critical_section() {
    for fair in [false, true] {
        let prefix = common::prefix("overlap");
        let inside = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..32 {
            let mut backend = RedisLocks::new(&common::url()).unwrap().with_prefix(prefix.clone()).max_waiting(64);
            if fair {
                backend = backend.fair();
            }
            let (inside, entered) = (inside.clone(), entered.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let lease = backend.acquire(&res("hot"), LockMode::Write, &opts(120_000)).await.unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "task {t} entered an occupied section");
                    tokio::task::yield_now().await;
                    entered.fetch_add(1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    backend.release(&lease).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(entered.load(Ordering::SeqCst), 32 * 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_conserve_the_total() {
    let prefix = common::prefix("transfers");
    let accounts: Arc<Mutex<HashMap<String, i64>>> =
        Arc::new(Mutex::new((0..4).map(|i| (format!("acc{i}"), 100)).collect()));
    let mut tasks = Vec::new();
    for n in 0..10usize {
        let manager = LockManager::new(RedisLocks::new(&common::url()).unwrap().with_prefix(prefix.clone()));
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let (from, to) = (format!("acc{}", n % 4), format!("acc{}", (n + 1) % 4));
            // Opposite orders across tasks: the manager sorts them, so none deadlocks.
            let wanted = if n % 2 == 0 { [from.clone(), to.clone()] } else { [to.clone(), from.clone()] };
            let held = manager
                .lock(wanted.iter().map(|id| (res(id), LockMode::Write)), &format!("transfer-{n}"), &opts(60_000))
                .await
                .unwrap();
            let balance = accounts.lock()[&from];
            tokio::task::yield_now().await;
            accounts.lock().insert(from.clone(), balance - 7);
            let balance = accounts.lock()[&to];
            tokio::task::yield_now().await;
            accounts.lock().insert(to.clone(), balance + 7);
            held.release().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(accounts.lock().values().sum::<i64>(), 400);
}

#[tokio::test]
async fn fences_increase_and_an_expired_lease_is_lost_to_the_next_holder() {
    let (p1, p2) = two("fence");
    let short = LockOptions { timeout: Duration::from_secs(10), ttl: Duration::from_millis(200) };
    let first = p1.acquire(&res("a"), LockMode::Write, &short).await.unwrap();
    // p2 gets it once the first lease expired (it waits up to 10 s for that).
    let second = p2.acquire(&res("a"), LockMode::Write, &opts(10_000)).await.unwrap();
    assert!(second.fence > first.fence, "{} > {}", second.fence, first.fence);
    let err = p1.extend(&first, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err}");
    // The late holder's release does not free the new holder's lease.
    p1.release(&first).await.unwrap();
    assert!(p1.acquire(&res("a"), LockMode::Write, &opts(100)).await.is_err());
    p2.extend(&second, Duration::from_secs(30)).await.unwrap();
    p2.release(&second).await.unwrap();
    let third = p1.acquire(&res("a"), LockMode::Read, &opts(1000)).await.unwrap();
    assert!(third.fence > second.fence);
    // A reader's lease expires on its own, too.
    let reader = p1.acquire(&res("b"), LockMode::Read, &short).await.unwrap();
    let writer = p2.acquire(&res("b"), LockMode::Write, &opts(10_000)).await.unwrap();
    assert!(matches!(p1.extend(&reader, Duration::from_secs(30)).await, Err(LockError::Lost { .. })));
    assert!(writer.fence > reader.fence);
}

#[tokio::test]
async fn fair_waiters_are_served_in_arrival_order() {
    let prefix = common::prefix("fifo");
    let backend = || RedisLocks::new(&common::url()).unwrap().with_prefix(prefix.clone()).fair();
    let watcher = backend();
    let holder = watcher.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (locks, order) = (backend(), order.clone());
        // Writers and readers mixed: readers in a row may share, but none overtakes.
        let mode = if i == 2 { LockMode::Read } else { LockMode::Write };
        tasks.push(tokio::spawn(async move {
            let lease = locks.acquire(&res("a"), mode, &opts(60_000)).await.unwrap();
            order.lock().push(i);
            locks.release(&lease).await.unwrap();
        }));
        while watcher.waiting(&res("a")).await.unwrap() < i + 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    watcher.release(&holder).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_full_fair_queue_is_a_typed_error() {
    let prefix = common::prefix("full");
    let backend = RedisLocks::new(&common::url()).unwrap().with_prefix(prefix).fair().max_waiting(1);
    let holder = backend.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap();
    let waiter = tokio::spawn({
        let backend = backend.clone();
        async move { backend.acquire(&res("a"), LockMode::Write, &opts(60_000)).await }
    });
    while backend.waiting(&res("a")).await.unwrap() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = backend.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap_err();
    assert!(matches!(err, LockError::QueueFull { waiting: 1, .. }), "{err}");
    backend.release(&holder).await.unwrap();
    let lease = waiter.await.unwrap().unwrap();
    backend.release(&lease).await.unwrap();
}

#[tokio::test]
async fn a_crashed_waiter_does_not_block_the_fair_queue() {
    let prefix = common::prefix("crash");
    let fair = |url: &str| {
        RedisLocks::new(url).unwrap().with_prefix(prefix.clone()).fair().waiter_ttl(Duration::from_millis(500))
    };
    let live = fair(&common::url());
    let holder = live.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap();
    // The crashed waiter talks through a proxy that is then cut: it cannot leave the
    // queue, its place has to expire.
    let proxy = common::Proxy::start(common::url().trim_start_matches("redis://")).await;
    let crashed = fair(&proxy.url());
    let doomed = tokio::spawn(async move { crashed.acquire(&res("a"), LockMode::Write, &opts(600_000)).await });
    while live.waiting(&res("a")).await.unwrap() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    doomed.abort();
    let _ = doomed.await;
    let next = tokio::spawn({
        let live = live.clone();
        async move { live.acquire(&res("a"), LockMode::Write, &opts(30_000)).await }
    });
    while live.waiting(&res("a")).await.unwrap() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    live.release(&holder).await.unwrap();
    let lease = next.await.unwrap().expect("the dead waiter's place expired");
    live.release(&lease).await.unwrap();
}

#[tokio::test]
async fn a_dropped_fair_waiter_leaves_the_queue() {
    let backend = locks("dropped").fair();
    let holder = backend.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap();
    let gone = tokio::spawn({
        let backend = backend.clone();
        async move { backend.acquire(&res("a"), LockMode::Write, &opts(600_000)).await }
    });
    while backend.waiting(&res("a")).await.unwrap() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gone.abort();
    let _ = gone.await;
    for _ in 0..1000 {
        if backend.waiting(&res("a")).await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(backend.waiting(&res("a")).await.unwrap(), 0);
    backend.release(&holder).await.unwrap();
}

#[tokio::test]
async fn tenants_never_share_a_lock() {
    let backend = locks("tenants");
    let t1 = backend.acquire(&Resource::of_tenant(Some("t1"), "A", "1"), LockMode::Write, &opts(100)).await.unwrap();
    let t2 = backend.acquire(&Resource::of_tenant(Some("t2"), "A", "1"), LockMode::Write, &opts(100)).await.unwrap();
    backend.release(&t1).await.unwrap();
    backend.release(&t2).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_a_typed_error() {
    let url = format!("redis://127.0.0.1:{}", common::free_port());
    let backend = RedisLocks::new(&url).unwrap();
    let err = backend.acquire(&res("a"), LockMode::Write, &opts(1000)).await.unwrap_err();
    assert!(matches!(&err, LockError::Unavailable { resource, .. } if resource.id == "a"), "{err}");
    assert!(matches!(backend.health().await, Err(LockError::Unavailable { .. })));
    locks("health").health().await.unwrap();
}
