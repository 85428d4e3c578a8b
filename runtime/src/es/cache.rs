use std::any::Any;
use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::domain::Aggregate;
use crate::ports::StreamKey;

/// An in-process cache of loaded aggregates, keyed by stream.
///
/// A command takes the aggregate out of the cache (no read at all), and the unit of work
/// puts the new state back after its commit. A stale entry (another process wrote the
/// stream) cannot cause a lost update: the append expects the cached version and
/// conflicts, the entry is gone (it was taken), and the command is retried on a fresh
/// load. Two commands on one aggregate at once: the second finds no entry and loads.
pub struct AggregateCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<StreamKey, Entry>,
    /// Insertion order, for eviction: (key, generation); an item whose generation no
    /// longer matches its entry's is stale and skipped.
    order: VecDeque<(StreamKey, u64)>,
    generation: u64,
}

struct Entry {
    generation: u64,
    state: Box<dyn Any + Send + Sync>,
    version: u64,
    snapshot_version: u64,
}

/// An aggregate taken from the cache.
pub(crate) struct Cached<A> {
    pub(crate) state: A,
    pub(crate) version: u64,
    pub(crate) snapshot_version: u64,
}

impl AggregateCache {
    /// A cache of at most `capacity` aggregates (oldest inserted evicted first).
    pub fn new(capacity: usize) -> Self {
        AggregateCache { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// Number of cached aggregates.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the entry of a stream.
    pub fn evict(&self, key: &StreamKey) {
        self.inner.lock().entries.remove(key);
    }

    pub(crate) fn take<A: Aggregate>(&self, key: &StreamKey) -> Option<Cached<A>> {
        let entry = self.inner.lock().entries.remove(key)?;
        let state = entry.state.downcast::<A>().ok()?;
        Some(Cached { state: *state, version: entry.version, snapshot_version: entry.snapshot_version })
    }

    pub(crate) fn put<A: Aggregate>(&self, key: StreamKey, cached: Cached<A>) {
        let mut inner = self.inner.lock();
        if inner.entries.get(&key).is_some_and(|e| e.version >= cached.version) {
            return;
        }
        inner.generation += 1;
        let generation = inner.generation;
        let entry = Entry {
            generation,
            state: Box::new(cached.state),
            version: cached.version,
            snapshot_version: cached.snapshot_version,
        };
        inner.entries.insert(key.clone(), entry);
        inner.order.push_back((key, generation));
        while inner.entries.len() > self.capacity {
            let Some((oldest, g)) = inner.order.pop_front() else { break };
            if inner.entries.get(&oldest).is_some_and(|e| e.generation == g) {
                inner.entries.remove(&oldest);
            }
        }
        // Drop stale queue items so the queue stays proportional to the cache.
        if inner.order.len() > self.capacity * 2 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }
}
