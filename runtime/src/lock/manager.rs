//! Several resources at once, in a stable order, re-entered by the session that holds
//! them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Lease, LockBackend, LockError, LockMode, LockOptions, Resource};

/// Takes locks from a [`LockBackend`] for sessions (a session is, for commands, the root
/// command's correlation id: nested sends share it).
///
/// [`lock`](Self::lock) takes several resources as one critical section:
/// - duplicates are merged, a write winning over a read;
/// - they are taken in one sorted order (tenant, kind, id), so two callers locking A,B
///   and B,A cannot deadlock;
/// - if one cannot be taken, those already taken are released (in reverse) and the error
///   names the resource that failed;
/// - a resource the session already holds is re-entered (a write lock also serves a
///   read; a read lock cannot be re-entered for writing: [`LockError::Upgrade`]), and is
///   released when its outermost holder releases it.
#[derive(Clone)]
pub struct LockManager {
    backend: Arc<dyn LockBackend>,
    sessions: Arc<Mutex<HashMap<(String, Resource), Entry>>>,
}

struct Entry {
    lease: Lease,
    holders: usize,
}

impl LockManager {
    /// A manager over a backend.
    pub fn new(backend: impl LockBackend) -> Self {
        LockManager::from_arc(Arc::new(backend))
    }

    /// A manager over a shared backend.
    pub fn from_arc(backend: Arc<dyn LockBackend>) -> Self {
        LockManager { backend, sessions: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn LockBackend> {
        &self.backend
    }

    /// Whether the backend answers.
    pub async fn health(&self) -> Result<(), LockError> {
        self.backend.health().await
    }

    /// Takes every resource for `session` (see the type's docs), or none.
    pub async fn lock(
        &self,
        resources: impl IntoIterator<Item = (Resource, LockMode)>,
        session: &str,
        options: &LockOptions,
    ) -> Result<Held, LockError> {
        let mut wanted: BTreeMap<Resource, LockMode> = BTreeMap::new();
        for (resource, mode) in resources {
            let m = wanted.entry(resource).or_insert(mode);
            *m = (*m).max(mode);
        }
        let mut held = Held { manager: self.clone(), session: session.to_owned(), leases: Vec::new(), done: false };
        for (resource, mode) in wanted {
            let key = (session.to_owned(), resource);
            let reentered = {
                let mut sessions = self.sessions.lock();
                match sessions.get_mut(&key) {
                    Some(e) if e.lease.mode == LockMode::Read && mode == LockMode::Write => {
                        Err(LockError::Upgrade { resource: key.1.clone() })
                    }
                    Some(e) => {
                        e.holders += 1;
                        Ok(Some(e.lease.clone()))
                    }
                    None => Ok(None),
                }
            };
            let lease = match reentered {
                Ok(Some(lease)) => lease,
                Ok(None) => match self.backend.acquire(&key.1, mode, options).await {
                    Ok(lease) => {
                        self.sessions.lock().insert(key, Entry { lease: lease.clone(), holders: 1 });
                        lease
                    }
                    Err(e) => {
                        held.release().await.ok();
                        return Err(e);
                    }
                },
                Err(e) => {
                    held.release().await.ok();
                    return Err(e);
                }
            };
            held.leases.push(lease);
        }
        Ok(held)
    }

    /// Drops one holder of each lease (in reverse order); the leases whose last holder
    /// left are given back to the backend.
    fn leave(&self, session: &str, leases: &[Lease]) -> Vec<Lease> {
        let mut sessions = self.sessions.lock();
        let mut ended = Vec::new();
        for lease in leases.iter().rev() {
            let key = (session.to_owned(), lease.resource.clone());
            if let Some(e) = sessions.get_mut(&key) {
                e.holders -= 1;
                if e.holders == 0 {
                    sessions.remove(&key);
                    ended.push(lease.clone());
                }
            }
        }
        ended
    }
}

/// Locks held by one [`LockManager::lock`] call. [`release`](Self::release) them; dropped
/// without it (a cancelled future), they are released in the background.
pub struct Held {
    manager: LockManager,
    session: String,
    leases: Vec<Lease>,
    done: bool,
}

impl Held {
    /// The leases, in the order they were taken (with their fencing tokens).
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// The lease of a resource, for its fencing token.
    pub fn lease_of(&self, resource: &Resource) -> Option<&Lease> {
        self.leases.iter().find(|l| &l.resource == resource)
    }

    /// Makes every lease last `ttl` from now; the first lease that was lost is the error.
    pub async fn extend(&self, ttl: Duration) -> Result<(), LockError> {
        for lease in &self.leases {
            self.manager.backend.extend(lease, ttl).await?;
        }
        Ok(())
    }

    /// Extends the leases every `ttl / 2` until the returned guard is dropped (a
    /// heartbeat while the holder works). A lost lease stops it; [`extend`](Self::extend)
    /// then reports the loss.
    pub fn heartbeat(&self, ttl: Duration) -> Heartbeat {
        let backend = self.manager.backend.clone();
        let leases = self.leases.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 2);
            tick.tick().await;
            loop {
                tick.tick().await;
                for lease in &leases {
                    if backend.extend(lease, ttl).await.is_err() {
                        return;
                    }
                }
            }
        });
        Heartbeat(task)
    }

    /// Releases the locks in reverse order; a re-entered lock only drops this holder.
    /// Every lease is given back even when one fails; the first failure is returned.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.done = true;
        let ended = self.manager.leave(&self.session, &self.leases);
        let mut first = Ok(());
        for lease in &ended {
            if let Err(e) = self.manager.backend.release(lease).await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let ended = self.manager.leave(&self.session, &self.leases);
        if ended.is_empty() {
            return;
        }
        let backend = self.manager.backend.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for lease in &ended {
                    let _ = backend.release(lease).await;
                }
            });
        }
        // Without a runtime the leases end with their TTL.
    }
}

/// Stops a [`Held::heartbeat`] when dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
