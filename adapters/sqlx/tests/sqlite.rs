//! The adapter contract on SQLite; each test works in a database file of its own.
#![cfg(feature = "sqlite")]

#[macro_use]
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
    tailing_reader_sees_every_event_exactly_once => tailing_reader_never_skips_a_late_commit(8, 25);
    a_corrupted_payload_names_stream_and_version => corrupted_payload_is_a_serialization_error();
    a_failed_command_leaves_no_event_state_or_outbox_row => rollback_leaves_no_trace();
    events_state_and_outbox_commit_together => one_command_commits_events_state_and_outbox_together();
    a_long_stream_is_streamed => long_streams_are_read_as_a_stream(200_000);
    projection_rebuild_reproduces_the_read_model => rebuild_reproduces_the_read_model();
    projection_refused_write_goes_through_the_error_policy => a_write_the_read_model_refuses_goes_through_the_error_policy();
    two_relays_never_publish_a_message_twice => two_relays_publish_each_message_once(MESSAGES);
    a_repeated_idempotency_key_writes_nothing => a_repeated_idempotency_key_is_refused_and_writes_nothing();
    a_refused_batch_leaves_its_key_free => a_refused_batch_does_not_record_its_key();
    racing_commits_under_one_key_apply_once => concurrent_commits_under_one_key_apply_once();
    a_scheduled_command_is_kept_replaced_or_cancelled => scheduled_commands_are_kept_replaced_and_cancelled();
    failed_scheduled_commands_retry_then_die => failed_commands_retry_later_then_die();
    saga_engine_compensates_in_reverse_and_ignores_redelivery => compensations_run_in_reverse_and_a_redelivery_sends_nothing();
    cancelled_sends_leave_the_pool_clean => cancelled_writes_leave_every_path_working();
    unstorable_json_is_refused_alike => values_no_backend_stores_are_refused_alike();
    non_json_is_refused_alike => text_that_is_not_json_is_refused_alike();
    bad_rows_are_corrupt_row_errors => corrupt_rows_are_named_errors();
    bad_rows_go_through_the_projection_error_policy => corrupt_rows_go_through_the_projection_error_policy();
}

every_store_contract!(sqlite_tests);

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
