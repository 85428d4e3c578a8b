//! The unit of work: everything one root command stages, committed in one batch.
//!
//! Aggregates loaded inside a unit of work are kept in it (an identity map), so a
//! nested command on the same aggregate sees the events its parent staged. `commit`
//! hands one [`CommitBatch`] to the store (one transaction), then dispatches the events
//! to their handlers and runs the after-commit hooks in the order they were added.
//! `rollback` drops everything and runs no hook.

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::conflict::MergeStrategy;
use crate::context::{self, RequestContext};
use crate::domain::{Aggregate, AggregateEvent, EventHeader, Metadata, Storage};
use crate::error::{Error, Result};
use crate::es::cache::Cached;
use crate::es::{AggregateCache, Loader};
use crate::ports::{
    CommitBatch, DeadlineWrite, NewEvent, NewJob, OutboxMessage, Snapshot, StateWrite, StoredState, StreamAppend,
    StreamKey, UndoLogEntry,
};

/// A unit of work shared by a root command and the commands nested in it.
#[derive(Clone, Default)]
pub struct UnitOfWork {
    state: Arc<Mutex<UowState>>,
}

#[derive(Default)]
struct UowState {
    /// Found by a linear scan: a command touches a handful of aggregates, and a scan
    /// is cheaper than hashing their keys.
    streams: Vec<Box<dyn StagedStream>>,
    outbox: Vec<OutboxMessage>,
    jobs: Vec<NewJob>,
    /// Deadlines scheduled, cancelled or fired, written with the batch.
    deadlines: Vec<DeadlineWrite>,
    hooks: Vec<BoxFuture<'static, ()>>,
    closed: Option<&'static str>,
    /// Whether an aggregate came from the aggregate cache (a conflict may mean it was stale).
    used_cache: bool,
    /// Committed with the batch so that the same command is never committed twice.
    idempotency_key: Option<uuid::Uuid>,
    /// Undo log entries, committed with the events of the command that undid the event.
    undo_log: Vec<UndoLogEntry>,
}

/// An event committed by a unit of work, ready for its handlers.
pub(crate) struct Committed {
    pub(crate) type_id: TypeId,
    pub(crate) envelope: Box<dyn Any + Send + Sync>,
}

/// What a unit of work hands to its commit.
pub(crate) struct Taken {
    pub(crate) batch: CommitBatch,
    /// The batch without the streams' rows, kept when a stream may merge a conflict
    /// ([`Aggregate::on_conflict`]) so that the batch can be written again after merging.
    pub(crate) base: Option<CommitBatch>,
    pub(crate) streams: Vec<Box<dyn StagedStream>>,
    pub(crate) hooks: Vec<BoxFuture<'static, ()>>,
}

/// What is left to do once the batch is durable.
pub(crate) struct AfterCommit {
    pub(crate) events: Vec<Committed>,
    pub(crate) hooks: Vec<BoxFuture<'static, ()>>,
    pub(crate) snapshots: Vec<Snapshot>,
}

/// What the committed streams are handed to.
pub(crate) struct CommitEnv<'a> {
    /// Which payload types have handlers (no envelope is built for the others).
    pub(crate) wanted: &'a (dyn Fn(TypeId) -> bool + Sync),
    pub(crate) cache: Option<&'a AggregateCache>,
    pub(crate) loader: &'a Loader,
}

impl UnitOfWork {
    /// A new, empty unit of work.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new unit of work whose commit records `key`: a second commit with the same key
    /// is refused by the store ([`Error::AlreadyProcessed`]).
    pub(crate) fn with_idempotency_key(key: Option<uuid::Uuid>) -> Self {
        let uow = Self::default();
        if key.is_some() {
            uow.state.lock().idempotency_key = key;
        }
        uow
    }

    /// The unit of work of the command being handled on this task, if any.
    pub(crate) fn current() -> Option<UnitOfWork> {
        let state = context::joined()?.downcast::<Mutex<UowState>>().ok()?;
        Some(UnitOfWork { state })
    }

    /// Runs `fut` in `request`'s scope with this unit of work as the current one.
    pub(crate) fn enter<F: Future>(&self, request: RequestContext, fut: F) -> impl Future<Output = F::Output> {
        context::enter(request, Some(self.state.clone()), fut)
    }

    fn open(&self) -> Result<parking_lot::MutexGuard<'_, UowState>> {
        let guard = self.state.lock();
        match guard.closed {
            Some(how) => Err(Error::UnitOfWorkClosed(how)),
            None => Ok(guard),
        }
    }

    /// Whether the aggregate behind `key` is already staged.
    pub(crate) fn contains(&self, key: &StreamKey) -> bool {
        self.state.lock().streams.iter().any(|s| s.key() == key)
    }

    /// Stages a freshly loaded aggregate unless one is already staged for its key.
    pub(crate) fn stage<A: Aggregate>(&self, staged: Staged<A>) -> Result<()> {
        let mut st = self.open()?;
        if !st.streams.iter().any(|s| *s.key() == staged.key) {
            st.used_cache |= staged.from_cache;
            st.streams.push(Box::new(staged));
        }
        Ok(())
    }

    /// Runs `f` on the staged aggregate behind `key`.
    pub(crate) fn with_staged<A: Aggregate, R>(
        &self,
        key: &StreamKey,
        f: impl FnOnce(&mut Staged<A>) -> R,
    ) -> Result<R> {
        let mut st = self.open()?;
        let i = st
            .streams
            .iter()
            .position(|s| s.key() == key)
            .ok_or_else(|| Error::NotFound { stream: key.to_string() })?;
        let staged = st.streams[i]
            .as_any_mut()
            .downcast_mut::<Staged<A>>()
            .ok_or_else(|| Error::store(format!("stream `{key}` is staged as another aggregate type")))?;
        Ok(f(staged))
    }

    /// Adds a message to the outbox, written in the same transaction as the events.
    pub fn add_outbox(&self, message: OutboxMessage) -> Result<()> {
        self.open()?.outbox.push(message);
        Ok(())
    }

    /// Records an undo log entry, written in the same transaction as the events (see
    /// [`crate::undo`]).
    pub(crate) fn log_undo(&self, entry: UndoLogEntry) -> Result<()> {
        self.open()?.undo_log.push(entry);
        Ok(())
    }

    /// [`UnitOfWork::log_undo`] on a unit of work that was just made (it is open).
    pub(crate) fn stage_undo(&self, entry: UndoLogEntry) {
        self.state.lock().undo_log.push(entry);
    }

    /// Adds a background job, stored pending in the same transaction as the events (see
    /// [`crate::jobs`]); a rollback drops it.
    pub fn add_job(&self, job: NewJob) -> Result<()> {
        self.open()?.jobs.push(job);
        Ok(())
    }

    /// Adds changes to the schedule, written in the same transaction as the events
    /// (aggregate deadlines: see [`mod@crate::deadline`]).
    pub(crate) fn add_deadlines(&self, writes: impl IntoIterator<Item = DeadlineWrite>) -> Result<()> {
        self.open()?.deadlines.extend(writes);
        Ok(())
    }

    /// Adds a hook that runs after a successful commit, after earlier hooks.
    pub fn after_commit(&self, hook: BoxFuture<'static, ()>) -> Result<()> {
        self.open()?.hooks.push(hook);
        Ok(())
    }

    /// Drops everything staged; no hook runs.
    pub fn rollback(&self) {
        let mut st = self.state.lock();
        if st.closed.is_none() {
            st.closed = Some("rolled back");
            st.streams.clear();
            st.outbox.clear();
            st.jobs.clear();
            st.deadlines.clear();
            st.hooks.clear();
            st.undo_log.clear();
        }
    }

    /// Serializes everything staged into one batch and closes the unit of work.
    /// `to_outbox` says which event types also go to the outbox (for async handlers).
    /// `None` when nothing was staged at all: there is nothing to commit or run.
    pub(crate) fn take_batch(&self, to_outbox: &dyn Fn(TypeId) -> bool) -> Result<Option<Taken>> {
        let mut st = self.open()?;
        if st.streams.is_empty()
            && st.outbox.is_empty()
            && st.jobs.is_empty()
            && st.deadlines.is_empty()
            && st.hooks.is_empty()
            && st.idempotency_key.is_none()
            && st.undo_log.is_empty()
        {
            st.closed = Some("committed");
            return Ok(None);
        }
        let base = CommitBatch {
            outbox: std::mem::take(&mut st.outbox),
            jobs: std::mem::take(&mut st.jobs),
            deadlines: std::mem::take(&mut st.deadlines),
            idempotency_key: st.idempotency_key,
            undo_log: std::mem::take(&mut st.undo_log),
            ..CommitBatch::default()
        };
        // Kept (only) when a stream may merge a conflict: the batch is then written again.
        let kept = st.streams.iter().any(|s| s.merge_strategy().is_some()).then(|| base.clone());
        let batch = write_streams(base, &st.streams, to_outbox)?;
        st.closed = Some("committed");
        let streams = std::mem::take(&mut st.streams);
        let hooks = std::mem::take(&mut st.hooks);
        Ok(Some(Taken { batch, base: kept, streams, hooks }))
    }

    /// Whether nothing was staged: no aggregate, outbox message, job or hook.
    pub(crate) fn is_untouched(&self) -> bool {
        let st = self.state.lock();
        st.streams.is_empty()
            && st.outbox.is_empty()
            && st.jobs.is_empty()
            && st.deadlines.is_empty()
            && st.hooks.is_empty()
    }

    /// Whether an aggregate of this unit of work came from the aggregate cache.
    pub(crate) fn used_cache(&self) -> bool {
        self.state.lock().used_cache
    }

    /// Marks the unit of work failed after a store error (nothing was written).
    pub(crate) fn mark_failed(&self) {
        self.state.lock().closed = Some("rolled back");
    }
}

/// `base` with the rows of `streams` added: their events, state rows and outbox rows.
pub(crate) fn write_streams(
    mut base: CommitBatch,
    streams: &[Box<dyn StagedStream>],
    to_outbox: &dyn Fn(TypeId) -> bool,
) -> Result<CommitBatch> {
    for s in streams {
        s.write(&mut base, to_outbox)?;
    }
    Ok(base)
}

/// Turns committed streams into handler-ready events, due snapshots and cache entries.
pub(crate) fn after_commit(
    streams: Vec<Box<dyn StagedStream>>,
    hooks: Vec<BoxFuture<'static, ()>>,
    positions: &[u64],
    env: &CommitEnv<'_>,
) -> AfterCommit {
    let mut positions = positions.iter().copied();
    let mut after = AfterCommit { events: Vec::new(), hooks, snapshots: Vec::new() };
    for s in streams {
        s.into_committed(&mut positions, env, &mut after);
    }
    after
}

/// Counts the events a commit appended, once per stream
/// ([`crate::metrics::EVENTS_APPENDED_TOTAL`]).
pub(crate) fn count_appended(streams: &[Box<dyn StagedStream>]) {
    for s in streams {
        s.count_appended();
    }
}

/// Counts a commit refused by a version conflict under the type of the stream it names
/// ([`crate::metrics::CONFLICTS_TOTAL`]).
pub(crate) fn count_conflict(streams: &[Box<dyn StagedStream>], error: &Error) {
    let Error::Conflict { stream, .. } = error else { return };
    let stream_type = match streams {
        [one] => one.stream_type(),
        _ => streams.iter().find(|s| s.key().to_string() == *stream).map_or("unknown", |s| s.stream_type()),
    };
    metrics::counter!(crate::metrics::CONFLICTS_TOTAL, "stream_type" => stream_type).increment(1);
}

/// A staged stream of any aggregate type.
pub(crate) trait StagedStream: Send {
    fn key(&self) -> &StreamKey;
    /// The aggregate type.
    fn stream_type(&self) -> &'static str;
    /// Adds the events staged on it to [`crate::metrics::EVENTS_APPENDED_TOTAL`].
    fn count_appended(&self);
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn write(&self, batch: &mut CommitBatch, to_outbox: &dyn Fn(TypeId) -> bool) -> Result<()>;
    /// How a conflict on it is merged, when its aggregate declares it
    /// ([`Aggregate::on_conflict`], state-stored aggregates only).
    fn merge_strategy(&self) -> Option<&'static MergeStrategy>;
    /// Merges the state another writer stored (`stored`) with this one, as its strategy
    /// says, and moves onto the stored version: the staged events follow it.
    fn rebase(&mut self, stored: StoredState) -> Result<()>;
    fn into_committed(
        self: Box<Self>,
        positions: &mut dyn Iterator<Item = u64>,
        env: &CommitEnv<'_>,
        out: &mut AfterCommit,
    );
}

/// An event decided but not yet committed.
pub(crate) struct Pending<E> {
    pub(crate) event: E,
    pub(crate) event_id: Uuid,
    pub(crate) metadata: Metadata,
    pub(crate) occurred_at: DateTime<Utc>,
}

/// An aggregate loaded into a unit of work, with the events staged on it.
pub(crate) struct Staged<A: Aggregate> {
    pub(crate) key: StreamKey,
    pub(crate) state: A,
    /// The version it was loaded at.
    pub(crate) loaded_version: u64,
    /// The version of the snapshot it was loaded from (0: none).
    pub(crate) snapshot_version: u64,
    pub(crate) from_cache: bool,
    pub(crate) pending: Vec<Pending<A::Event>>,
}

impl<A: Aggregate> Staged<A> {
    /// The key of its [`crate::metrics::EVENTS_APPENDED_TOTAL`] series, made at compile
    /// time: counting a commit allocates and hashes nothing.
    const APPENDED: metrics::Key =
        metrics::Key::from_static_parts(crate::metrics::EVENTS_APPENDED_TOTAL, Self::APPENDED_LABELS);
    const APPENDED_LABELS: &'static [metrics::Label] = &[metrics::Label::from_static_parts("stream_type", A::TYPE)];

    pub(crate) fn version(&self) -> u64 {
        self.loaded_version + self.pending.len() as u64
    }

    /// The outbox row carrying an event to its async handlers: the envelope as JSON
    /// (position 0: it is assigned by the same commit), keyed by the event id.
    fn outbox_message(&self, p: &Pending<A::Event>, version: u64, payload: &str) -> Result<OutboxMessage> {
        let header = EventHeader {
            event_id: p.event_id,
            stream_type: self.key.stream_type.clone(),
            stream_id: self.key.stream_id.clone(),
            version,
            position: 0,
            event_type: p.event.event_type().to_owned(),
            schema_version: p.event.schema_version(),
            occurred_at: p.occurred_at,
            metadata: p.metadata.clone(),
        };
        let encode = |source| Error::Encode { what: format!("envelope of event {}", p.event_id), source };
        let mut envelope = serde_json::to_value(&header).map_err(encode)?;
        envelope["payload"] = serde_json::from_str(payload).map_err(encode)?;
        Ok(OutboxMessage {
            id: p.event_id,
            topic: p.event.event_type().to_owned(),
            payload: envelope.to_string(),
            headers: broker_headers(&self.key, p.event.event_type(), p.event_id, &p.metadata),
            created_at: p.occurred_at,
        })
    }
}

/// The headers of an event's outbox row (see [`crate::broker::headers`]).
fn broker_headers(
    key: &StreamKey,
    event_type: &str,
    event_id: uuid::Uuid,
    meta: &crate::domain::Metadata,
) -> std::collections::BTreeMap<String, String> {
    use crate::broker::headers as h;
    let mut headers = std::collections::BTreeMap::new();
    headers.insert(h::KIND.to_owned(), "event".to_owned());
    headers.insert(h::EVENT_TYPE.to_owned(), event_type.to_owned());
    headers.insert(h::STREAM.to_owned(), key.to_string());
    let correlation = meta.correlation_id.unwrap_or(event_id);
    headers.insert(h::CORRELATION_ID.to_owned(), correlation.to_string());
    if let Some(c) = meta.causation_id {
        headers.insert(h::CAUSATION_ID.to_owned(), c.to_string());
    }
    if let Some(t) = &meta.tenant_id {
        headers.insert(h::TENANT.to_owned(), t.clone());
    }
    if let Some(p) = &meta.principal {
        headers.insert(h::PRINCIPAL.to_owned(), p.clone());
    }
    headers.insert(h::TRACEPARENT.to_owned(), traceparent_for(&meta.headers, correlation, event_id));
    headers
}

/// The W3C `traceparent` of a message staged now: the one its context's headers carry
/// (in the handlers of a delivered message, its `cqrs_ddd.deliver` span's, else the
/// message's own: see [`crate::Mediator::deliver`]), else the current span's when a
/// [`crate::telemetry::Propagator`] is installed (a root command stages and commits inside
/// its `cqrs_ddd.command` span), else one made from the correlation id.
pub(crate) fn traceparent_for(
    headers: &std::collections::BTreeMap<String, String>,
    correlation: Uuid,
    message_id: Uuid,
) -> String {
    match headers.get(crate::broker::headers::TRACEPARENT) {
        Some(tp) => tp.clone(),
        None => crate::telemetry::current_traceparent()
            .unwrap_or_else(|| crate::broker::traceparent(correlation, message_id)),
    }
}

impl<A: Aggregate> StagedStream for Staged<A> {
    fn key(&self) -> &StreamKey {
        &self.key
    }

    fn stream_type(&self) -> &'static str {
        A::TYPE
    }

    fn count_appended(&self) {
        if !self.pending.is_empty() {
            crate::metrics::counter_of(&Self::APPENDED).increment(self.pending.len() as u64);
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn write(&self, batch: &mut CommitBatch, to_outbox: &dyn Fn(TypeId) -> bool) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut events = Vec::with_capacity(self.pending.len());
        for (i, p) in self.pending.iter().enumerate() {
            let payload = p.event.to_json().map_err(|source| Error::Serialization {
                stream: self.key.to_string(),
                version: self.loaded_version + i as u64 + 1,
                event_type: p.event.event_type().to_owned(),
                source,
            })?;
            if to_outbox(p.event.payload_type_id()) {
                batch.outbox.push(self.outbox_message(p, self.loaded_version + i as u64 + 1, &payload)?);
            }
            events.push(NewEvent {
                event_id: p.event_id,
                event_type: p.event.event_type(),
                schema_version: p.event.schema_version(),
                payload,
                metadata: p.metadata.clone(),
                occurred_at: p.occurred_at,
            });
        }
        if A::STORAGE == Storage::StateStored {
            let state = crate::domain::encode_checked(&self.state)
                .map_err(|source| Error::Encode { what: format!("state of `{}`", self.key), source })?;
            batch.states.push(StateWrite {
                stream: self.key.clone(),
                expected_version: self.loaded_version,
                version: self.version(),
                state,
            });
        }
        batch.appends.push(StreamAppend { stream: self.key.clone(), expected_version: self.loaded_version, events });
        Ok(())
    }

    fn merge_strategy(&self) -> Option<&'static MergeStrategy> {
        match A::STORAGE {
            Storage::StateStored if !self.pending.is_empty() => A::on_conflict(),
            _ => None,
        }
    }

    fn rebase(&mut self, stored: StoredState) -> Result<()> {
        let Some(strategy) = self.merge_strategy() else { return Ok(()) };
        let failed = |e: serde_json::Error| Error::Merge {
            stream: self.key.to_string(),
            version: stored.version,
            reason: e.to_string(),
        };
        let ours = serde_json::to_value(&self.state).map_err(failed)?;
        let theirs: serde_json::Value = serde_json::from_str(&stored.state).map_err(failed)?;
        let merged = strategy.merge(&theirs, &ours);
        self.state = serde_json::from_value(merged).map_err(failed)?;
        self.loaded_version = stored.version;
        self.from_cache = false;
        Ok(())
    }

    fn into_committed(
        self: Box<Self>,
        positions: &mut dyn Iterator<Item = u64>,
        env: &CommitEnv<'_>,
        out: &mut AfterCommit,
    ) {
        let version = self.version();
        let Staged { key, state, loaded_version, mut snapshot_version, pending, .. } = *self;
        if A::STORAGE == Storage::EventSourced
            && env.loader.policy(A::TYPE).is_some_and(|p| p.due(loaded_version, version, snapshot_version))
        {
            match crate::domain::encode_checked(&state) {
                Ok(json) => {
                    snapshot_version = version;
                    out.snapshots.push(Snapshot { stream: key.clone(), version, state: json, taken_at: Utc::now() });
                }
                Err(e) => tracing::warn!(stream = %key, error = %e, "cannot serialize a snapshot"),
            }
        }
        for (i, p) in pending.into_iter().enumerate() {
            let position = positions.next().unwrap_or(0);
            let type_id = p.event.payload_type_id();
            if !(env.wanted)(type_id) {
                continue;
            }
            let header = EventHeader {
                event_id: p.event_id,
                stream_type: key.stream_type.clone(),
                stream_id: key.stream_id.clone(),
                version: loaded_version + i as u64 + 1,
                position,
                event_type: p.event.event_type().to_owned(),
                schema_version: p.event.schema_version(),
                occurred_at: p.occurred_at,
                metadata: p.metadata,
            };
            out.events.push(Committed { type_id, envelope: p.event.into_envelope(header) });
        }
        if let Some(cache) = env.cache {
            cache.put(key, Cached { state, version, snapshot_version });
        }
    }
}
