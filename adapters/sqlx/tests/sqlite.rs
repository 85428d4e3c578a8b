//! The adapter contract on SQLite; each test works in a database file of its own.
#![cfg(feature = "sqlite")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::hardening::*;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::tenancy::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, async_trait};
use cqrs_ddd_sqlx::SqliteStore;

struct Lite {
    path: PathBuf,
    admin: SqliteStore,
}

impl Lite {
    async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("cqrs-ddd-{}.db", uuid::Uuid::now_v7().simple()));
        let admin = SqliteStore::connect(&Self::url_of(&path)).await.unwrap_or_else(|e| panic!("{e}"));
        admin.migrate().await.unwrap();
        Lite { path, admin }
    }

    fn url_of(path: &std::path::Path) -> String {
        format!("sqlite://{}", path.display())
    }

    async fn drop(self) {
        self.admin.pool().close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

#[async_trait]
impl TestDb for Lite {
    type Store = SqliteStore;
    const SQLITE: bool = true;

    async fn store(&self) -> SqliteStore {
        SqliteStore::connect(&Self::url_of(&self.path)).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(&sql.replace("{t}", "")).execute(self.admin.pool()).await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(self.admin.pool()).await.unwrap()
    }

    async fn commit_slowly(&self, store: &SqliteStore, batch: CommitBatch, delay: Duration) -> Result<()> {
        let mut conn = store.pool().acquire().await.map_err(cqrs_ddd::Error::store)?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.map_err(cqrs_ddd::Error::store)?;
        store.commit_in(&mut conn, batch).await?;
        tokio::time::sleep(delay).await;
        sqlx::query("COMMIT").execute(&mut *conn).await.map_err(cqrs_ddd::Error::store)?;
        Ok(())
    }

    async fn commit_in_one_transaction(
        &self,
        store: &SqliteStore,
        batches: Vec<CommitBatch>,
    ) -> Vec<Result<CommitReceipt>> {
        let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
        let mut results = Vec::new();
        for batch in batches {
            results.push(store.commit_in(&mut tx, batch).await);
        }
        tx.commit().await.unwrap();
        results
    }
}

/// Messages for the two-relay test.
const MESSAGES: usize = 2_000;

macro_rules! sqlite_tests {
    ($($name:ident => $contract:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = Lite::new().await;
            $contract(&db $(, $arg)*).await;
            db.drop().await;
        }
    )*};
}

sqlite_tests! {
    concurrent_commands_on_one_aggregate_lose_no_update => concurrent_commands_lose_no_update(16, 200);
    concurrent_appends_at_one_version_conflict => same_version_appends_conflict();
    tailing_reader_sees_every_event_exactly_once => tailing_reader_never_skips_a_late_commit(8, 25);
    snapshot_and_tail_equal_a_full_replay => snapshot_plus_tail_equals_full_replay();
    a_stale_snapshot_falls_back_to_replay => stale_snapshot_falls_back_to_replay();
    upcaster_chain_runs_on_load => upcasters_run_on_load();
    a_corrupted_payload_names_stream_and_version => corrupted_payload_is_a_serialization_error();
    a_failed_command_leaves_no_event_state_or_outbox_row => rollback_leaves_no_trace();
    events_state_and_outbox_commit_together => one_command_commits_events_state_and_outbox_together();
    state_rows_are_versioned => state_rows_have_optimistic_versions();
    a_long_stream_is_streamed => long_streams_are_read_as_a_stream(200_000);
    tenancy_readers_of_all_events_see_every_tenant => readers_of_all_events_see_every_tenant();
    tenancy_idempotency_keys_are_per_tenant => idempotency_keys_are_per_tenant();
    tenancy_an_empty_tenant_id_is_refused_everywhere => an_empty_tenant_id_is_refused_everywhere();
    tenancy_commands_cannot_cross_tenants_outside_a_system_scope => commands_cannot_cross_tenants_outside_a_system_scope();
    tenancy_documents_are_kept_per_tenant => documents_are_kept_per_tenant();
    tenancy_scheduled_ids_are_per_tenant => scheduled_ids_are_per_tenant();
    tenancy_a_worker_of_one_tenant_keeps_its_own_checkpoint => a_worker_of_one_tenant_keeps_its_own_checkpoint();
    tenancy_random_interleavings_agree_with_memory => random_two_tenant_interleavings_agree_with_memory(8, 40);
    metadata_round_trips => envelopes_carry_metadata_through_the_store();
    outbox_rows_are_published_or_die => outbox_rows_can_be_published_and_die();
    projection_read_model_moves_with_its_checkpoint => a_projection_keeps_its_read_model_with_its_checkpoint();
    projection_rebuild_reproduces_the_read_model => rebuild_reproduces_the_read_model();
    projection_starts_at_beginning_or_head => a_new_projection_starts_at_the_beginning_or_at_the_head();
    racing_projection_workers_apply_each_event_once => racing_workers_apply_each_event_once();
    projection_leases_exclude_and_expire => leases_let_one_worker_run_and_another_take_over();
    projection_refused_write_goes_through_the_error_policy => a_write_the_read_model_refuses_goes_through_the_error_policy();
    relay_retries_then_buries => the_relay_retries_then_buries_a_failing_message();
    two_relays_never_publish_a_message_twice => two_relays_publish_each_message_once(MESSAGES);
    async_handlers_fed_by_the_relay => async_handlers_are_fed_by_the_relay();
    a_repeated_idempotency_key_writes_nothing => a_repeated_idempotency_key_is_refused_and_writes_nothing();
    a_refused_batch_leaves_its_key_free => a_refused_batch_does_not_record_its_key();
    racing_commits_under_one_key_apply_once => concurrent_commits_under_one_key_apply_once();
    saga_records_load_back_equal => saga_records_round_trip();
    saga_saves_report_the_actual_version => saga_saves_conflict_with_the_actual_version();
    due_sagas_are_earliest_first => due_sagas_come_earliest_first();
    sagas_list_by_type_and_status => sagas_are_listed_by_type_and_status();
    saga_instances_are_per_tenant => saga_keys_are_isolated_by_tenant();
    a_scheduled_command_is_kept_replaced_or_cancelled => scheduled_commands_are_kept_replaced_and_cancelled();
    claims_take_only_due_live_unclaimed_commands => claims_take_due_live_unclaimed_commands();
    failed_scheduled_commands_retry_then_die => failed_commands_retry_later_then_die();
    two_claimers_never_take_one_command => concurrent_claimers_take_each_command_once(200);
    saga_engine_compensates_in_reverse_and_ignores_redelivery => compensations_run_in_reverse_and_a_redelivery_sends_nothing();
    saga_engine_sends_a_duplicate_event_once => a_duplicate_event_sends_nothing_again();
    saga_engine_times_out_a_suspended_saga => a_suspended_saga_past_its_timeout_fails_and_compensates();
    saga_engine_cancels_an_expired_tcc_try => an_expired_tcc_try_is_cancelled();
    saga_engine_recovers_a_transient_failure => recovery_resends_after_a_transient_failure_and_completes();
    saga_engine_concurrent_events_lose_no_update => concurrent_events_for_one_instance_lose_no_update();
    saga_engine_scheduled_command_is_sent_once => a_scheduled_command_is_sent_once_when_due();
    saga_engine_scheduled_command_survives_a_restart => a_command_scheduled_before_a_restart_is_sent_by_a_fresh_process();
    cancelled_sends_leave_the_pool_clean => cancelled_writes_leave_every_path_working();
    unstorable_json_is_refused_alike => values_no_backend_stores_are_refused_alike();
    non_json_is_refused_alike => text_that_is_not_json_is_refused_alike();
    bad_rows_are_corrupt_row_errors => corrupt_rows_are_named_errors();
    bad_rows_go_through_the_projection_error_policy => corrupt_rows_go_through_the_projection_error_policy();
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = Lite::new().await;
    db.admin.migrate().await.unwrap();
    db.store().await.migrate().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn an_unopenable_database_names_the_file_and_the_cause() {
    let missing = std::env::temp_dir().join(format!("cqrs-ddd-missing-{}", uuid::Uuid::now_v7().simple()));
    let file = missing.join("sub").join("x.db");
    let err = SqliteStore::connect(&format!("sqlite://{}", file.display())).await.err().unwrap();
    match &err {
        cqrs_ddd::Error::Connect { backend: "SQLite", target, reason } => {
            assert_eq!(target, &file.display().to_string());
            assert!(reason.contains("does not exist") && reason.contains(&missing.display().to_string()), "{reason}");
        }
        other => panic!("expected a connect error naming the file, got {other:?}"),
    }
}
