//! Locks declared on commands (`#[command(lock = [..])]`), taken around their unit of
//! work.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use futures::future::BoxFuture;

use super::{LockManager, LockMode, LockOptions, Resource};
use crate::middleware::{Message, MessageKind, Middleware, Next, Reply};
use crate::{Error, Result};

/// The resources a command type locks, registered by `#[command(lock = [..])]`.
#[doc(hidden)]
pub struct CommandLocks {
    /// The command type.
    pub type_id: fn() -> TypeId,
    /// Its resources, from a value of it.
    pub resources: fn(&dyn Any) -> Vec<(Resource, LockMode)>,
}

inventory::collect!(CommandLocks);

type ResourcesOf = fn(&dyn Any) -> Vec<(Resource, LockMode)>;

fn registered() -> &'static HashMap<TypeId, ResourcesOf> {
    static TABLE: OnceLock<HashMap<TypeId, ResourcesOf>> = OnceLock::new();
    TABLE.get_or_init(|| inventory::iter::<CommandLocks>().map(|c| ((c.type_id)(), c.resources)).collect())
}

/// Takes the locks a command declares (`#[command(lock = [account, to_account])]`)
/// before its unit of work begins, and releases them after it committed or rolled back.
///
/// The session is the root command's correlation id, so a command sent from inside
/// another one re-enters the locks of its root. A lock that cannot be taken is
/// [`Error::Lock`] naming the resource, unless the middleware fails open
/// ([`fail_open`](Self::fail_open)): then the command runs without it, with a warning.
pub struct LockMiddleware {
    manager: LockManager,
    options: LockOptions,
    fail_open: bool,
}

impl LockMiddleware {
    /// Locks through `manager`, with [`LockOptions::default`] (10 s timeout, 30 s leases).
    pub fn new(manager: LockManager) -> Self {
        LockMiddleware { manager, options: LockOptions::default(), fail_open: false }
    }

    /// With these timeout and lease.
    #[must_use]
    pub fn options(mut self, options: LockOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs a command without its locks when they cannot be taken (the backend is down,
    /// a timeout), instead of failing it.
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }
}

impl Middleware for LockMiddleware {
    /// Outside the other middleware: a command waits for its locks before anything else
    /// runs.
    fn priority(&self) -> i32 {
        -1000
    }

    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            let resources = match (msg.kind, registered().get(&msg.type_id)) {
                (MessageKind::Command, Some(of)) => of(msg.payload()),
                _ => return next.run(msg).await,
            };
            let session = msg.request.correlation_id.to_string();
            let held = match self.manager.lock(resources, &session, &self.options).await {
                Ok(held) => held,
                Err(e) if self.fail_open => {
                    tracing::warn!(command = msg.name, error = %e, "running the command without its lock");
                    return next.run(msg).await;
                }
                Err(e) => return Err(Error::Lock(e)),
            };
            let result = next.run(msg).await;
            if let Err(e) = held.release().await {
                tracing::warn!(error = %e, "a command's lock could not be released; its lease ends with its TTL");
            }
            result
        })
    }
}
