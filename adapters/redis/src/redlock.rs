//! [`Redlock`]: one lease over several independent Redis nodes, granted by a quorum.

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::lock::{Lease, LockBackend, LockError, LockMode, LockOptions, Resource};
use cqrs_ddd::ports::async_trait;
use futures::future::join_all;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::lock::{DEFAULT_LOCK_PREFIX, Keys, extend_on, new_token, pause, release_on, try_acquire_on};

/// The Redlock algorithm over `N` independent Redis nodes (not replicas of each other).
///
/// - **Acquire**: the same script as [`crate::RedisLocks`] (read/write modes, per-node
///   fencing counter) runs on every node with one token, each node answering within
///   `node_timeout`. The lock is granted when a quorum (`N/2 + 1`) took it and time is
///   left: validity = ttl − elapsed − drift, drift being 1% of the ttl plus 2 ms.
///   Otherwise it is released on every node and tried again after a short jittered pause
///   until `timeout` ([`LockError::Timeout`], or [`LockError::Unavailable`] when fewer
///   than a quorum of nodes answered the last attempt).
/// - **Extend** needs a quorum of nodes still holding the token ([`LockError::Lost`]
///   otherwise); **release** runs on every node; **health** is a quorum of `PING`s.
/// - **Fencing is best-effort**: [`Lease::fence`] is the largest of the per-node counters
///   of the nodes that granted the lock. Counters of different nodes are independent, so
///   after node failures and restarts two successive leases are not guaranteed
///   increasing fences.
///
/// # What Redlock is for
///
/// As Martin Kleppmann argued ("How to do distributed locking", 2016), Redlock depends
/// on bounded network delays, process pauses and clock drift: a holder paused past its
/// TTL (a GC pause, a swapped-out page) keeps acting after another process was granted
/// the lock, and it offers no fencing token it could guarantee monotonic. Use it for
/// **efficiency** (avoid doing the same work twice), not for correctness. In cqrs-ddd
/// correctness comes from the event store: every stream is appended at an expected
/// version (optimistic concurrency, [`cqrs_ddd::Error::Conflict`]), and a store that
/// checks fencing tokens refuses a late holder's writes.
#[derive(Clone)]
pub struct Redlock {
    nodes: Arc<[ConnectionManager]>,
    prefix: Arc<str>,
    node_timeout: Duration,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redlock")
            .field("nodes", &self.nodes.len())
            .field("prefix", &self.prefix)
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}

/// What the nodes answered.
struct Tally<T> {
    answered: usize,
    ok: Vec<T>,
    last_error: Option<String>,
}

impl Redlock {
    /// Redlock over the nodes at `urls` (connected on first use; only a malformed URL is
    /// an error here).
    pub fn new<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Result<Self, redis::RedisError> {
        let nodes = urls.into_iter().map(|u| crate::connection::manager(u.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(Redlock::from_managers(nodes))
    }

    /// Redlock over connections you configured.
    pub fn from_managers(nodes: Vec<ConnectionManager>) -> Self {
        Redlock { nodes: nodes.into(), prefix: DEFAULT_LOCK_PREFIX.into(), node_timeout: Duration::from_millis(200) }
    }

    /// Keys under another prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// How long one node may take to answer one attempt (200 ms by default); a slower
    /// node counts as not granting it.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// How many nodes must agree: `N/2 + 1`.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Runs `call` on every node at once, each within the node timeout.
    async fn on_all<T, F, Fut>(&self, call: F) -> Tally<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<Option<T>>>,
    {
        let answers =
            join_all(self.nodes.iter().map(|n| tokio::time::timeout(self.node_timeout, call(n.clone())))).await;
        let mut tally = Tally { answered: 0, ok: Vec::new(), last_error: None };
        for answer in answers {
            match answer {
                Ok(Ok(value)) => {
                    tally.answered += 1;
                    tally.ok.extend(value);
                }
                Ok(Err(e)) => tally.last_error = Some(e.to_string()),
                Err(_) => tally.last_error = Some(format!("no answer within {:?}", self.node_timeout)),
            }
        }
        tally
    }

    fn no_quorum<T>(&self, resource: &Resource, tally: &Tally<T>) -> LockError {
        LockError::Unavailable {
            resource: resource.clone(),
            reason: format!(
                "{} of {} nodes answered, {} needed (last error: {})",
                tally.answered,
                self.nodes.len(),
                self.quorum(),
                tally.last_error.as_deref().unwrap_or("none")
            ),
        }
    }

    async fn release_all(&self, lease: &Lease) -> Tally<()> {
        let keys = Keys::new(&self.prefix, &lease.resource);
        self.on_all(|mut conn| {
            let keys = keys.clone();
            async move {
                release_on(&mut conn, &keys, lease).await?;
                Ok(Some(()))
            }
        })
        .await
    }
}

#[async_trait]
impl LockBackend for Redlock {
    async fn acquire(&self, resource: &Resource, mode: LockMode, options: &LockOptions) -> Result<Lease, LockError> {
        let keys = Keys::new(&self.prefix, resource);
        let deadline = Instant::now() + options.timeout;
        let ttl = options.ttl;
        let drift = options.ttl / 100 + Duration::from_millis(2);
        for attempt in 0.. {
            let token = new_token();
            let start = Instant::now();
            let tally = self
                .on_all(|mut conn| {
                    let (keys, token) = (keys.clone(), token.clone());
                    async move { try_acquire_on(&mut conn, &keys, &token, mode, ttl).await }
                })
                .await;
            let elapsed = start.elapsed();
            let lease =
                Lease { resource: resource.clone(), mode, token, fence: tally.ok.iter().copied().max().unwrap_or(0) };
            if tally.ok.len() >= self.quorum() && options.ttl > elapsed + drift {
                return Ok(lease);
            }
            // Given back everywhere, also on the nodes that did not answer in time.
            self.release_all(&lease).await;
            if Instant::now() >= deadline {
                if tally.answered < self.quorum() {
                    return Err(self.no_quorum(resource, &tally));
                }
                break;
            }
            pause(attempt + 2, deadline).await;
        }
        Err(LockError::Timeout { resource: resource.clone(), timeout: options.timeout })
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<(), LockError> {
        let keys = Keys::new(&self.prefix, &lease.resource);
        let tally = self
            .on_all(|mut conn| {
                let keys = keys.clone();
                async move { Ok(extend_on(&mut conn, &keys, lease, ttl).await?.then_some(())) }
            })
            .await;
        if tally.ok.len() >= self.quorum() {
            Ok(())
        } else if tally.answered < self.quorum() {
            Err(self.no_quorum(&lease.resource, &tally))
        } else {
            Err(LockError::Lost { resource: lease.resource.clone() })
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let tally = self.release_all(lease).await;
        if tally.answered < self.quorum() {
            // The nodes that did not answer let the lease expire with its TTL.
            return Err(self.no_quorum(&lease.resource, &tally));
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), LockError> {
        let tally = self
            .on_all(|mut conn| async move {
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(Some(()))
            })
            .await;
        if tally.ok.len() >= self.quorum() {
            Ok(())
        } else {
            Err(self.no_quorum(&Resource::of_tenant(None, "redis", "PING"), &tally))
        }
    }
}
