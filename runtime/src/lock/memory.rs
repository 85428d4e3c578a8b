//! Locks in this process: fair (first come, first served per resource), with a bounded
//! queue of waiters.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Lease, LockBackend, LockError, LockMode, LockOptions, Resource};
use crate::ports::async_trait;

/// Locks kept in this process: for tests, and for applications that run one process.
///
/// Fair: callers are served in the order they asked, per resource; consecutive readers at
/// the head of the queue share the lock. At most `max_waiting` callers wait for one
/// resource (100 by default); one more is [`LockError::QueueFull`] at once. A waiter that
/// gives up (timeout, or its future dropped) leaves the queue. Expired leases are dropped
/// when the resource is next asked for, and waiters wake when the holder's lease ends.
/// Each resource keeps its fencing counter for the life of the process.
#[derive(Clone)]
pub struct MemoryLocks {
    state: Arc<Mutex<HashMap<String, Slot>>>,
    max_waiting: usize,
}

#[derive(Default)]
struct Slot {
    fence: u64,
    next_waiter: u64,
    holders: Vec<Holder>,
    queue: VecDeque<(u64, LockMode)>,
    notify: Arc<Notify>,
}

struct Holder {
    token: String,
    mode: LockMode,
    until: Instant,
}

impl Slot {
    fn prune(&mut self, now: Instant) {
        self.holders.retain(|h| h.until > now);
    }

    fn compatible(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Write => self.holders.is_empty(),
            LockMode::Read => self.holders.iter().all(|h| h.mode == LockMode::Read),
        }
    }

    /// When the first current lease ends, if any.
    fn first_expiry(&self) -> Option<Instant> {
        self.holders.iter().map(|h| h.until).min()
    }
}

impl Default for MemoryLocks {
    fn default() -> Self {
        MemoryLocks::new()
    }
}

impl MemoryLocks {
    /// Locks with at most 100 waiters per resource.
    pub fn new() -> Self {
        MemoryLocks::with_max_waiting(100)
    }

    /// Locks with at most `max_waiting` waiters per resource.
    pub fn with_max_waiting(max_waiting: usize) -> Self {
        MemoryLocks { state: Arc::new(Mutex::new(HashMap::new())), max_waiting }
    }

    /// How many callers wait for a resource now.
    pub fn waiting(&self, resource: &Resource) -> usize {
        self.state.lock().get(&resource.key()).map_or(0, |slot| slot.queue.len())
    }
}

/// Takes a waiter out of its queue when its acquisition ends without the lock (a timeout,
/// or the future dropped), and lets the next one try.
struct InQueue<'a> {
    state: &'a Mutex<HashMap<String, Slot>>,
    key: &'a str,
    id: u64,
    done: bool,
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.state.lock();
        if let Some(slot) = state.get_mut(self.key) {
            slot.queue.retain(|(id, _)| *id != self.id);
            slot.notify.notify_waiters();
        }
    }
}

#[async_trait]
impl LockBackend for MemoryLocks {
    async fn acquire(&self, resource: &Resource, mode: LockMode, options: &LockOptions) -> Result<Lease, LockError> {
        let key = resource.key();
        let deadline = Instant::now() + options.timeout;
        let id = {
            let mut state = self.state.lock();
            let slot = state.entry(key.clone()).or_default();
            slot.prune(Instant::now());
            if slot.queue.len() >= self.max_waiting {
                return Err(LockError::QueueFull { resource: resource.clone(), waiting: slot.queue.len() });
            }
            slot.next_waiter += 1;
            let id = slot.next_waiter;
            slot.queue.push_back((id, mode));
            id
        };
        let mut waiting = InQueue { state: &self.state, key: &key, id, done: false };
        loop {
            let notify;
            let wake;
            {
                let mut state = self.state.lock();
                let slot = state.entry(key.clone()).or_default();
                let now = Instant::now();
                slot.prune(now);
                if slot.queue.front().is_some_and(|(head, _)| *head == id) && slot.compatible(mode) {
                    slot.queue.pop_front();
                    slot.fence += 1;
                    let token = uuid::Uuid::now_v7().to_string();
                    slot.holders.push(Holder { token: token.clone(), mode, until: now + options.ttl });
                    // The next reader in line may share it.
                    slot.notify.notify_waiters();
                    waiting.done = true;
                    return Ok(Lease { resource: resource.clone(), mode, token, fence: slot.fence });
                }
                if now >= deadline {
                    return Err(LockError::Timeout { resource: resource.clone(), timeout: options.timeout });
                }
                notify = slot.notify.clone();
                wake = slot.first_expiry().map_or(deadline, |e| e.min(deadline));
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a release in between is not missed.
            notified.as_mut().enable();
            let changed = {
                let state = self.state.lock();
                state
                    .get(&key)
                    .is_none_or(|slot| slot.queue.front().is_some_and(|(head, _)| *head == id) && slot.compatible(mode))
            };
            if !changed {
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(wake) => {}
                }
            }
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<(), LockError> {
        let mut state = self.state.lock();
        let now = Instant::now();
        let held = state
            .get_mut(&lease.resource.key())
            .and_then(|slot| slot.holders.iter_mut().find(|h| h.token == lease.token && h.until > now));
        match held {
            Some(h) => {
                h.until = now + ttl;
                Ok(())
            }
            None => Err(LockError::Lost { resource: lease.resource.clone() }),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let mut state = self.state.lock();
        if let Some(slot) = state.get_mut(&lease.resource.key()) {
            slot.holders.retain(|h| h.token != lease.token);
            slot.notify.notify_waiters();
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), LockError> {
        Ok(())
    }
}
