//! Redis for cqrs-ddd: leased read/write locks with fencing tokens ([`RedisLocks`] on one
//! node, optionally fair; [`Redlock`] over several), the cache port ([`RedisCache`]) and
//! aggregate snapshots shared by every process ([`RedisSnapshots`]).
//!
//! ```
//! use std::time::Duration;
//! use cqrs_ddd::cache::Cache;
//! use cqrs_ddd::lock::{LockManager, LockMode, LockOptions, Resource};
//! use cqrs_ddd_redis::{RedisCache, RedisLocks};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "redis://127.0.0.1:6379";
//! // Fair: waiters are served in the order they asked, whatever process they run in.
//! let locks = LockManager::new(RedisLocks::new(url)?.fair());
//! let held = locks
//!     .lock(
//!         [(Resource::new("Account", "a"), LockMode::Write), (Resource::new("Account", "b"), LockMode::Write)],
//!         "session-1",
//!         &LockOptions::default(),
//!     )
//!     .await?;
//! // Pass the fencing token to the store, which refuses a lower one than it has seen.
//! let fence = held.leases()[0].fence;
//! # let _ = fence;
//! held.release().await?;
//!
//! // Keys are in the current tenant's namespace by construction.
//! let cache = Cache::new(RedisCache::new(url)?);
//! cache.set("balance:a", &100u64, Some(Duration::from_secs(60))).await?;
//! assert_eq!(cache.get::<u64>("balance:a").await?, Some(100));
//! # Ok(()) }
//! ```
//!
//! # Guarantees and caveats
//!
//! - Every lock operation is one Lua script on a Redis node, with the node's clock
//!   (`TIME`), never a client's; a holder's token is compared before its lease is extended
//!   or released.
//! - Readers share a resource and each reader's lease expires on its own; a writer
//!   excludes everyone. The tenant is part of every key (`cqrs_ddd:lock:{tenant/kind/id}:…`).
//! - Fencing tokens increase per resource on one node. Over [`Redlock`] they are
//!   best-effort (see there), and a lock is an efficiency device there: correctness comes
//!   from the event store's optimistic concurrency and from fencing.
//! - Waiting is polling with a short jittered backoff (2 to 50 ms) until the timeout; the
//!   fair queue also orders waiters by a server-side ticket, and a waiter that stops
//!   polling (crashed, cut off) loses its place after [`RedisLocks::waiter_ttl`].
//! - A node that does not answer is [`cqrs_ddd::lock::LockError::Unavailable`] (or a
//!   [`cqrs_ddd::cache::CacheError::Unavailable`]), never a panic and never a silent miss:
//!   the caller decides whether to degrade. Connections are made lazily, time out after
//!   1 s (connect) and 2 s (answer), and reconnect by themselves.
//! - The crate has no cargo features.

mod cache;
mod connection;
mod lock;
mod redlock;
mod scripts;
mod snapshots;

pub use cache::{DEFAULT_CACHE_PREFIX, RedisCache};
pub use lock::{DEFAULT_LOCK_PREFIX, RedisLocks};
pub use redis;
pub use redlock::Redlock;
pub use snapshots::{DEFAULT_SNAPSHOT_PREFIX, RedisSnapshots};
