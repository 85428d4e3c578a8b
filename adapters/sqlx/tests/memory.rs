//! The adapter contract on the in-memory stores, so memory, SQLite and PostgreSQL cannot
//! drift apart: every contract that needs no raw SQL runs here too.

mod common;

use std::time::Duration;

use common::mem::Mem;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::tenancy::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, async_trait};

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
    saga_engine_scheduled_command_survives_a_restart => a_command_scheduled_before_a_restart_is_sent_by_a_fresh_process();
    tenancy_readers_of_all_events_see_every_tenant => readers_of_all_events_see_every_tenant();
    tenancy_idempotency_keys_are_per_tenant => idempotency_keys_are_per_tenant();
    tenancy_an_empty_tenant_id_is_refused_everywhere => an_empty_tenant_id_is_refused_everywhere();
    tenancy_commands_cannot_cross_tenants_outside_a_system_scope => commands_cannot_cross_tenants_outside_a_system_scope();
    tenancy_documents_are_kept_per_tenant => documents_are_kept_per_tenant();
    tenancy_scheduled_ids_are_per_tenant => scheduled_ids_are_per_tenant();
    tenancy_a_worker_of_one_tenant_keeps_its_own_checkpoint => a_worker_of_one_tenant_keeps_its_own_checkpoint();
    tenancy_random_interleavings_agree_with_memory => random_two_tenant_interleavings_agree_with_memory(8, 40);
}
