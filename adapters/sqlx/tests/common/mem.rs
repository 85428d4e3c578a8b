//! Every in-memory store behind one handle, so the port contract runs on memory too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::Result;
use cqrs_ddd::memory::{MemoryProjectionStore, MemorySagaStore, MemoryScheduleStore, MemorySnapshotStore, MemoryStore};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, DeadLetter, Document, EventStore, EventStream, Heartbeat, JobFilter,
    JobOutcome, JobProgress, JobRecord, JobStats, JobStore, NewJob, Outbox, OutboxRecord, ProjectionStore,
    ProjectionTxn, SagaFilter, SagaKey, SagaRecord, SagaStore, ScheduleStore, ScheduledCommand, Snapshot,
    SnapshotStore, StoredEvent, StoredState, StreamKey, TenantScope, UndoLogEntry, async_trait,
};
use uuid::Uuid;

/// Every in-memory store behind one handle, as the SQL stores are.
#[derive(Clone)]
pub struct Mem {
    events: MemoryStore,
    snapshots: MemorySnapshotStore,
    projections: MemoryProjectionStore,
    sagas: MemorySagaStore,
    schedules: MemoryScheduleStore,
}

impl Default for Mem {
    /// The schedule is the event store's, which writes the deadlines of its commits.
    fn default() -> Self {
        let events = MemoryStore::new();
        Mem {
            schedules: events.schedule_store(),
            sagas: events.saga_store(),
            events,
            snapshots: MemorySnapshotStore::default(),
            projections: MemoryProjectionStore::default(),
        }
    }
}

#[async_trait]
impl EventStore for Mem {
    fn outbox(self: Arc<Self>) -> Option<Arc<dyn Outbox>> {
        Some(self)
    }
    fn schedule(self: Arc<Self>) -> Option<Arc<dyn ScheduleStore>> {
        Some(self)
    }
    fn read_models(self: Arc<Self>) -> Option<Arc<dyn ProjectionStore>> {
        Some(self)
    }
    fn jobs(self: Arc<Self>) -> Option<Arc<dyn JobStore>> {
        Some(self)
    }
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.events.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        self.events.read_stream(stream, after_version).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.events.read_all(after, limit).await
    }
    async fn read_tenant(&self, tenant: Option<&str>, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.events.read_tenant(tenant, after, limit).await
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.events.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.events.load_state(stream).await
    }
    async fn event(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Option<StoredEvent>> {
        self.events.event(tenant, event_id).await
    }
    async fn undo_log(&self, tenant: Option<&str>, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        self.events.undo_log(tenant, event_id).await
    }
    async fn undo_log_of_stream(&self, stream: &StreamKey) -> Result<Vec<UndoLogEntry>> {
        self.events.undo_log_of_stream(stream).await
    }
}

#[async_trait]
impl SnapshotStore for Mem {
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>> {
        self.snapshots.load(stream).await
    }
    async fn save(&self, snapshot: Snapshot) -> Result<()> {
        self.snapshots.save(snapshot).await
    }
}

#[async_trait]
impl Outbox for Mem {
    async fn claim(&self, relay: &str, limit: usize, lease: Duration) -> Result<Vec<OutboxRecord>> {
        Outbox::claim(&self.events, relay, limit, lease).await
    }
    async fn mark_published(&self, id: Uuid) -> Result<()> {
        self.events.mark_published(id).await
    }
    async fn mark_failed(&self, id: Uuid, error: &str, retry_after: Duration, max_attempts: u32) -> Result<()> {
        self.events.mark_failed(id, error, retry_after, max_attempts).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        self.events.pending(limit).await
    }
    async fn dead(&self) -> Result<Vec<OutboxRecord>> {
        self.events.dead().await
    }
    async fn retry_dead(&self, ids: &[Uuid]) -> Result<u64> {
        self.events.retry_dead(ids).await
    }
    async fn release(&self, ids: &[Uuid]) -> Result<()> {
        self.events.release(ids).await
    }
    async fn mark_all_published(&self, ids: &[Uuid]) -> Result<()> {
        self.events.mark_all_published(ids).await
    }
}

#[async_trait]
impl ProjectionStore for Mem {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        self.projections.begin().await
    }
    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>> {
        self.projections.checkpoint(projection, partition).await
    }
    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool> {
        self.projections.acquire_lease(projection, partition, owner, ttl).await
    }
    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()> {
        self.projections.release_lease(projection, partition, owner).await
    }
    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        self.projections.dead_letters(projection).await
    }
    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()> {
        self.projections.remove_dead_letter(projection, event_id).await
    }
    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.projections.document_of(tenant, collection, id).await
    }
    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        self.projections.documents_of(tenant, collection).await
    }
}

#[async_trait]
impl JobStore for Mem {
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        self.events.enqueue_jobs(jobs).await
    }
    async fn job(&self, scope: TenantScope<'_>, id: Uuid) -> Result<Option<JobRecord>> {
        self.events.job(scope, id).await
    }
    async fn claim_jobs(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JobRecord>> {
        self.events.claim_jobs(worker, now, limit, lease).await
    }
    async fn heartbeat_job(
        &self,
        id: Uuid,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        progress: Option<JobProgress>,
    ) -> Result<Heartbeat> {
        self.events.heartbeat_job(id, worker, now, lease, progress).await
    }
    async fn finish_job(&self, id: Uuid, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<bool> {
        self.events.finish_job(id, worker, outcome, now).await
    }
    async fn sweep_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.events.sweep_jobs(now, limit).await
    }
    async fn list_jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRecord>> {
        self.events.list_jobs(filter).await
    }
    async fn job_stats(&self, scope: TenantScope<'_>) -> Result<JobStats> {
        self.events.job_stats(scope).await
    }
    async fn cancel_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        self.events.cancel_jobs(scope, ids, now).await
    }
    async fn retry_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        self.events.retry_jobs(scope, ids, now).await
    }
    async fn purge_jobs(&self, scope: TenantScope<'_>, before: DateTime<Utc>) -> Result<u64> {
        self.events.purge_jobs(scope, before).await
    }
}

#[async_trait]
impl SagaStore for Mem {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        self.sagas.load(key).await
    }
    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        self.sagas.save(record, expected_version).await
    }
    async fn save_with_deadlines(
        &self,
        record: &SagaRecord,
        expected_version: u64,
        deadlines: &[cqrs_ddd::ports::DeadlineWrite],
    ) -> Result<bool> {
        self.sagas.save_with_deadlines(record, expected_version, deadlines).await
    }
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaKey>> {
        self.sagas.due(now, limit).await
    }
    async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaRecord>> {
        self.sagas.list(filter).await
    }
}

#[async_trait]
impl ScheduleStore for Mem {
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()> {
        self.schedules.schedule(command).await
    }
    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool> {
        self.schedules.cancel(tenant, id).await
    }
    async fn get(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<ScheduledCommand>> {
        self.schedules.get(tenant, id).await
    }
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledCommand>> {
        self.schedules.claim_due(worker, now, limit, lease).await
    }
    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()> {
        self.schedules.complete(tenant, id).await
    }
    async fn retry_later(&self, tenant: Option<&str>, id: Uuid, error: &str, due_at: DateTime<Utc>) -> Result<()> {
        self.schedules.retry_later(tenant, id, error, due_at).await
    }
    async fn mark_dead(&self, tenant: Option<&str>, id: Uuid, error: &str) -> Result<()> {
        self.schedules.mark_dead(tenant, id, error).await
    }
    async fn dead(&self, limit: usize) -> Result<Vec<ScheduledCommand>> {
        self.schedules.dead(limit).await
    }
    async fn scheduled(&self, scope: TenantScope<'_>, dead: bool, limit: usize) -> Result<Vec<ScheduledCommand>> {
        self.schedules.scheduled(scope, dead, limit).await
    }
}
