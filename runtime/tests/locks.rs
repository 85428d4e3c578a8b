//! Locks: critical sections over several resources, reentrancy, read/write modes,
//! fairness, leases and fencing, on the in-memory backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cqrs_ddd::lock::{LockBackend, LockError, LockManager, LockMode, LockOptions, MemoryLocks, Resource};
use parking_lot::Mutex;

fn res(id: &str) -> Resource {
    Resource::of_tenant(None, "Account", id)
}

fn opts(timeout_ms: u64) -> LockOptions {
    LockOptions { timeout: Duration::from_millis(timeout_ms), ttl: Duration::from_secs(30) }
}

#[tokio::test]
async fn a_failed_multi_lock_releases_what_it_held_and_names_the_resource() {
    let locks = LockManager::new(MemoryLocks::new());
    let b = locks.lock([(res("b"), LockMode::Write)], "other", &opts(1000)).await.unwrap();
    let err = locks
        .lock([(res("a"), LockMode::Write), (res("b"), LockMode::Write)], "me", &opts(50))
        .await
        .err()
        .expect("b is held by another session");
    assert!(matches!(&err, LockError::Timeout { resource, .. } if resource.id == "b"), "{err}");
    // `a` was taken first and given back.
    let a = locks.lock([(res("a"), LockMode::Write)], "third", &opts(50)).await.unwrap();
    a.release().await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test]
async fn duplicates_merge_with_write_winning_and_leases_come_sorted() {
    let locks = LockManager::new(MemoryLocks::new());
    let held = locks
        .lock(
            [
                (res("c"), LockMode::Read),
                (res("a"), LockMode::Read),
                (res("c"), LockMode::Write),
                (res("b"), LockMode::Read),
            ],
            "s",
            &opts(100),
        )
        .await
        .unwrap();
    let taken: Vec<(&str, LockMode)> = held.leases().iter().map(|l| (l.resource.id.as_str(), l.mode)).collect();
    assert_eq!(taken, [("a", LockMode::Read), ("b", LockMode::Read), ("c", LockMode::Write)]);
    held.release().await.unwrap();
}

#[tokio::test]
async fn a_session_re_enters_its_locks_and_the_outermost_release_frees_them() {
    let locks = LockManager::new(MemoryLocks::new());
    let outer = locks.lock([(res("a"), LockMode::Write)], "root-1", &opts(100)).await.unwrap();
    let inner = locks.lock([(res("a"), LockMode::Read)], "root-1", &opts(100)).await.unwrap();
    assert_eq!(inner.leases()[0].fence, outer.leases()[0].fence, "the same lease");
    inner.release().await.unwrap();
    assert!(locks.lock([(res("a"), LockMode::Write)], "root-2", &opts(30)).await.is_err(), "still held");
    outer.release().await.unwrap();
    locks.lock([(res("a"), LockMode::Write)], "root-2", &opts(30)).await.unwrap().release().await.unwrap();
    // A read lock is not re-entered for writing.
    let read = locks.lock([(res("x"), LockMode::Read)], "root-3", &opts(30)).await.unwrap();
    let err = locks.lock([(res("x"), LockMode::Write)], "root-3", &opts(30)).await.err().unwrap();
    assert!(matches!(err, LockError::Upgrade { .. }), "{err}");
    read.release().await.unwrap();
}

#[tokio::test]
async fn readers_share_and_writers_exclude() {
    let locks = LockManager::new(MemoryLocks::new());
    let r1 = locks.lock([(res("a"), LockMode::Read)], "r1", &opts(100)).await.unwrap();
    let r2 = locks.lock([(res("a"), LockMode::Read)], "r2", &opts(100)).await.unwrap();
    assert!(locks.lock([(res("a"), LockMode::Write)], "w", &opts(30)).await.is_err(), "readers hold it");
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let w = locks.lock([(res("a"), LockMode::Write)], "w", &opts(100)).await.unwrap();
    assert!(locks.lock([(res("a"), LockMode::Read)], "r3", &opts(30)).await.is_err(), "a writer holds it");
    w.release().await.unwrap();
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let backend = MemoryLocks::new();
    let locks = LockManager::new(backend.clone());
    let holder = locks.lock([(res("a"), LockMode::Write)], "h", &opts(100)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (locks, order) = (locks.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let held = locks.lock([(res("a"), LockMode::Write)], &format!("w{i}"), &opts(10_000)).await.unwrap();
            order.lock().push(i);
            held.release().await.unwrap();
        }));
        // Each waiter is in the queue before the next one asks.
        while backend.waiting(&res("a")) < i + 1 {
            tokio::task::yield_now().await;
        }
    }
    holder.release().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_full_queue_is_a_typed_error() {
    let backend = MemoryLocks::with_max_waiting(2);
    let locks = LockManager::new(backend.clone());
    let holder = locks.lock([(res("a"), LockMode::Write)], "h", &opts(100)).await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..2 {
        let locks = locks.clone();
        waiters.push(tokio::spawn(async move {
            locks.lock([(res("a"), LockMode::Write)], &format!("w{i}"), &opts(10_000)).await.map(drop)
        }));
    }
    while backend.waiting(&res("a")) < 2 {
        tokio::task::yield_now().await;
    }
    let err = locks.lock([(res("a"), LockMode::Write)], "late", &opts(10_000)).await.err().unwrap();
    assert!(matches!(err, LockError::QueueFull { waiting: 2, .. }), "{err}");
    holder.release().await.unwrap();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_dropped_waiter_leaves_the_queue() {
    let backend = MemoryLocks::new();
    let locks = LockManager::new(backend.clone());
    let holder = locks.lock([(res("a"), LockMode::Write)], "h", &opts(100)).await.unwrap();
    let gone = tokio::spawn({
        let locks = locks.clone();
        async move { locks.lock([(res("a"), LockMode::Write)], "gone", &opts(60_000)).await.map(drop) }
    });
    while backend.waiting(&res("a")) < 1 {
        tokio::task::yield_now().await;
    }
    gone.abort();
    let _ = gone.await;
    holder.release().await.unwrap();
    // Had the cancelled waiter stayed at the head of the queue, this would time out.
    locks.lock([(res("a"), LockMode::Write)], "next", &opts(2_000)).await.unwrap().release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_taken_over_with_a_higher_fence_and_cannot_be_extended() {
    let backend = MemoryLocks::new();
    let short = LockOptions { timeout: Duration::from_secs(5), ttl: Duration::from_millis(50) };
    let first = backend.acquire(&res("a"), LockMode::Write, &short).await.unwrap();
    // Not released: the next holder waits for the lease to run out.
    let second = backend.acquire(&res("a"), LockMode::Write, &opts(5_000)).await.unwrap();
    assert!(second.fence > first.fence);
    assert!(matches!(backend.extend(&first, Duration::from_secs(1)).await, Err(LockError::Lost { .. })));
    backend.extend(&second, Duration::from_secs(1)).await.unwrap();
    // A store that remembers the highest fence refuses the late holder's write.
    let store = FencedStore::default();
    store.write(&second, 1).unwrap();
    assert!(store.write(&first, 2).is_err());
    assert_eq!(store.value(), 1);
}

/// A store that refuses writes fenced lower than one it has seen.
#[derive(Default)]
struct FencedStore(Mutex<(u64, i64)>);

impl FencedStore {
    fn write(&self, lease: &cqrs_ddd::lock::Lease, value: i64) -> Result<(), String> {
        let mut s = self.0.lock();
        if lease.fence < s.0 {
            return Err(format!("fence {} is older than {}", lease.fence, s.0));
        }
        *s = (lease.fence, value);
        Ok(())
    }

    fn value(&self) -> i64 {
        self.0.lock().1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_never_overlap_in_a_critical_section() {
    let locks = LockManager::new(MemoryLocks::with_max_waiting(64));
    let inside = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (locks, inside, entered) = (locks.clone(), inside.clone(), entered.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let held =
                    locks.lock([(res("hot"), LockMode::Write)], &format!("t{t}-{i}"), &opts(60_000)).await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                entered.fetch_add(1, Ordering::SeqCst);
                held.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(entered.load(Ordering::SeqCst), 32 * 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_under_locks_conserve_the_total_and_never_deadlock() {
    let locks = LockManager::new(MemoryLocks::new());
    let balances: Arc<Mutex<HashMap<String, i64>>> =
        Arc::new(Mutex::new((0..4).map(|i| (format!("acc{i}"), 1_000)).collect()));
    let mut tasks = Vec::new();
    for t in 0..10 {
        let (locks, balances) = (locks.clone(), balances.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                // Opposite orders on purpose: the manager sorts them.
                let (from, to) = if (t + i) % 2 == 0 { (t % 4, (t + 1) % 4) } else { ((t + 1) % 4, t % 4) };
                let (from, to) = (format!("acc{from}"), format!("acc{to}"));
                let held = locks
                    .lock(
                        [(res(&from), LockMode::Write), (res(&to), LockMode::Write)],
                        &format!("tx{t}-{i}"),
                        &opts(60_000),
                    )
                    .await
                    .unwrap();
                let amount = {
                    let b = balances.lock();
                    b[&from].min(7)
                };
                tokio::task::yield_now().await;
                {
                    let mut b = balances.lock();
                    *b.get_mut(&from).unwrap() -= amount;
                    *b.get_mut(&to).unwrap() += amount;
                }
                held.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = balances.lock().values().sum();
    assert_eq!(total, 4_000);
    assert!(balances.lock().values().all(|b| *b >= 0));
}

#[tokio::test]
async fn tenants_never_share_a_lock() {
    let locks = LockManager::new(MemoryLocks::new());
    let a = Resource::of_tenant(Some("t1"), "Account", "1");
    let b = Resource::of_tenant(Some("t2"), "Account", "1");
    let held = locks.lock([(a, LockMode::Write)], "s1", &opts(30)).await.unwrap();
    locks.lock([(b, LockMode::Write)], "s2", &opts(30)).await.unwrap().release().await.unwrap();
    held.release().await.unwrap();
    let in_scope =
        cqrs_ddd::RequestContext::new().with_tenant("t9").scope(async { Resource::new("Account", "1") }).await;
    assert_eq!(in_scope.tenant.as_deref(), Some("t9"));
}

#[tokio::test]
async fn a_dropped_critical_section_gives_its_locks_back() {
    let locks = LockManager::new(MemoryLocks::new());
    {
        let _held = locks.lock([(res("a"), LockMode::Write)], "s", &opts(30)).await.unwrap();
    }
    locks.lock([(res("a"), LockMode::Write)], "t", &opts(2_000)).await.unwrap().release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_keeps_a_short_lease() {
    let locks = LockManager::new(MemoryLocks::new());
    let short = LockOptions { timeout: Duration::from_secs(1), ttl: Duration::from_millis(80) };
    let held = locks.lock([(res("a"), LockMode::Write)], "s", &short).await.unwrap();
    let beat = held.heartbeat(Duration::from_millis(80));
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.extend(Duration::from_millis(80)).await.expect("the heartbeat kept the lease");
    drop(beat);
    held.release().await.unwrap();
}
