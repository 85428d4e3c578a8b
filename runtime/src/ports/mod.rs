//! The seams to infrastructure. The in-memory adapters in [`crate::memory`] implement
//! every port; `cqrs-ddd-sqlx` implements them on PostgreSQL and SQLite.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use async_trait::async_trait;

mod jobs;
mod sagas;
mod undo;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
pub use jobs::{
    Heartbeat, JobFilter, JobOutcome, JobProgress, JobRecord, JobStats, JobStatus, JobStore, NewJob, swept,
};
pub(crate) use sagas::after;
pub use sagas::{
    Clock, SagaFilter, SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore, ScheduledCommand, SystemClock,
};
use serde::{Deserialize, Serialize};
pub use undo::{UndoAction, UndoLogEntry};
use uuid::Uuid;

use crate::domain::Metadata;
use crate::error::Result;

/// Names one stream: the tenant (if any), the aggregate type and the aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamKey {
    /// The tenant that owns the stream; `None` in single-tenant applications.
    pub tenant_id: Option<String>,
    /// The aggregate type.
    pub stream_type: String,
    /// The aggregate id.
    pub stream_id: String,
}

impl StreamKey {
    /// A stream key without tenant.
    pub fn new(stream_type: impl Into<String>, stream_id: impl Into<String>) -> Self {
        StreamKey { tenant_id: None, stream_type: stream_type.into(), stream_id: stream_id.into() }
    }

    /// The same stream key scoped to `tenant`.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant_id = tenant;
        self
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tenant_id {
            write!(f, "{t}/")?;
        }
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

pub use crate::context::check_tenant;
pub use crate::domain::Cursor;

impl StreamKey {
    /// Refuses an empty tenant id.
    pub fn check(&self) -> Result<()> {
        check_tenant(self.tenant_id.as_deref())
    }
}

/// An event as it goes into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id (UUIDv7).
    pub event_id: Uuid,
    /// Stable type name.
    pub event_type: &'static str,
    /// Payload shape version.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
    /// Correlation, causation, tenant, principal, headers.
    pub metadata: Metadata,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
}

/// An event as it comes out of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The stream it belongs to.
    pub stream: StreamKey,
    /// Unique id.
    pub event_id: Uuid,
    /// Sequence in the stream, 1-based.
    pub version: u64,
    /// Global position, unique.
    pub position: u64,
    /// Commit order key (see [`Cursor`]).
    pub commit: u64,
    /// Stable type name.
    pub event_type: String,
    /// Payload shape version.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
    /// Correlation, causation, tenant, principal, headers.
    pub metadata: Metadata,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
}

/// Events for one stream, appended only if the stream is at `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream.
    pub stream: StreamKey,
    /// The version the writer loaded; 0 for a new stream.
    pub expected_version: u64,
    /// The events, to become versions `expected_version + 1 ..`.
    pub events: Vec<NewEvent>,
}

/// The state row of a state-stored aggregate, written only if it is at `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The aggregate's stream key.
    pub stream: StreamKey,
    /// The version the writer loaded; 0 when the row does not exist yet.
    pub expected_version: u64,
    /// The version after this write.
    pub version: u64,
    /// The state as JSON text.
    pub state: String,
}

/// A state row as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    /// The version of the state.
    pub version: u64,
    /// The state as JSON text.
    pub state: String,
}

/// A message for the transactional outbox, committed with the events that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Unique id (used by brokers for de-duplication).
    pub id: Uuid,
    /// Where it goes (subject, routing key, or event type).
    pub topic: String,
    /// The message body as JSON text.
    pub payload: String,
    /// Headers to send along.
    pub headers: BTreeMap<String, String>,
    /// When it was staged.
    pub created_at: DateTime<Utc>,
}

/// Everything one unit of work writes: committed atomically, or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitBatch {
    /// Events, per stream, each with its expected version.
    pub appends: Vec<StreamAppend>,
    /// State rows of state-stored aggregates.
    pub states: Vec<StateWrite>,
    /// Outbox messages.
    pub outbox: Vec<OutboxMessage>,
    /// Background jobs enqueued by the command ([`crate::CommandContext::enqueue`]):
    /// stored pending with the events, or not at all.
    pub jobs: Vec<NewJob>,
    /// Recorded with the batch; a second batch with the same key is refused with
    /// [`crate::Error::AlreadyProcessed`] and writes nothing (exactly-once commands).
    pub idempotency_key: Option<Uuid>,
    /// The tenant the batch was written for: idempotency keys are per tenant (tenant B
    /// may use a key tenant A used).
    pub tenant_id: Option<String>,
    /// Undo log entries ([`crate::undo`]), written with the events of the command that
    /// undid (or redid) the event: an entry already logged refuses the whole batch with
    /// [`crate::undo::UndoError::AlreadyUndone`] (or `AlreadyRedone`).
    pub undo_log: Vec<UndoLogEntry>,
    /// Deadlines scheduled, cancelled or fired by the batch's aggregates, written into
    /// the store's schedule ([`EventStore::schedule`]) in the same transaction, in order.
    pub deadlines: Vec<DeadlineWrite>,
}

/// A change to the schedule committed with a [`CommitBatch`]: how an aggregate's
/// deadlines are kept in its unit of work (see [`mod@crate::deadline`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DeadlineWrite {
    /// Stores a scheduled command, replacing one with the same id in its tenant.
    Schedule(ScheduledCommand),
    /// Removes the scheduled command of `tenant_id` with this id, if there is one.
    Cancel {
        /// Its tenant.
        tenant_id: Option<String>,
        /// Its id.
        id: Uuid,
    },
    /// Removes the scheduled command being fired. When it is no longer there as
    /// `scheduled_by` left it (cancelled, fired elsewhere, or scheduled again by another
    /// command), the batch is refused with [`crate::Error::Conflict`] and writes nothing.
    Fire {
        /// Its tenant.
        tenant_id: Option<String>,
        /// Its id.
        id: Uuid,
        /// The causation id it was stored with: the command that scheduled it.
        scheduled_by: Option<Uuid>,
    },
}

impl DeadlineWrite {
    /// The tenant of the scheduled command it writes.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            DeadlineWrite::Schedule(c) => c.metadata.tenant_id.as_deref(),
            DeadlineWrite::Cancel { tenant_id, .. } | DeadlineWrite::Fire { tenant_id, .. } => tenant_id.as_deref(),
        }
    }

    /// The id of the scheduled command it writes.
    pub fn id(&self) -> Uuid {
        match self {
            DeadlineWrite::Schedule(c) => c.id,
            DeadlineWrite::Cancel { id, .. } | DeadlineWrite::Fire { id, .. } => *id,
        }
    }

    /// The conflict a [`DeadlineWrite::Fire`] meets when its command is gone or replaced.
    pub fn fire_conflict(&self) -> crate::Error {
        crate::Error::Conflict { stream: format!("deadline {}", self.id()), expected: 1, actual: 0 }
    }
}

impl CommitBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
            && self.states.is_empty()
            && self.outbox.is_empty()
            && self.jobs.is_empty()
            && self.idempotency_key.is_none()
            && self.undo_log.is_empty()
            && self.deadlines.is_empty()
    }

    /// Refuses an empty tenant id anywhere in the batch (every store calls it first).
    pub fn check(&self) -> Result<()> {
        check_tenant(self.tenant_id.as_deref())?;
        self.appends.iter().try_for_each(|a| a.stream.check())?;
        self.jobs.iter().try_for_each(|j| check_tenant(j.metadata.tenant_id.as_deref()))?;
        self.states.iter().try_for_each(|s| s.stream.check())?;
        self.undo_log.iter().try_for_each(|u| u.stream.check())?;
        self.deadlines.iter().try_for_each(|d| check_tenant(d.tenant_id()))
    }

    /// Number of events in the batch.
    pub fn event_count(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }
}

/// The rows of an outbox, counted ([`Outbox::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Rows waiting to be published, due or not.
    pub pending: u64,
    /// Rows given up on.
    pub dead: u64,
}

/// What a commit assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The global position of each event, in batch order (appends, then events).
    pub positions: Vec<u64>,
    /// The commit order key of the batch ([`Cursor::commit`]), on stores where it is not
    /// the position itself (PostgreSQL: the transaction id); `None` where it is.
    pub commit: Option<u64>,
}

impl CommitReceipt {
    /// The cursor just past the last event of the batch: a reader of all events that
    /// reached it has read the whole batch. `None` for a batch without events.
    pub fn cursor(&self) -> Option<Cursor> {
        let last = self.positions.iter().copied().max()?;
        Some(Cursor { commit: self.commit.unwrap_or(last), position: last })
    }
}

impl StoredEvent {
    /// The cursor just past this event.
    pub fn cursor(&self) -> Cursor {
        Cursor { commit: self.commit, position: self.position }
    }
}

/// What loading an aggregate needs of one event of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Sequence in the stream, 1-based.
    pub version: u64,
    /// Stable type name.
    pub event_type: String,
    /// Payload shape version.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
}

/// The events of one stream, read lazily (bounded memory for any stream length).
pub type EventStream<'a> = BoxStream<'a, Result<StreamEvent>>;

/// Durable storage of events and state rows.
///
/// `commit` writes a whole [`CommitBatch`] atomically: a stream that is not at its
/// expected version fails the batch with [`crate::Error::Conflict`] and nothing is
/// written. State rows and outbox rows live in the same store because they commit in
/// the same transaction.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Writes the batch atomically.
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt>;

    /// The outbox this store writes the outbox rows of a commit into, when it keeps
    /// them itself (every store of cqrs-ddd does): what the worker host relays.
    fn outbox(self: Arc<Self>) -> Option<Arc<dyn Outbox>> {
        None
    }

    /// The document store of read models on the same database, if this store is one
    /// (the SQL stores are): where hosted projections write by default.
    fn read_models(self: Arc<Self>) -> Option<Arc<dyn ProjectionStore>> {
        None
    }

    /// The job store this store writes the jobs of a commit into
    /// ([`CommitBatch::jobs`]), when it keeps them itself (every store of cqrs-ddd
    /// does): where [`crate::jobs`] are enqueued, claimed and reported on. With `None`,
    /// enqueueing a job fails ([`crate::Error::NotWired`]).
    fn jobs(self: Arc<Self>) -> Option<Arc<dyn JobStore>> {
        None
    }

    /// The schedule this store writes the [`CommitBatch::deadlines`] of a commit into, in
    /// the same transaction, when it keeps one (every store of cqrs-ddd does): the
    /// default schedule of an application built on it. A store without one refuses a
    /// batch with deadlines.
    fn schedule(self: Arc<Self>) -> Option<Arc<dyn ScheduleStore>> {
        None
    }

    /// The events of one stream with version > `after_version`, in order, read lazily.
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>>;

    /// Up to `limit` events after `after`, in [`Cursor`] order, of every stream and every
    /// tenant, whatever the tenant of the current [`crate::RequestContext`]: readers of
    /// all events (projections, relays, sagas) see every tenant unless they ask for one
    /// with [`EventStore::read_tenant`].
    /// Gap-safe: an event that commits later never sorts before one already returned.
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>>;

    /// Like [`EventStore::read_all`], only the events of `tenant` (`None`: the events
    /// without a tenant). The cursor is the same global one, so a reader of one tenant
    /// needs a checkpoint of its own. By default it filters pages of `read_all`; SQL
    /// stores filter in the query.
    async fn read_tenant(&self, tenant: Option<&str>, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        check_tenant(tenant)?;
        let mut cursor = after;
        loop {
            let page = self.read_all(cursor, limit.max(1)).await?;
            let Some(last) = page.last() else { return Ok(Vec::new()) };
            cursor = last.cursor();
            let full = page.len() >= limit.max(1);
            let mine: Vec<StoredEvent> = page.into_iter().filter(|e| e.stream.tenant_id.as_deref() == tenant).collect();
            if !mine.is_empty() || !full {
                return Ok(mine);
            }
        }
    }

    /// The current version of a stream (0 when it has no events).
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64>;

    /// The state row of a state-stored aggregate.
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>>;

    /// What holds the gap-safe horizon of [`EventStore::read_all`] back, if anything: a
    /// transaction that may still commit events below it has been open since
    /// [`ReadStall::since`]. `None` when readers see every committed event (and on stores
    /// that commit one at a time). Workers report it in their status and log a warning
    /// when it lasts.
    async fn read_stall(&self) -> Result<Option<ReadStall>> {
        Ok(None)
    }

    /// The cursor of the last event a reader of all events can see now.
    async fn head(&self) -> Result<Cursor> {
        let mut cursor = Cursor::START;
        loop {
            let page = self.read_all(cursor, 1000).await?;
            match page.last() {
                Some(last) => cursor = last.cursor(),
                None => return Ok(cursor),
            }
        }
    }

    /// The newest `limit` events a reader of all events can see now, of the tenants in
    /// `scope`, oldest first: the start of an operator's tail. Reading on with
    /// [`EventStore::read_all`] after the last one's cursor misses nothing. By default it
    /// reads every page; SQL stores ask for the newest rows.
    async fn latest(&self, scope: TenantScope<'_>, limit: usize) -> Result<Vec<StoredEvent>> {
        scope.check()?;
        let mut newest = std::collections::VecDeque::with_capacity(limit.min(1024));
        let mut cursor = Cursor::START;
        loop {
            let page = self.read_all(cursor, 1000).await?;
            let Some(last) = page.last() else { return Ok(newest.into()) };
            cursor = last.cursor();
            for event in page.into_iter().filter(|e| scope.admits(e.stream.tenant_id.as_deref())) {
                if newest.len() == limit {
                    newest.pop_front();
                }
                if limit > 0 {
                    newest.push_back(event);
                }
            }
        }
    }

    /// The event `event_id` of `tenant` (`None`: of no tenant); `None` when that tenant
    /// has no such event, even when another tenant has. By default it reads every page of
    /// the tenant's events; the stores of cqrs-ddd look it up by id.
    async fn event(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Option<StoredEvent>> {
        check_tenant(tenant)?;
        let mut cursor = Cursor::START;
        loop {
            let page = self.read_tenant(tenant, cursor, 1000).await?;
            let Some(last) = page.last() else { return Ok(None) };
            cursor = last.cursor();
            if let Some(found) = page.into_iter().find(|e| e.event_id == event_id) {
                return Ok(Some(found));
            }
        }
    }

    /// The undo log entries of event `event_id` of `tenant`, oldest first (see
    /// [`crate::undo`]). A store that keeps no undo log (the default) answers
    /// [`crate::Error::NotWired`], so that undo is refused before anything is sent: such a
    /// store would drop [`CommitBatch::undo_log`].
    async fn undo_log(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        let _ = (tenant, event_id);
        Err(no_undo_log())
    }

    /// The undo log entries of the events of one stream (its key names the tenant),
    /// oldest first.
    async fn undo_log_of_stream(&self, stream: &StreamKey) -> Result<Vec<UndoLogEntry>> {
        let _ = stream;
        Err(no_undo_log())
    }

    /// The tenants that have events, sorted. By default it reads every page; SQL stores
    /// ask for the distinct tenant column.
    async fn tenants(&self) -> Result<Vec<String>> {
        let mut tenants = std::collections::BTreeSet::new();
        let mut cursor = Cursor::START;
        loop {
            let page = self.read_all(cursor, 1000).await?;
            let Some(last) = page.last() else { return Ok(tenants.into_iter().collect()) };
            cursor = last.cursor();
            tenants.extend(page.into_iter().filter_map(|e| e.stream.tenant_id));
        }
    }
}

fn no_undo_log() -> crate::Error {
    crate::Error::NotWired {
        part: "undo log",
        hint: "its event store keeps none; use `MemoryStore` or a store of `cqrs-ddd-sqlx`, or implement `EventStore::undo_log`",
    }
}

/// Which tenants an operator's listing covers ([`EventStore::latest`],
/// [`SagaStore::list`], [`ScheduleStore::scheduled`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TenantScope<'a> {
    /// Every tenant's, and what belongs to none.
    #[default]
    All,
    /// One tenant's (`None`: what belongs to no tenant).
    Only(Option<&'a str>),
}

impl TenantScope<'_> {
    /// Whether something of `tenant` is in the scope.
    pub fn admits(&self, tenant: Option<&str>) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(only) => *only == tenant,
        }
    }

    /// Refuses an empty tenant id.
    pub fn check(&self) -> Result<()> {
        match self {
            TenantScope::All => Ok(()),
            TenantScope::Only(tenant) => check_tenant(*tenant),
        }
    }
}

/// An open transaction that holds readers of all events back (see
/// [`EventStore::read_stall`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStall {
    /// The holding transaction's id.
    pub xid: u64,
    /// How many transactions started after it (its xid age), when known.
    pub xid_age: Option<u64>,
    /// The backend process running it, when visible (a prepared transaction has none).
    pub pid: Option<i32>,
    /// Its client's `application_name`, when visible.
    pub application_name: Option<String>,
    /// When its transaction started, when visible.
    pub since: Option<DateTime<Utc>>,
}

impl ReadStall {
    /// How long it has held the horizon (zero when its start is unknown).
    pub fn held_for(&self, now: DateTime<Utc>) -> Duration {
        self.since.and_then(|s| (now - s).to_std().ok()).unwrap_or_default()
    }
}

/// A snapshot of an aggregate's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream it summarises.
    pub stream: StreamKey,
    /// The version of the last event folded into it.
    pub version: u64,
    /// The state as JSON text.
    pub state: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

/// Storage of aggregate snapshots (one, the newest, per stream).
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The newest snapshot of the stream.
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>>;
    /// Stores a snapshot, replacing an older one.
    async fn save(&self, snapshot: Snapshot) -> Result<()>;
}

/// Delivery state of an outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxStatus {
    /// Waiting to be published (or to be retried).
    Pending,
    /// Handed to the publisher.
    Published,
    /// Gave up after too many failures.
    Dead,
}

/// An outbox row with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    /// The message.
    pub message: OutboxMessage,
    /// Where it is in delivery.
    pub status: OutboxStatus,
    /// Failed publish attempts so far.
    pub attempts: u32,
    /// The last publish error.
    pub last_error: Option<String>,
}

/// The relay side of the transactional outbox (rows are written by [`EventStore::commit`]).
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` rows due for delivery, oldest first, for `lease`: pending,
    /// next attempt due, and not claimed by a relay whose claim is still live. Two relays
    /// never hold a claim on one row at once.
    ///
    /// Rows of one stream (the `stream` header, see [`crate::broker::headers`]) leave in
    /// their order: a row is not claimed while an earlier row of its stream is pending
    /// and cannot be claimed (waiting for its next attempt, or under another relay's live
    /// claim; `relay`'s own claims do not hold its next batch back).
    async fn claim(&self, relay: &str, limit: usize, lease: Duration) -> Result<Vec<OutboxRecord>>;
    /// Gives claimed rows back without an attempt (a relay that did not try them because
    /// an earlier row of their stream failed), claimable again at once.
    async fn release(&self, ids: &[Uuid]) -> Result<()>;
    /// Marks a row published.
    async fn mark_published(&self, id: Uuid) -> Result<()>;
    /// Marks rows published (a relay's batch: one statement on SQL stores).
    async fn mark_all_published(&self, ids: &[Uuid]) -> Result<()> {
        for id in ids {
            self.mark_published(*id).await?;
        }
        Ok(())
    }
    /// Records a failed attempt: the row is due again after `retry_after`, or dead when
    /// it has failed `max_attempts` times.
    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()>;
    /// Up to `limit` pending rows, oldest first, due or not.
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>>;
    /// Every dead row.
    async fn dead(&self) -> Result<Vec<OutboxRecord>>;
    /// How many rows wait (pending, due or not) and how many are dead, for health checks
    /// and gauges. The default counts what [`Outbox::pending`] (up to 100,001) and
    /// [`Outbox::dead`] return; the SQL stores count in SQL.
    async fn counts(&self) -> Result<OutboxCounts> {
        Ok(OutboxCounts { pending: self.pending(100_001).await?.len() as u64, dead: self.dead().await?.len() as u64 })
    }
    /// Puts dead rows back to pending, attempts reset; returns how many.
    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64>;
}

/// Hands outbox messages to where they go (a broker, in-process handlers).
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one message; an error makes the relay retry it later.
    async fn publish(&self, message: &OutboxMessage) -> Result<()>;
}

/// A document of the read-model store: JSON with a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its id within the collection.
    pub id: String,
    /// 1 on insert, incremented by every update.
    pub version: u64,
    /// The document as JSON text.
    pub json: String,
}

/// An event a projection gave up on, recorded and skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The projection.
    pub projection: String,
    /// The event.
    pub event_id: Uuid,
    /// Its global position.
    pub position: u64,
    /// Its commit order key (with `position`, its [`Cursor`]).
    pub commit: u64,
    /// Its stream.
    pub stream: StreamKey,
    /// Its version in the stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// Why the projection failed.
    pub error: String,
    /// When.
    pub failed_at: DateTime<Utc>,
}

/// Storage of projections: checkpoints, leases, dead letters and the JSON document store,
/// with transactions so a read model and its checkpoint commit together.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Opens a transaction.
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>>;
    /// Where a projection partition stands (`None`: never ran).
    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>>;
    /// Takes or renews the lease of a projection partition for `owner`; `false` while
    /// another owner holds a lease that has not expired.
    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool>;
    /// Gives a lease up (another worker may take it at once).
    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()>;
    /// The dead letters of a projection, oldest first.
    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>>;
    /// Removes a dead letter (after it was dealt with).
    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()>;
    /// A document of `tenant` (`None`: a document without tenant), outside any transaction.
    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>>;
    /// Every document of `tenant` in a collection, by id.
    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>>;
    /// A document of the current [`crate::RequestContext`]'s tenant (documents are kept
    /// per tenant: inside a tenant's scope only that tenant's documents are visible).
    async fn document(&self, collection: &str, id: &str) -> Result<Option<Document>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.document_of(tenant.as_deref(), collection, id).await
    }
    /// Every document of the current context's tenant in a collection, by id.
    async fn documents(&self, collection: &str) -> Result<Vec<Document>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.documents_of(tenant.as_deref(), collection).await
    }
    /// The documents of `tenant` in a collection that the query selects, in its order and
    /// page, with only its selected fields. By default the collection is read and the
    /// query answered in memory (see [`crate::spec`]); a store may answer it itself, with
    /// the same results.
    async fn find_of(
        &self,
        tenant: Option<&str>,
        collection: &str,
        query: &crate::spec::QueryOptions,
    ) -> Result<Vec<Document>> {
        let docs = parse_documents(collection, self.documents_of(tenant, collection).await?)?;
        let versions: std::collections::HashMap<String, u64> =
            docs.iter().map(|(doc, _)| (doc.id.clone(), doc.version)).collect();
        let found = query.apply(docs.into_iter().map(|(doc, value)| (doc.id, value)).collect())?;
        Ok(found
            .into_iter()
            .map(|(id, value)| Document {
                version: versions.get(&id).copied().unwrap_or(0),
                json: value.to_string(),
                id,
            })
            .collect())
    }
    /// How many documents of `tenant` in a collection the filter selects (the query's
    /// order, page and selection do not count).
    async fn count_of(&self, tenant: Option<&str>, collection: &str, query: &crate::spec::QueryOptions) -> Result<u64> {
        let docs = parse_documents(collection, self.documents_of(tenant, collection).await?)?;
        Ok(query.count(docs.iter().map(|(_, value)| value))?)
    }
    /// One page of [`find_of`](Self::find_of) with the cursor of the next page (the query
    /// has a limit and an ordering; the id breaks ties).
    async fn page_of(
        &self,
        tenant: Option<&str>,
        collection: &str,
        query: &crate::spec::QueryOptions,
    ) -> Result<crate::spec::Page<Document>> {
        let found = self.find_of(tenant, collection, &query.for_page()).await?;
        Ok(query.page_of(
            found,
            |doc| serde_json::from_str(&doc.json).ok().map(|v| (doc.id.clone(), v)),
            |doc, select| match serde_json::from_str(&doc.json) {
                Ok(v) => Document { json: crate::spec::project(&v, select).to_string(), ..doc },
                Err(_) => doc,
            },
        ))
    }
    /// The groups and measures of an aggregation over the documents of `tenant` in a
    /// collection, one JSON object per group (see [`crate::spec::Aggregation`]).
    async fn aggregate_of(
        &self,
        tenant: Option<&str>,
        collection: &str,
        aggregate: &crate::spec::Aggregation,
    ) -> Result<Vec<serde_json::Value>> {
        aggregate.check()?;
        let docs = parse_documents(collection, self.documents_of(tenant, collection).await?)?;
        Ok(aggregate.apply(docs.iter().map(|(_, value)| value))?)
    }
    /// Builds an index on a collection's documents, if the store has indexes (the SQL
    /// stores build an expression index on PostgreSQL and SQLite); building it again
    /// does nothing.
    async fn ensure_index(&self, collection: &str, index: &crate::spec::Index) -> Result<()> {
        let _ = (collection, index);
        Ok(())
    }
    /// [`find_of`](Self::find_of) for the current context's tenant.
    async fn find(&self, collection: &str, query: &crate::spec::QueryOptions) -> Result<Vec<Document>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.find_of(tenant.as_deref(), collection, query).await
    }
    /// [`count_of`](Self::count_of) for the current context's tenant.
    async fn count(&self, collection: &str, query: &crate::spec::QueryOptions) -> Result<u64> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.count_of(tenant.as_deref(), collection, query).await
    }
    /// [`page_of`](Self::page_of) for the current context's tenant.
    async fn page(&self, collection: &str, query: &crate::spec::QueryOptions) -> Result<crate::spec::Page<Document>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.page_of(tenant.as_deref(), collection, query).await
    }
    /// [`aggregate_of`](Self::aggregate_of) for the current context's tenant.
    async fn aggregate(
        &self,
        collection: &str,
        aggregate: &crate::spec::Aggregation,
    ) -> Result<Vec<serde_json::Value>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.aggregate_of(tenant.as_deref(), collection, aggregate).await
    }
}

/// Each stored document with its JSON read, or a store error naming the one that is not
/// JSON.
fn parse_documents(collection: &str, docs: Vec<Document>) -> Result<Vec<(Document, serde_json::Value)>> {
    docs.into_iter()
        .map(|doc| match serde_json::from_str(&doc.json) {
            Ok(value) => Ok((doc, value)),
            Err(e) => Err(crate::Error::Store(
                format!("document `{}` of collection `{collection}` is not JSON: {e}", doc.id).into(),
            )),
        })
        .collect()
}

/// One projection transaction: document writes, dead letters and the checkpoint move
/// commit together or not at all.
///
/// Documents are kept per tenant: `tenant` is the tenant of the event being applied
/// (`None`: an event without tenant), so two tenants' documents with one id never meet.
#[async_trait]
pub trait ProjectionTxn: Send {
    /// A document as this transaction sees it.
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>>;
    /// Inserts or replaces a document; returns its new version.
    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64>;
    /// The documents with these ids that exist (by default one at a time; stores override
    /// it with one query).
    async fn get_docs(&mut self, tenant: Option<&str>, collection: &str, ids: &[String]) -> Result<Vec<Document>> {
        let mut found = Vec::new();
        for id in ids {
            found.extend(self.get_doc(tenant, collection, id).await?);
        }
        Ok(found)
    }
    /// Inserts or replaces several documents of one collection (by default one at a time;
    /// stores override it with one statement).
    async fn put_docs(&mut self, tenant: Option<&str>, collection: &str, docs: Vec<(String, String)>) -> Result<()> {
        for (id, json) in docs {
            self.put_doc(tenant, collection, &id, json).await?;
        }
        Ok(())
    }
    /// Deletes a document; whether it existed.
    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool>;
    /// Deletes every document of a collection, of every tenant.
    async fn clear_docs(&mut self, collection: &str) -> Result<()>;
    /// Moves a checkpoint from `expected` to `to`; [`crate::Error::Conflict`] when another
    /// worker moved it meanwhile (so no event is applied twice).
    async fn save_checkpoint(
        &mut self,
        projection: &str,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()>;
    /// Forgets every checkpoint of a projection (rebuild).
    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()>;
    /// Records an event the projection gives up on.
    async fn dead_letter(&mut self, letter: DeadLetter) -> Result<()>;
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Rolls back.
    async fn rollback(self: Box<Self>) -> Result<()>;
    /// The backend's own connection, for typed tables (`PgConnection`, `SqliteConnection`).
    fn connection(&mut self) -> &mut (dyn std::any::Any + Send);
}
