//! Distributed locks: a port for lock backends, an in-memory backend, and a
//! [`LockManager`] that takes several resources at once without deadlock and re-enters
//! locks its session already holds.
//!
//! A lock is a **lease**: it expires after its TTL unless extended, so a crashed holder
//! cannot block a resource for ever. Each acquisition carries a **fencing token** that
//! increases per resource: a store that remembers the highest token it has seen for a
//! resource refuses a write carrying a lower one, which is what makes a lease safe when
//! its holder pauses past its TTL (a lock alone cannot).
//!
//! ```
//! use std::time::Duration;
//! use cqrs_ddd::lock::{LockManager, LockMode, LockOptions, MemoryLocks, Resource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cqrs_ddd::lock::LockError> {
//! let locks = LockManager::new(MemoryLocks::new());
//! let options = LockOptions::default();
//! // Two accounts, in any order: they are taken sorted, released in reverse.
//! let held = locks
//!     .lock(
//!         [(Resource::new("Account", "b"), LockMode::Write), (Resource::new("Account", "a"), LockMode::Write)],
//!         "session-1",
//!         &options,
//!     )
//!     .await?;
//! assert_eq!(held.leases()[0].resource.id, "a");
//! // The same session re-enters a lock it holds.
//! let again = locks.lock([(Resource::new("Account", "a"), LockMode::Write)], "session-1", &options).await?;
//! again.release().await?;
//! held.release().await?;
//! # Ok(()) }
//! ```

mod manager;
mod memory;
mod middleware;

use std::fmt;
use std::time::Duration;

pub use manager::{Heartbeat, Held, LockManager};
pub use memory::MemoryLocks;
pub use middleware::{CommandLocks, LockMiddleware};

use crate::ports::async_trait;

/// A resource to lock: a kind and an id, within a tenant (`None`: no tenant). The tenant
/// is part of the resource by construction: two tenants never share a lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// The tenant, first, so resources sort by tenant.
    pub tenant: Option<String>,
    /// What kind of thing (`Account`).
    pub kind: String,
    /// Which one.
    pub id: String,
}

impl Resource {
    /// A resource of the current request's tenant ([`crate::RequestContext`]), or of none
    /// outside a request.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        Resource { tenant, kind: kind.into(), id: id.into() }
    }

    /// A resource of a given tenant.
    pub fn of_tenant(tenant: Option<&str>, kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource { tenant: tenant.map(ToOwned::to_owned), kind: kind.into(), id: id.into() }
    }

    /// The resource as one key (`tenant/kind/id`, with `/` and `%` escaped in each part),
    /// which backends store under.
    pub fn key(&self) -> String {
        let part = |s: &str| s.replace('%', "%25").replace('/', "%2F");
        format!("{}/{}/{}", part(self.tenant.as_deref().unwrap_or("")), part(&self.kind), part(&self.id))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(t) => write!(f, "{}:{} (tenant {t})", self.kind, self.id),
            None => write!(f, "{}:{}", self.kind, self.id),
        }
    }
}

/// Shared (many readers) or exclusive (one writer, no reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockMode {
    /// Shared with other readers.
    Read,
    /// Exclusive.
    Write,
}

/// How long to wait for a lock and how long a lease lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// Give up waiting after this long ([`LockError::Timeout`]).
    pub timeout: Duration,
    /// A lease ends this long after it was taken or last extended.
    pub ttl: Duration,
}

impl Default for LockOptions {
    /// Wait up to 10 s; leases of 30 s.
    fn default() -> Self {
        LockOptions { timeout: Duration::from_secs(10), ttl: Duration::from_secs(30) }
    }
}

/// A lock held: what, how, the holder's token and the fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The resource.
    pub resource: Resource,
    /// The mode it was taken in.
    pub mode: LockMode,
    /// The holder's secret: release and extend must present it.
    pub token: String,
    /// Increases with every acquisition of the resource (in any mode): a store refuses
    /// writes fenced with a lower token than one it has seen.
    pub fence: u64,
}

/// Why a lock was not taken, extended or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another holder kept it for longer than the timeout.
    #[error("could not lock {resource} within {timeout:?}: another holder keeps it")]
    Timeout {
        /// The resource.
        resource: Resource,
        /// How long it waited.
        timeout: Duration,
    },
    /// Too many callers already wait for it.
    #[error("could not lock {resource}: {waiting} callers already wait for it (apply backpressure)")]
    QueueFull {
        /// The resource.
        resource: Resource,
        /// How many wait.
        waiting: usize,
    },
    /// The lease ended (expired, or taken over) before it was extended or released.
    #[error("the lease on {resource} is no longer held: it expired or another holder took it")]
    Lost {
        /// The resource.
        resource: Resource,
    },
    /// A session holding a read lock asked for the write lock of the same resource
    /// (an upgrade could deadlock two readers; take the write lock first).
    #[error("{resource} is held for reading in this session; it cannot be re-entered for writing")]
    Upgrade {
        /// The resource.
        resource: Resource,
    },
    /// The backend did not answer (unreachable, no quorum).
    #[error("the lock backend is unavailable for {resource}: {reason}")]
    Unavailable {
        /// The resource.
        resource: Resource,
        /// What went wrong.
        reason: String,
    },
}

impl LockError {
    /// The resource the error is about.
    pub fn resource(&self) -> &Resource {
        match self {
            LockError::Timeout { resource, .. }
            | LockError::QueueFull { resource, .. }
            | LockError::Lost { resource }
            | LockError::Upgrade { resource }
            | LockError::Unavailable { resource, .. } => resource,
        }
    }
}

/// A lock backend: in memory, Redis, Redlock, PostgreSQL advisory locks. Reentrancy and
/// several resources at once are the [`LockManager`]'s; a backend takes one resource at
/// a time, fairly or not as it documents.
#[async_trait]
pub trait LockBackend: Send + Sync + 'static {
    /// Takes the resource in `mode`, waiting at most `options.timeout`; the lease lasts
    /// `options.ttl`.
    async fn acquire(&self, resource: &Resource, mode: LockMode, options: &LockOptions) -> Result<Lease, LockError>;
    /// Makes the lease last `ttl` from now; [`LockError::Lost`] when it is no longer held.
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<(), LockError>;
    /// Gives the lease up; releasing a lease that ended already is not an error.
    async fn release(&self, lease: &Lease) -> Result<(), LockError>;
    /// Whether the backend answers.
    async fn health(&self) -> Result<(), LockError>;
}
