//! The adapter contract on the in-memory stores, so memory, SQLite and PostgreSQL cannot
//! drift apart: every contract that needs no raw SQL runs here too.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::tenancy::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::memory::{MemoryProjectionStore, MemorySagaStore, MemoryScheduleStore, MemorySnapshotStore, MemoryStore};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, DeadLetter, Document, EventStore, EventStream, Outbox, OutboxRecord,
    ProjectionStore, ProjectionTxn, SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore, ScheduledCommand,
    Snapshot, SnapshotStore, StoredEvent, StoredState, StreamKey, async_trait,
};
use uuid::Uuid;

/// Every in-memory store behind one handle, as the SQL stores are.
#[derive(Clone, Default)]
struct Mem {
    events: MemoryStore,
    snapshots: MemorySnapshotStore,
    projections: MemoryProjectionStore,
    sagas: MemorySagaStore,
    schedules: MemoryScheduleStore,
}

#[async_trait]
impl EventStore for Mem {
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
        self.events.claim(relay, limit, lease).await
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
impl SagaStore for Mem {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        self.sagas.load(key).await
    }
    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        self.sagas.save(record, expected_version).await
    }
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaKey>> {
        self.sagas.due(now, limit).await
    }
    async fn list(&self, saga_type: Option<&str>, statuses: &[SagaStatus], limit: usize) -> Result<Vec<SagaRecord>> {
        self.sagas.list(saga_type, statuses, limit).await
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
}

/// One set of in-memory stores; every `store()` is another handle onto it.
#[derive(Default)]
struct Memory {
    shared: Mem,
}

#[async_trait]
impl TestDb for Memory {
    type Store = Mem;
    const SQLITE: bool = false;

    async fn store(&self) -> Mem {
        self.shared.clone()
    }

    async fn exec(&self, sql: &str) {
        panic!("the in-memory contract runs no raw SQL (`{sql}`); keep SQL-only contracts out of tests/memory.rs")
    }

    async fn count(&self, table: &str) -> i64 {
        panic!("the in-memory contract counts no table rows (`{table}`)")
    }

    async fn commit_slowly(&self, _: &Mem, _: CommitBatch, _: Duration) -> Result<()> {
        panic!("the in-memory store commits one batch at a time; it has no open transactions")
    }

    async fn commit_in_one_transaction(&self, _: &Mem, _: Vec<CommitBatch>) -> Vec<Result<CommitReceipt>> {
        panic!("the in-memory store has no caller-controlled transactions")
    }
}

macro_rules! memory_tests {
    ($($name:ident => $contract:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $contract(&Memory::default() $(, $arg)*).await;
        }
    )*};
}

memory_tests! {
    concurrent_commands_on_one_aggregate_lose_no_update => concurrent_commands_lose_no_update(8, 100);
    concurrent_appends_at_one_version_conflict => same_version_appends_conflict();
    snapshot_and_tail_equal_a_full_replay => snapshot_plus_tail_equals_full_replay();
    a_stale_snapshot_falls_back_to_replay => stale_snapshot_falls_back_to_replay();
    upcaster_chain_runs_on_load => upcasters_run_on_load();
    state_rows_are_versioned => state_rows_have_optimistic_versions();
    metadata_round_trips => envelopes_carry_metadata_through_the_store();
    outbox_rows_are_published_or_die => outbox_rows_can_be_published_and_die();
    projection_read_model_moves_with_its_checkpoint => a_projection_keeps_its_read_model_with_its_checkpoint();
    projection_starts_at_beginning_or_head => a_new_projection_starts_at_the_beginning_or_at_the_head();
    racing_projection_workers_apply_each_event_once => racing_workers_apply_each_event_once();
    projection_leases_exclude_and_expire => leases_let_one_worker_run_and_another_take_over();
    relay_retries_then_buries => the_relay_retries_then_buries_a_failing_message();
    async_handlers_fed_by_the_relay => async_handlers_are_fed_by_the_relay();
    saga_records_load_back_equal => saga_records_round_trip();
    saga_saves_report_the_actual_version => saga_saves_conflict_with_the_actual_version();
    due_sagas_are_earliest_first => due_sagas_come_earliest_first();
    sagas_list_by_type_and_status => sagas_are_listed_by_type_and_status();
    saga_instances_are_per_tenant => saga_keys_are_isolated_by_tenant();
    claims_take_only_due_live_unclaimed_commands => claims_take_due_live_unclaimed_commands();
    two_claimers_never_take_one_command => concurrent_claimers_take_each_command_once(200);
    saga_engine_sends_a_duplicate_event_once => a_duplicate_event_sends_nothing_again();
    saga_engine_times_out_a_suspended_saga => a_suspended_saga_past_its_timeout_fails_and_compensates();
    saga_engine_cancels_an_expired_tcc_try => an_expired_tcc_try_is_cancelled();
    saga_engine_recovers_a_transient_failure => recovery_resends_after_a_transient_failure_and_completes();
    saga_engine_concurrent_events_lose_no_update => concurrent_events_for_one_instance_lose_no_update();
    saga_engine_scheduled_command_is_sent_once => a_scheduled_command_is_sent_once_when_due();
    tenancy_readers_of_all_events_see_every_tenant => readers_of_all_events_see_every_tenant();
    tenancy_idempotency_keys_are_per_tenant => idempotency_keys_are_per_tenant();
    tenancy_an_empty_tenant_id_is_refused_everywhere => an_empty_tenant_id_is_refused_everywhere();
    tenancy_commands_cannot_cross_tenants_outside_a_system_scope => commands_cannot_cross_tenants_outside_a_system_scope();
    tenancy_documents_are_kept_per_tenant => documents_are_kept_per_tenant();
    tenancy_scheduled_ids_are_per_tenant => scheduled_ids_are_per_tenant();
}
