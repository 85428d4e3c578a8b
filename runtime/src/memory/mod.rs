//! In-memory adapters for every port: tests, examples, and the default store.

mod jobs;
mod projection;
mod sagas;

pub use projection::MemoryProjectionStore;
pub use sagas::{ManualClock, MemorySagaStore, MemoryScheduleStore};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, Outbox, OutboxRecord, OutboxStatus, Snapshot,
    SnapshotStore, StoredEvent, StoredState, StreamEvent, StreamKey, UndoLogEntry, check_tenant,
};

/// An event store, state store and outbox in memory, with a global position.
///
/// Streams are indexed by key, so reading one stream never scans the others. Cloning
/// gives another handle to the same data.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
    /// Where the deadlines of commits go, with the events.
    schedule: MemoryScheduleStore,
    /// Saga instances whose deadlines go to the same schedule.
    sagas: MemorySagaStore,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<StreamKey, Vec<Arc<StoredEvent>>>,
    log: Vec<Arc<StoredEvent>>,
    states: HashMap<StreamKey, StoredState>,
    outbox: Vec<OutboxRow>,
    /// Idempotency keys, per tenant.
    processed: std::collections::HashSet<(Option<String>, uuid::Uuid)>,
    /// Where each event is in `log`, by id.
    by_id: HashMap<Uuid, usize>,
    /// The undo log, per tenant and event, oldest first.
    undo_log: HashMap<(Option<String>, Uuid), Vec<UndoLogEntry>>,
    /// Background jobs, by id (ids are UUIDv7: in the order they were made).
    jobs: std::collections::BTreeMap<Uuid, crate::ports::JobRecord>,
}

struct OutboxRow {
    record: OutboxRecord,
    next_attempt: Instant,
    claimed_until: Option<Instant>,
    claimed_by: Option<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let schedule = MemoryScheduleStore::new();
        MemoryStore { inner: Arc::default(), sagas: MemorySagaStore::with_schedule(schedule.clone()), schedule }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Saga instances kept beside this store, their deadlines written into its schedule
    /// with each save: `App::builder().event_store(store.clone()).saga_store(store.saga_store())`
    /// (what `App::build` does with its default store).
    pub fn saga_store(&self) -> MemorySagaStore {
        self.sagas.clone()
    }

    /// Number of events in the store.
    pub fn event_count(&self) -> usize {
        self.inner.read().log.len()
    }

    /// The schedule the deadlines of its commits are written to (shared: the default
    /// schedule of an application on this store, see [`EventStore::schedule`]).
    pub fn schedule_store(&self) -> MemoryScheduleStore {
        self.schedule.clone()
    }

    /// Checks a batch's expectations, then writes it (all or nothing).
    fn write(inner: &mut Inner, mut batch: CommitBatch) -> Result<CommitReceipt> {
        // Check every expectation before writing anything: all or nothing.
        // A command already committed under its key is refused first: what it would
        // conflict with is its own earlier commit.
        let processed = batch.idempotency_key.map(|key| (batch.tenant_id.clone(), key));
        if let Some(p) = &processed
            && inner.processed.contains(p)
        {
            return Err(crate::Error::AlreadyProcessed { key: p.1 });
        }
        for append in &batch.appends {
            let actual = inner.streams.get(&append.stream).map_or(0, |s| s.len() as u64);
            if actual != append.expected_version {
                return Err(conflict(&append.stream, append.expected_version, actual));
            }
        }
        for state in &batch.states {
            let actual = inner.states.get(&state.stream).map_or(0, |s| s.version);
            if actual != state.expected_version {
                return Err(conflict(&state.stream, state.expected_version, actual));
            }
        }
        for entry in &batch.undo_log {
            let logged = inner.undo_log.get(&(entry.stream.tenant_id.clone(), entry.event_id));
            if logged.is_some_and(|l| l.iter().any(|e| (e.generation, e.action) == (entry.generation, entry.action))) {
                return Err(crate::undo::UndoError::already(entry).into());
            }
        }
        if let Some(p) = processed {
            inner.processed.insert(p);
        }
        for entry in std::mem::take(&mut batch.undo_log) {
            inner.undo_log.entry((entry.stream.tenant_id.clone(), entry.event_id)).or_default().push(entry);
        }
        let mut positions = Vec::with_capacity(batch.event_count());
        for append in batch.appends {
            let mut stored = Vec::with_capacity(append.events.len());
            for (version, e) in (append.expected_version + 1..).zip(append.events) {
                let position = inner.log.len() as u64 + 1;
                let event = Arc::new(StoredEvent {
                    stream: append.stream.clone(),
                    event_id: e.event_id,
                    version,
                    position,
                    commit: position,
                    event_type: e.event_type.to_owned(),
                    schema_version: e.schema_version,
                    payload: e.payload,
                    metadata: e.metadata,
                    occurred_at: e.occurred_at,
                });
                let index = inner.log.len();
                inner.by_id.insert(event.event_id, index);
                inner.log.push(event.clone());
                stored.push(event);
                positions.push(position);
            }
            inner.streams.entry(append.stream).or_default().extend(stored);
        }
        for state in batch.states {
            inner.states.insert(state.stream, StoredState { version: state.version, state: state.state });
        }
        let now = Instant::now();
        inner.outbox.extend(batch.outbox.into_iter().map(|message| OutboxRow {
            record: OutboxRecord { message, status: OutboxStatus::Pending, attempts: 0, last_error: None },
            next_attempt: now,
            claimed_until: None,
            claimed_by: None,
        }));
        for job in &batch.jobs {
            inner.jobs.insert(job.id, jobs::pending(job));
        }
        Ok(CommitReceipt { positions, commit: None })
    }

    /// Every outbox row, in the order they were committed.
    pub fn outbox_records(&self) -> Vec<OutboxRecord> {
        self.inner.read().outbox.iter().map(|r| r.record.clone()).collect()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    fn outbox(self: Arc<Self>) -> Option<Arc<dyn Outbox>> {
        Some(self)
    }

    fn schedule(self: Arc<Self>) -> Option<Arc<dyn crate::ports::ScheduleStore>> {
        Some(Arc::new(self.schedule.clone()))
    }

    fn jobs(self: Arc<Self>) -> Option<Arc<dyn crate::ports::JobStore>> {
        Some(self)
    }

    async fn commit(&self, mut batch: CommitBatch) -> Result<CommitReceipt> {
        batch.check()?;
        let deadlines = std::mem::take(&mut batch.deadlines);
        let mut inner = self.inner.write();
        self.schedule.commit_with(&deadlines, || Self::write(&mut inner, batch))
    }

    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        stream.check()?;
        let events: Vec<Arc<StoredEvent>> = {
            let inner = self.inner.read();
            match inner.streams.get(stream) {
                Some(s) => {
                    let from = usize::try_from(after_version).unwrap_or(usize::MAX).min(s.len());
                    s[from..].to_vec()
                }
                None => Vec::new(),
            }
        };
        Ok(futures::stream::iter(events)
            .map(|e| {
                Ok(StreamEvent {
                    version: e.version,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload.clone(),
                })
            })
            .boxed())
    }

    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        let inner = self.inner.read();
        let from = usize::try_from(after.position).unwrap_or(usize::MAX).min(inner.log.len());
        Ok(inner.log[from..].iter().take(limit).map(|e| StoredEvent::clone(e)).collect())
    }

    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        stream.check()?;
        Ok(self.inner.read().streams.get(stream).map_or(0, |s| s.len() as u64))
    }

    async fn event(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Option<StoredEvent>> {
        check_tenant(tenant)?;
        let inner = self.inner.read();
        let found = inner.by_id.get(&event_id).and_then(|&i| inner.log.get(i));
        Ok(found.filter(|e| e.stream.tenant_id.as_deref() == tenant).map(|e| StoredEvent::clone(e)))
    }

    async fn undo_log(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        check_tenant(tenant)?;
        let key = (tenant.map(ToOwned::to_owned), event_id);
        Ok(self.inner.read().undo_log.get(&key).cloned().unwrap_or_default())
    }

    async fn undo_log_of_stream(&self, stream: &StreamKey) -> Result<Vec<UndoLogEntry>> {
        stream.check()?;
        let inner = self.inner.read();
        let mut entries: Vec<UndoLogEntry> =
            inner.undo_log.values().flatten().filter(|e| e.stream == *stream).cloned().collect();
        entries.sort_by_key(|e| (e.recorded_at, e.event_id, e.generation, e.action));
        Ok(entries)
    }

    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        stream.check()?;
        Ok(self.inner.read().states.get(stream).cloned())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn claim(&self, relay: &str, limit: usize, lease: Duration) -> Result<Vec<OutboxRecord>> {
        let now = Instant::now();
        let mut inner = self.inner.write();
        let mut claimed = Vec::new();
        // Streams with a pending row that cannot be claimed: their later rows wait.
        let mut held = std::collections::HashSet::new();
        for row in &mut inner.outbox {
            if claimed.len() == limit {
                break;
            }
            if row.record.status != OutboxStatus::Pending {
                continue;
            }
            let stream = row.record.message.headers.get(crate::broker::headers::STREAM);
            if stream.is_some_and(|s| held.contains(s)) {
                continue;
            }
            let live_claim = row.claimed_until.is_some_and(|until| until > now);
            if row.next_attempt <= now && !live_claim {
                row.claimed_until = Some(now + lease);
                row.claimed_by = Some(relay.to_owned());
                claimed.push(row.record.clone());
            } else if let Some(s) = stream
                && (row.next_attempt > now || row.claimed_by.as_deref() != Some(relay))
            {
                // Due later, or claimed by another relay (this relay's own claims do not
                // hold its next batch back: it publishes its batches in order).
                held.insert(s.clone());
            }
        }
        Ok(claimed)
    }

    async fn release(&self, ids: &[Uuid]) -> Result<()> {
        let mut inner = self.inner.write();
        for row in inner.outbox.iter_mut().filter(|r| ids.contains(&r.record.message.id)) {
            row.claimed_until = None;
            row.claimed_by = None;
        }
        Ok(())
    }

    async fn mark_published(&self, id: Uuid) -> Result<()> {
        let mut inner = self.inner.write();
        let row = find_outbox(&mut inner.outbox, id)?;
        row.record.status = OutboxStatus::Published;
        row.claimed_until = None;
        Ok(())
    }

    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()> {
        let mut inner = self.inner.write();
        let row = find_outbox(&mut inner.outbox, id)?;
        row.record.attempts += 1;
        row.record.last_error = Some(error.to_owned());
        row.claimed_until = None;
        row.next_attempt = Instant::now() + retry_after;
        if row.record.attempts >= max_attempts {
            row.record.status = OutboxStatus::Dead;
        }
        Ok(())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let inner = self.inner.read();
        Ok(inner
            .outbox
            .iter()
            .filter(|r| r.record.status == OutboxStatus::Pending)
            .take(limit)
            .map(|r| r.record.clone())
            .collect())
    }

    async fn dead(&self) -> Result<Vec<OutboxRecord>> {
        let inner = self.inner.read();
        Ok(inner.outbox.iter().filter(|r| r.record.status == OutboxStatus::Dead).map(|r| r.record.clone()).collect())
    }

    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64> {
        let mut inner = self.inner.write();
        let mut n = 0;
        for row in inner
            .outbox
            .iter_mut()
            .filter(|r| r.record.status == OutboxStatus::Dead && ids.contains(&r.record.message.id))
        {
            row.record.status = OutboxStatus::Pending;
            row.record.attempts = 0;
            row.next_attempt = Instant::now();
            n += 1;
        }
        Ok(n)
    }
}

fn find_outbox(rows: &mut [OutboxRow], id: Uuid) -> Result<&mut OutboxRow> {
    rows.iter_mut()
        .find(|r| r.record.message.id == id)
        .ok_or_else(|| Error::store(format!("outbox message {id} does not exist")))
}

fn conflict(stream: &StreamKey, expected: u64, actual: u64) -> Error {
    Error::Conflict { stream: stream.to_string(), expected, actual }
}

/// Snapshots in memory.
#[derive(Clone, Default)]
pub struct MemorySnapshotStore {
    inner: Arc<Mutex<HashMap<StreamKey, Snapshot>>>,
}

impl MemorySnapshotStore {
    /// An empty snapshot store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshotStore {
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>> {
        Ok(self.inner.lock().get(stream).cloned())
    }

    async fn save(&self, snapshot: Snapshot) -> Result<()> {
        let mut map = self.inner.lock();
        let keep_old = map.get(&snapshot.stream).is_some_and(|old| old.version >= snapshot.version);
        if !keep_old {
            map.insert(snapshot.stream.clone(), snapshot);
        }
        Ok(())
    }
}
