//! `Redlock` over three `redis-server` processes the test starts on spare ports (killed
//! at the end, also on panic).

mod common;

use std::time::Duration;

use cqrs_ddd::lock::{LockBackend, LockError, LockMode, LockOptions, Resource};
use cqrs_ddd_redis::Redlock;

fn res(id: &str) -> Resource {
    Resource::of_tenant(Some("t1"), "Account", id)
}

fn opts(timeout_ms: u64) -> LockOptions {
    LockOptions { timeout: Duration::from_millis(timeout_ms), ttl: Duration::from_secs(30) }
}

#[tokio::test]
async fn redlock_needs_a_quorum_of_nodes() {
    let mut nodes = [common::Node::start().await, common::Node::start().await, common::Node::start().await];
    let urls: Vec<String> = nodes.iter().map(common::Node::url).collect();
    let prefix = common::prefix("redlock");
    let a = Redlock::new(&urls).unwrap().with_prefix(prefix.clone());
    let b = Redlock::new(&urls).unwrap().with_prefix(prefix);
    assert_eq!(a.quorum(), 2);
    a.health().await.unwrap();

    // Exclusion and fencing with every node up.
    let first = a.acquire(&res("x"), LockMode::Write, &opts(1000)).await.unwrap();
    assert!(matches!(b.acquire(&res("x"), LockMode::Write, &opts(200)).await, Err(LockError::Timeout { .. })));
    a.extend(&first, Duration::from_secs(30)).await.unwrap();
    a.release(&first).await.unwrap();
    let second = b.acquire(&res("x"), LockMode::Write, &opts(1000)).await.unwrap();
    assert!(second.fence > first.fence);
    b.release(&second).await.unwrap();
    // Readers share.
    let r1 = a.acquire(&res("r"), LockMode::Read, &opts(1000)).await.unwrap();
    let r2 = b.acquire(&res("r"), LockMode::Read, &opts(1000)).await.unwrap();
    assert!(b.acquire(&res("r"), LockMode::Write, &opts(200)).await.is_err());
    a.release(&r1).await.unwrap();
    b.release(&r2).await.unwrap();

    // One node down: still a quorum.
    nodes[0].kill();
    a.health().await.unwrap();
    let lease = a.acquire(&res("y"), LockMode::Write, &opts(5000)).await.unwrap();
    assert!(matches!(b.acquire(&res("y"), LockMode::Write, &opts(300)).await, Err(LockError::Timeout { .. })));
    a.extend(&lease, Duration::from_secs(30)).await.unwrap();
    a.release(&lease).await.unwrap();

    // Two down: a typed error, never a lock.
    nodes[1].kill();
    let err = a.acquire(&res("z"), LockMode::Write, &opts(1000)).await.unwrap_err();
    assert!(
        matches!(&err, LockError::Unavailable { resource, .. } | LockError::Timeout { resource, .. } if resource.id == "z"),
        "{err}"
    );
    assert!(matches!(a.health().await, Err(LockError::Unavailable { .. })));
}
