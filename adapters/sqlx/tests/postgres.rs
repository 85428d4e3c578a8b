//! The adapter contract on PostgreSQL (DATABASE_URL, default the loopback server); each
//! test works in a schema of its own.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::hardening::*;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, async_trait};
use cqrs_ddd_sqlx::{PgOptions, PgStore};
use sqlx::Connection;

fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

struct Pg {
    schema: String,
    admin: PgStore,
}

impl Pg {
    async fn new() -> Self {
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let admin = PgStore::connect_with(PgOptions::new(url()).schema(&schema).max_connections(4))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        admin.migrate().await.unwrap();
        Pg { schema, admin }
    }

    async fn drop(self) {
        let _ = sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema)).execute(self.admin.pool()).await;
    }
}

#[async_trait]
impl TestDb for Pg {
    type Store = PgStore;
    const SQLITE: bool = false;

    async fn store(&self) -> PgStore {
        PgStore::connect_with(PgOptions::new(url()).schema(&self.schema).max_connections(8)).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("{t}", &format!("\"{}\".", self.schema));
        sqlx::raw_sql(&sql).execute(self.admin.pool()).await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{}\".{table}", self.schema))
            .fetch_one(self.admin.pool())
            .await
            .unwrap()
    }

    async fn commit_slowly(&self, store: &PgStore, batch: CommitBatch, delay: Duration) -> Result<()> {
        let mut conn = store.pool().acquire().await.map_err(cqrs_ddd::Error::store)?;
        let mut tx = conn.begin().await.map_err(cqrs_ddd::Error::store)?;
        store.commit_in(&mut tx, batch).await?;
        tokio::time::sleep(delay).await;
        tx.commit().await.map_err(cqrs_ddd::Error::store)
    }

    async fn commit_in_one_transaction(
        &self,
        store: &PgStore,
        batches: Vec<CommitBatch>,
    ) -> Vec<Result<CommitReceipt>> {
        let mut conn = store.pool().acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let mut results = Vec::new();
        for batch in batches {
            results.push(store.commit_in(&mut tx, batch).await);
        }
        tx.commit().await.unwrap();
        results
    }
}

/// Messages for the two-relay test.
const MESSAGES: usize = 10_000;

macro_rules! pg_tests {
    ($($name:ident => $contract:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = Pg::new().await;
            $contract(&db $(, $arg)*).await;
            db.drop().await;
        }
    )*};
}

pg_tests! {
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
    tenant_in_context_scopes_reads => reads_are_scoped_to_the_tenant_in_context();
    metadata_round_trips => envelopes_carry_metadata_through_the_store();
    outbox_rows_are_published_or_die => outbox_rows_can_be_published_and_die();
    projection_read_model_moves_with_its_checkpoint => a_projection_keeps_its_read_model_with_its_checkpoint();
    projection_rebuild_reproduces_the_read_model => rebuild_reproduces_the_read_model();
    projection_starts_at_beginning_or_head => a_new_projection_starts_at_the_beginning_or_at_the_head();
    racing_projection_workers_apply_each_event_once => racing_workers_apply_each_event_once();
    projection_leases_exclude_and_expire => leases_let_one_worker_run_and_another_take_over();
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
    cancelled_sends_leave_the_pool_clean => cancelled_writes_leave_every_path_working();
    unstorable_json_is_refused_alike => values_no_backend_stores_are_refused_alike();
    non_json_is_refused_alike => text_that_is_not_json_is_refused_alike();
    bad_rows_are_corrupt_row_errors => corrupt_rows_are_named_errors();
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_in_parallel() {
    let db = Pg::new().await;
    let (a, b) = (db.store().await, db.store().await);
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    db.admin.migrate().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let err = PgStore::connect_with(PgOptions::new("postgres://postgres@127.0.0.1:1/postgres")).await.err().unwrap();
    let text = err.to_string();
    assert!(text.contains("PostgreSQL at `postgres://postgres@127.0.0.1:1/postgres` is not reachable"), "{text}");
}

#[tokio::test]
async fn a_bad_schema_name_is_rejected() {
    let pool = sqlx::PgPool::connect_lazy(&url()).unwrap();
    assert!(PgStore::from_pool(pool, "x; DROP TABLE y").is_err());
}
