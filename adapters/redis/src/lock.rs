//! [`RedisLocks`]: leases on one Redis node, optionally served first come, first served.

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::lock::{Lease, LockBackend, LockError, LockMode, LockOptions, Resource};
use cqrs_ddd::ports::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::scripts;

/// The prefix of every lock key unless [`RedisLocks::with_prefix`] says otherwise.
pub const DEFAULT_LOCK_PREFIX: &str = "cqrs_ddd:lock:";

/// The scripts, loaded once per process and shared by every backend (and by
/// [`crate::Redlock`]).
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) acquire_fair: Script,
    pub(crate) leave_queue: Script,
    pub(crate) extend: Script,
    pub(crate) release: Script,
}

pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        acquire: scripts::acquire(),
        acquire_fair: scripts::acquire_fair(),
        leave_queue: scripts::leave_queue(),
        extend: scripts::extend(),
        release: scripts::release(),
    })
}

/// The Redis keys of one resource.
#[derive(Clone)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    /// `prefix{tenant/kind/id}`: the braces make every key of a resource one hash slot
    /// (Redis Cluster), and the tenant is in the key by construction.
    pub(crate) fn new(prefix: &str, resource: &Resource) -> Self {
        Keys { base: format!("{prefix}{{{}}}", resource.key()) }
    }
    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.base)
    }
}

pub(crate) fn mode_arg(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Read => "r",
        LockMode::Write => "w",
    }
}

pub(crate) fn unavailable(resource: &Resource, error: &redis::RedisError) -> LockError {
    LockError::Unavailable { resource: resource.clone(), reason: error.to_string() }
}

/// A short jittered pause between two attempts: 2 ms doubling to 50 ms, each drawn
/// between half and all of it, and never past `deadline`.
pub(crate) async fn pause(attempt: u32, deadline: Instant) {
    let ceiling = 2u64.saturating_mul(1 << attempt.min(5)).min(50);
    let ms = rand::random_range(ceiling / 2..=ceiling);
    let wake = (Instant::now() + Duration::from_millis(ms)).min(deadline);
    tokio::time::sleep_until(wake).await;
}

/// Leases on one Redis node, a [`LockBackend`] shared by every process that uses the node.
///
/// - **Atomic**: acquiring, extending and releasing are each one Lua script, which
///   compares the holder's token before touching a lease.
/// - **Read/write**: readers share (each reader's lease expires on its own), a writer
///   excludes readers and writers.
/// - **Fencing**: every acquisition `INCR`s a counter kept per resource in Redis, so
///   [`Lease::fence`] increases per resource across processes (the counter is never
///   expired: one small key per resource ever locked).
/// - **Waiting**: by default a caller retries with a short jittered backoff (2 to 50 ms)
///   until `timeout`, which is not fair: a newcomer may overtake a waiter.
///   [`fair`](Self::fair) serves callers in the order they first asked, by a ticket
///   taken from a server-side counter (no client clock involved); each waiter's place
///   carries its own expiry, refreshed at every attempt, so a crashed or cut-off waiter
///   is dropped from the head of the queue after [`waiter_ttl`](Self::waiter_ttl)
///   instead of blocking it.
/// - **Failures**: a node that does not answer is [`LockError::Unavailable`] naming the
///   resource.
///
/// Keys: `cqrs_ddd:lock:{tenant/kind/id}:w`, `…:r`, `…:fence` (and `…:q`, `…:qm`,
/// `…:alive`, `…:ticket` for the fair queue).
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: Arc<str>,
    fair: bool,
    waiter_ttl: Duration,
    max_waiting: usize,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("prefix", &self.prefix)
            .field("fair", &self.fair)
            .field("waiter_ttl", &self.waiter_ttl)
            .field("max_waiting", &self.max_waiting)
            .finish_non_exhaustive()
    }
}

impl RedisLocks {
    /// Locks on the node at `url` (`redis://127.0.0.1:6379`). It connects on first use;
    /// only a malformed URL is an error here.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisLocks::from_manager(crate::connection::manager(url)?))
    }

    /// Locks over a connection you configured.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        RedisLocks {
            conn,
            prefix: DEFAULT_LOCK_PREFIX.into(),
            fair: false,
            waiter_ttl: Duration::from_secs(3),
            max_waiting: 100,
        }
    }

    /// Keys under another prefix (isolation between applications or tests).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// Serves waiters first come, first served (see the type's docs).
    pub fn fair(mut self) -> Self {
        self.fair = true;
        self
    }

    /// How long a waiter of the fair queue keeps its place without refreshing it (3 s by
    /// default); waiters refresh it at every attempt, every 50 ms at most.
    pub fn waiter_ttl(mut self, ttl: Duration) -> Self {
        self.waiter_ttl = ttl.max(Duration::from_millis(200));
        self
    }

    /// At most this many waiters per resource in the fair queue (100 by default); one
    /// more is [`LockError::QueueFull`].
    pub fn max_waiting(mut self, max: usize) -> Self {
        self.max_waiting = max;
        self
    }

    /// How many callers wait in the fair queue of a resource (live or not yet dropped).
    pub async fn waiting(&self, resource: &Resource) -> Result<usize, LockError> {
        let keys = Keys::new(&self.prefix, resource);
        let mut conn = self.conn.clone();
        redis::cmd("ZCARD").arg(keys.key("q")).query_async(&mut conn).await.map_err(|e| unavailable(resource, &e))
    }

    async fn acquire_unfair(
        &self,
        resource: &Resource,
        mode: LockMode,
        options: &LockOptions,
    ) -> Result<Lease, LockError> {
        let keys = Keys::new(&self.prefix, resource);
        let token = new_token();
        let deadline = Instant::now() + options.timeout;
        let mut conn = self.conn.clone();
        for attempt in 0.. {
            let taken = try_acquire_on(&mut conn, &keys, &token, mode, options.ttl)
                .await
                .map_err(|e| unavailable(resource, &e))?;
            if let Some(fence) = taken {
                return Ok(Lease { resource: resource.clone(), mode, token, fence });
            }
            if Instant::now() >= deadline {
                break;
            }
            pause(attempt, deadline).await;
        }
        Err(LockError::Timeout { resource: resource.clone(), timeout: options.timeout })
    }

    async fn acquire_fair(
        &self,
        resource: &Resource,
        mode: LockMode,
        options: &LockOptions,
    ) -> Result<Lease, LockError> {
        let keys = Keys::new(&self.prefix, resource);
        let token = new_token();
        let deadline = Instant::now() + options.timeout;
        let mut conn = self.conn.clone();
        let mut place = InQueue { conn: self.conn.clone(), keys: keys.clone(), token: token.clone(), done: false };
        for attempt in 0.. {
            let (state, value): (i64, u64) = scripts()
                .acquire_fair
                .key(keys.key("w"))
                .key(keys.key("r"))
                .key(keys.key("fence"))
                .key(keys.key("q"))
                .key(keys.key("qm"))
                .key(keys.key("alive"))
                .key(keys.key("ticket"))
                .arg(&token)
                .arg(mode_arg(mode))
                .arg(ttl_ms(options.ttl))
                .arg(ttl_ms(self.waiter_ttl))
                .arg(self.max_waiting)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable(resource, &e))?;
            match state {
                1 => {
                    place.done = true;
                    return Ok(Lease { resource: resource.clone(), mode, token, fence: value });
                }
                -1 => {
                    place.done = true;
                    return Err(LockError::QueueFull {
                        resource: resource.clone(),
                        waiting: usize::try_from(value).unwrap_or(usize::MAX),
                    });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                break;
            }
            pause(attempt, deadline).await;
        }
        // `place` leaves the queue when dropped.
        Err(LockError::Timeout { resource: resource.clone(), timeout: options.timeout })
    }
}

/// One node: takes the lease (without queueing); its fence when granted.
pub(crate) async fn try_acquire_on(
    conn: &mut ConnectionManager,
    keys: &Keys,
    token: &str,
    mode: LockMode,
    ttl: Duration,
) -> redis::RedisResult<Option<u64>> {
    let (taken, fence): (i64, u64) = scripts()
        .acquire
        .key(keys.key("w"))
        .key(keys.key("r"))
        .key(keys.key("fence"))
        .arg(token)
        .arg(mode_arg(mode))
        .arg(ttl_ms(ttl))
        .invoke_async(conn)
        .await?;
    Ok((taken == 1).then_some(fence))
}

/// One node: makes the lease last `ttl` from now; whether it was still held.
pub(crate) async fn extend_on(
    conn: &mut ConnectionManager,
    keys: &Keys,
    lease: &Lease,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let extended: i64 = scripts()
        .extend
        .key(keys.key("w"))
        .key(keys.key("r"))
        .arg(&lease.token)
        .arg(mode_arg(lease.mode))
        .arg(ttl_ms(ttl))
        .invoke_async(conn)
        .await?;
    Ok(extended == 1)
}

/// One node: gives the lease up (nothing when it is no longer held).
pub(crate) async fn release_on(conn: &mut ConnectionManager, keys: &Keys, lease: &Lease) -> redis::RedisResult<()> {
    let _released: i64 = scripts()
        .release
        .key(keys.key("w"))
        .key(keys.key("r"))
        .arg(&lease.token)
        .arg(mode_arg(lease.mode))
        .invoke_async(conn)
        .await?;
    Ok(())
}

pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A waiter's place in the fair queue: given up when the acquisition ends without the
/// lock (timeout, or the future dropped). If that fails (the connection is gone), the
/// place expires by itself after the waiter TTL.
struct InQueue {
    conn: ConnectionManager,
    keys: Keys,
    token: String,
    done: bool,
}

impl Drop for InQueue {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (mut conn, keys, token) = (self.conn.clone(), self.keys.clone(), std::mem::take(&mut self.token));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let left: Result<i64, _> = scripts()
                    .leave_queue
                    .key(keys.key("q"))
                    .key(keys.key("qm"))
                    .key(keys.key("alive"))
                    .arg(token)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = left {
                    tracing::debug!(error = %e, "could not leave a lock queue; the place expires by itself");
                }
            });
        }
    }
}

#[async_trait]
impl LockBackend for RedisLocks {
    async fn acquire(&self, resource: &Resource, mode: LockMode, options: &LockOptions) -> Result<Lease, LockError> {
        if self.fair {
            self.acquire_fair(resource, mode, options).await
        } else {
            self.acquire_unfair(resource, mode, options).await
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<(), LockError> {
        let keys = Keys::new(&self.prefix, &lease.resource);
        let mut conn = self.conn.clone();
        let extended = extend_on(&mut conn, &keys, lease, ttl).await.map_err(|e| unavailable(&lease.resource, &e))?;
        if extended { Ok(()) } else { Err(LockError::Lost { resource: lease.resource.clone() }) }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let keys = Keys::new(&self.prefix, &lease.resource);
        let mut conn = self.conn.clone();
        release_on(&mut conn, &keys, lease).await.map_err(|e| unavailable(&lease.resource, &e))
    }

    async fn health(&self) -> Result<(), LockError> {
        let mut conn = self.conn.clone();
        let _pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&Resource::of_tenant(None, "redis", "PING"), &e))?;
        Ok(())
    }
}

/// A random 128-bit holder token.
pub(crate) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
