//! The behaviour both databases must show, written once against [`TestDb`].
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod conns;
pub mod deadlines;
pub mod domain;
#[cfg(feature = "geo")]
pub mod geometry;
pub mod hardening;
pub mod jobs;
#[macro_use]
pub mod kill;
pub mod mem;
pub mod merging;
pub mod outage;
pub mod projections;
pub mod saga_engine;
pub mod sagas;
pub mod specs;
pub mod tenancy;
pub mod undo;

use std::collections::HashSet;
use std::time::Duration;

use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, NewEvent, Outbox, OutboxMessage, OutboxRecord, ProjectionStore,
    SagaStore, ScheduleStore, Snapshot, SnapshotStore, StateWrite, StreamAppend, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{AppBuilder, RetryPolicy, SnapshotPolicy};
use domain::*;
use futures::StreamExt;
use rand::Rng;
use serde_json::json;

/// Runs `$runner!` over the contracts every store must pass: memory, SQLite and
/// PostgreSQL alike (each test file adds the ones that need raw SQL or other sizes).
macro_rules! every_store_contract {
    ($runner:ident $(, $db:ty)?) => {
        $runner! { $($db;)?
            concurrent_appends_at_one_version_conflict => same_version_appends_conflict();
            snapshot_and_tail_equal_a_full_replay => snapshot_plus_tail_equals_full_replay();
            a_stale_snapshot_falls_back_to_replay => stale_snapshot_falls_back_to_replay();
            snapshots_keep_the_newest_per_tenant => only_a_newer_snapshot_replaces_the_stored_one();
            upcaster_chain_runs_on_load => upcasters_run_on_load();
            state_rows_are_versioned => state_rows_have_optimistic_versions();
            racing_state_writers_let_one_win => racing_writers_of_one_state_row_let_one_win(8);
            metadata_round_trips => envelopes_carry_metadata_through_the_store();
            outbox_rows_are_published_or_die => outbox_rows_can_be_published_and_die();
            outbox_rows_of_a_stream_leave_in_order => outbox_rows_of_a_stream_are_claimed_in_order();
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
            tenancy_documents_are_found_by_specification => documents_are_found_and_counted_by_specification_per_tenant();
            tenancy_scheduled_ids_are_per_tenant => scheduled_ids_are_per_tenant();
            tenancy_operators_list_one_tenant_or_all => operators_list_one_tenant_or_all();
            tenancy_a_worker_of_one_tenant_keeps_its_own_checkpoint => a_worker_of_one_tenant_keeps_its_own_checkpoint();
            tenancy_random_interleavings_agree_with_memory => random_two_tenant_interleavings_agree_with_memory(8, 40);
            merge_a_conflicting_state_write_is_merged => a_conflicting_write_is_merged();
            merge_gives_up_after_three_merges => merging_gives_up_after_three_merges();
            merge_an_unreadable_merge_is_a_merge_error => an_unreadable_merge_is_a_merge_error();
            merge_not_declared_a_conflict_is_decided_again => without_a_merge_a_conflict_is_decided_again();
            undo_redo_and_the_log_read_back => undo_and_redo_are_logged_and_read_back();
            undo_events_and_log_are_per_tenant => undo_is_kept_per_tenant();
            undo_a_logged_entry_refuses_the_whole_batch => a_logged_entry_refuses_the_whole_batch();
            undo_racing_undos_let_one_commit => of_racing_undos_exactly_one_commits();
            undo_a_failing_inverse_command_logs_nothing => a_failing_inverse_command_logs_nothing();
            jobs_commit_with_the_command_or_not_at_all => jobs_are_enqueued_with_the_commit_or_not_at_all();
            jobs_records_round_trip => job_records_round_trip();
            jobs_run_retry_and_complete_with_progress => jobs_run_retry_after_a_backoff_and_complete();
            jobs_two_workers_never_claim_one_job => two_workers_never_claim_one_job(120);
            jobs_expired_leases_are_swept_back => expired_leases_are_swept_back_and_lost_workers_write_nothing();
            jobs_operators_list_count_cancel_retry_purge_per_tenant => operators_list_count_cancel_retry_and_purge_per_tenant();
            deadlines_commit_with_the_events => deadlines_are_written_with_the_events();
            deadlines_of_a_conflicting_batch_are_not_written => a_conflicting_batch_writes_no_deadline();
            deadlines_fire_only_as_scheduled => a_fire_of_a_deadline_scheduled_again_is_refused();
            deadlines_writes_are_per_tenant => deadline_writes_are_per_tenant();
            deadlines_of_a_loan_fire_once_or_are_cancelled => a_loans_deadlines_fire_once_or_are_cancelled();
            deadlines_of_a_tenant_are_its_own => a_tenants_deadlines_are_its_own();
            deadlines_survive_a_restart => a_deadline_scheduled_before_a_restart_fires_in_a_fresh_process();
            deadlines_of_a_saga_save_are_written_with_it_or_not_at_all => a_saga_save_writes_its_deadlines_or_none();
            deadlines_of_a_saga_fire_after_a_restart_or_end_with_it => a_sagas_deadline_fires_after_a_restart_or_ends_with_it();
        }
    };
}

/// How many random cases the differential specification test runs (`SPEC_CASES`,
/// 60 by default).
pub fn spec_cases() -> u32 {
    std::env::var("SPEC_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

/// Runs `$runner!` over the contracts every SQL store must pass (raw SQL, sizes of the
/// calling file: `MESSAGES`).
#[allow(unused_macros)] // not on the memory store
macro_rules! every_sql_contract {
    ($runner:ident $(, $db:ty)?) => {
        $runner! { $($db;)?
            concurrent_commands_on_one_aggregate_lose_no_update => concurrent_commands_lose_no_update(16, 200);
            specifications_agree_with_memory => random_specifications_agree_with_memory(spec_cases());
            declared_indexes_serve_the_same_answers => declared_indexes_are_built_and_queries_still_agree();
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
            cancelled_reads_leave_the_kept_connections_clean => cancelled_reads_leave_every_path_working();
            kept_connections_go_back_to_the_pool => kept_connections_go_back_when_idle_and_when_the_pool_closes();
            the_application_keeps_half_the_pool => the_application_gets_half_the_pool_while_the_store_is_busy();
            a_store_keeping_none_leaves_the_whole_pool => a_store_keeping_no_connection_leaves_the_whole_pool();
            unstorable_json_is_refused_alike => values_no_backend_stores_are_refused_alike();
            non_json_is_refused_alike => text_that_is_not_json_is_refused_alike();
            times_and_schema_versions_out_of_range_are_refused => out_of_range_times_and_schema_versions_are_refused_alike();
            bad_rows_are_corrupt_row_errors => corrupt_rows_are_named_errors();
            bad_rows_go_through_the_projection_error_policy => corrupt_rows_go_through_the_projection_error_policy();
        }
    };
}

/// Runs each contract on a database of its own: `<$db>::new()`, then `drop()`.
#[allow(unused_macros)] // not on the memory store
macro_rules! on_own_database {
    ($db:ty; $($name:ident => $contract:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = <$db>::new().await;
            $contract(&db $(, $arg)*).await;
            db.drop().await;
        }
    )*};
}

/// One isolated database (its own schema or file) and raw access to it.
#[async_trait]
pub trait TestDb: Send + Sync + 'static {
    type Store: EventStore
        + SnapshotStore
        + Outbox
        + ProjectionStore
        + SagaStore
        + ScheduleStore
        + cqrs_ddd::ports::JobStore
        + Clone;
    /// Which SQL dialect raw statements must use: SQLite's,
    const SQLITE: bool;
    /// MariaDB's (else PostgreSQL's).
    const MYSQL: bool = false;
    /// A store on this database (a new pool each call: another "process").
    async fn store(&self) -> Self::Store;
    /// Runs raw SQL; `{t}` stands for the table prefix (schema-qualified on PostgreSQL).
    async fn exec(&self, sql: &str);
    /// Rows in a table.
    async fn count(&self, table: &str) -> i64;
    /// Commits `batch` inside an explicit transaction held open for `delay`.
    async fn commit_slowly(&self, store: &Self::Store, batch: CommitBatch, delay: Duration) -> Result<()>;
    /// Commits each batch with `commit_in` in one transaction, which is then committed
    /// whatever the batches' results.
    async fn commit_in_one_transaction(
        &self,
        store: &Self::Store,
        batches: Vec<CommitBatch>,
    ) -> Vec<Result<CommitReceipt>>;
}

/// An app on `store` with the services this binary's handlers need; its sagas keep
/// their instances and deadlines in `store` too.
pub fn app<S: EventStore + SagaStore + ScheduleStore + Clone>(store: S) -> AppBuilder {
    App::builder()
        .event_store(store.clone())
        .sagas_on(store)
        .provide(projections::Seen::default())
        .provide(saga_engine::Faults::default())
}

/// Waits (bounded) until readers of all events see at least `n` events. A commit is
/// visible to `read_all` only once no older transaction that could still write events
/// is open (the gap-safe horizon), and other tests share the database server: a test
/// never assumes a reader sees a commit at once.
pub async fn visible(store: &impl EventStore, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = store.read_all(Cursor::START, n.max(1)).await.unwrap().len();
        if seen >= n {
            return;
        }
        if std::time::Instant::now() > deadline {
            let stall = store.read_stall().await.ok().flatten();
            panic!("readers see {seen} of {n} events after 60 s; horizon held by {stall:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 10 ms until it holds; fails naming `what` after `within`.
pub async fn eventually<F: Future<Output = bool>>(what: &str, within: Duration, mut check: impl FnMut() -> F) {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn new_event(event_type: &'static str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type,
        schema_version,
        payload: payload.to_string(),
        metadata: Metadata::default(),
        occurred_at: chrono::Utc::now(),
    }
}

pub async fn append(store: &impl EventStore, stream: &StreamKey, events: Vec<NewEvent>) {
    let expected_version = store.stream_version(stream).await.unwrap();
    let append = StreamAppend { stream: stream.clone(), expected_version, events };
    store.commit(CommitBatch { appends: vec![append], ..CommitBatch::default() }).await.unwrap();
}

pub async fn concurrent_commands_lose_no_update(db: &impl TestDb, tasks: usize, per_task: usize) {
    let store = db.store().await;
    let app = app(store.clone())
        .snapshot_store(store.clone())
        .snapshot::<Account>(SnapshotPolicy::every(50))
        .retry_on_conflict(RetryPolicy { max_retries: 100_000, base_delay: Duration::from_micros(200) })
        .build()
        .unwrap();
    app.send(Open { account: "hot".into(), owner: "x".into() }).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                app.send(Deposit { account: "hot".into(), amount: 1 }).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let n = (tasks * per_task) as u64;
    let loaded = app.load::<Account>(&"hot".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance), (n + 1, n));
    assert_eq!(store.stream_version(&StreamKey::new("Account", "hot")).await.unwrap(), n + 1);
}

pub async fn same_version_appends_conflict(db: &impl TestDb) {
    let store = db.store().await;
    let stream = StreamKey::new("Account", "a");
    append(&store, &stream, vec![new_event("Opened", 1, json!({"owner": "x"}))]).await;
    let batch = || CommitBatch {
        appends: vec![StreamAppend {
            stream: stream.clone(),
            expected_version: 1,
            events: vec![new_event("Deposited", 1, json!({"amount": 1}))],
        }],
        ..CommitBatch::default()
    };
    let other = db.store().await;
    let (a, b) = tokio::join!(store.commit(batch()), other.commit(batch()));
    let results = [a, b];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let err = results.into_iter().find_map(Result::err).unwrap();
    assert!(matches!(&err, Error::Conflict { stream, expected: 1, actual: 2 } if stream == "Account/a"), "{err}");
    // A stale writer of a second stream in the same batch fails the whole batch.
    let mixed = CommitBatch {
        appends: vec![
            StreamAppend {
                stream: StreamKey::new("Account", "b"),
                expected_version: 0,
                events: vec![new_event("Opened", 1, json!({"owner": "y"}))],
            },
            StreamAppend {
                stream: stream.clone(),
                expected_version: 1,
                events: vec![new_event("Deposited", 1, json!({"amount": 5}))],
            },
        ],
        ..CommitBatch::default()
    };
    let err = store.commit(mixed).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { stream, .. } if stream == "Account/a"), "{err}");
    assert_eq!(
        store.stream_version(&StreamKey::new("Account", "b")).await.unwrap(),
        0,
        "nothing of the batch is written"
    );
}

/// Writers hold their transactions open for random times while a reader tails all
/// events: it must see every event exactly once.
pub async fn tailing_reader_never_skips_a_late_commit(db: &impl TestDb, writers: usize, per_writer: usize) {
    let reader_store = db.store().await;
    let mut plans = Vec::new();
    let mut written = HashSet::new();
    for w in 0..writers {
        let store = db.store().await;
        let stream = StreamKey::new("Account", format!("w{w}"));
        let mut version = 0;
        let mut batches = Vec::new();
        for _ in 0..per_writer {
            let count: u64 = rand::rng().random_range(1..4);
            let events: Vec<NewEvent> = (0..count).map(|_| new_event("Deposited", 1, json!({"amount": 1}))).collect();
            written.extend(events.iter().map(|e| e.event_id));
            let append = StreamAppend { stream: stream.clone(), expected_version: version, events };
            let delay = Duration::from_millis(rand::rng().random_range(0..15));
            batches.push((CommitBatch { appends: vec![append], ..CommitBatch::default() }, delay));
            version += count;
        }
        plans.push((store, batches));
    }
    let total = written.len();
    let writes = plans.into_iter().map(|(store, batches)| async move {
        for (batch, delay) in batches {
            db.commit_slowly(&store, batch, delay).await.unwrap();
        }
    });
    let reader = async {
        let mut seen = Vec::new();
        let mut cursor = Cursor::START;
        let started = std::time::Instant::now();
        while seen.len() < total && started.elapsed() < Duration::from_secs(60) {
            let page = reader_store.read_all(cursor, 7).await.unwrap();
            for e in &page {
                assert!(e.cursor() > cursor, "the cursor only moves forward");
                cursor = e.cursor();
                seen.push(e.event_id);
            }
            if page.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        seen
    };
    let (_, seen) = tokio::join!(futures::future::join_all(writes), reader);
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
    assert_eq!(unique, written, "the reader missed events");
}

pub async fn snapshot_plus_tail_equals_full_replay(db: &impl TestDb) {
    let store = db.store().await;
    let with = app(store.clone())
        .snapshot_store(store.clone())
        .snapshot::<Account>(SnapshotPolicy::every(10))
        .build()
        .unwrap();
    with.send(Open { account: "s".into(), owner: "x".into() }).await.unwrap();
    for i in 1..=34 {
        with.send(Deposit { account: "s".into(), amount: i }).await.unwrap();
    }
    let snapshot = SnapshotStore::load(&store, &StreamKey::new("Account", "s")).await.unwrap().expect("a snapshot");
    assert_eq!(snapshot.version, 30);
    let from_snapshot = with.load::<Account>(&"s".to_owned()).await.unwrap();
    let replayed = app(store.clone()).build().unwrap().load::<Account>(&"s".to_owned()).await.unwrap();
    assert_eq!((from_snapshot.snapshot_version, replayed.snapshot_version), (30, 0));
    assert_eq!((from_snapshot.version, &from_snapshot.state), (replayed.version, &replayed.state));
    assert_eq!(replayed.state.balance, (1..=34).sum::<u64>());
}

pub async fn stale_snapshot_falls_back_to_replay(db: &impl TestDb) {
    let store = db.store().await;
    let plain = app(store.clone()).build().unwrap();
    plain.send(Open { account: "s".into(), owner: "x".into() }).await.unwrap();
    plain.send(Deposit { account: "s".into(), amount: 9 }).await.unwrap();
    let old = Snapshot {
        stream: StreamKey::new("Account", "s"),
        version: 2,
        state: json!({"cents": 900}).to_string(),
        taken_at: chrono::Utc::now(),
    };
    SnapshotStore::save(&store, old).await.unwrap();
    let with = app(store.clone())
        .snapshot_store(store.clone())
        .snapshot::<Account>(SnapshotPolicy::every(100))
        .build()
        .unwrap();
    let loaded = with.load::<Account>(&"s".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.snapshot_version, loaded.state.balance), (2, 0, 9));
}

/// A snapshot replaces the stored one of its stream and tenant only when it is newer: an
/// older or equal one (a slower saver) is ignored, and tenants keep their own.
pub async fn only_a_newer_snapshot_replaces_the_stored_one(db: &impl TestDb) {
    let store = db.store().await;
    let key = |tenant: Option<&str>| StreamKey::new("Account", "snap").with_tenant(tenant.map(str::to_owned));
    let snapshot = |tenant, version, cents: u64| Snapshot {
        stream: key(tenant),
        version,
        state: json!({ "cents": cents }).to_string(),
        taken_at: chrono::Utc::now(),
    };
    let stored = async |tenant| {
        let s = SnapshotStore::load(&store, &key(tenant)).await.unwrap().expect("a snapshot");
        (s.version, serde_json::from_str::<serde_json::Value>(&s.state).unwrap()["cents"].as_u64().unwrap())
    };
    SnapshotStore::save(&store, snapshot(None, 5, 500)).await.unwrap();
    SnapshotStore::save(&store, snapshot(None, 3, 300)).await.unwrap();
    assert_eq!(stored(None).await, (5, 500), "an older snapshot is ignored");
    SnapshotStore::save(&store, snapshot(None, 5, 555)).await.unwrap();
    assert_eq!(stored(None).await, (5, 500), "one of the same version is ignored");
    SnapshotStore::save(&store, snapshot(Some("t-b"), 2, 200)).await.unwrap();
    SnapshotStore::save(&store, snapshot(None, 8, 800)).await.unwrap();
    assert_eq!(stored(None).await, (8, 800), "a newer one replaces it");
    assert_eq!(stored(Some("t-b")).await, (2, 200), "another tenant's stream keeps its own");
    SnapshotStore::save(&store, snapshot(Some("t-b"), 9, 900)).await.unwrap();
    assert_eq!((stored(None).await, stored(Some("t-b")).await), ((8, 800), (9, 900)));
}

pub async fn upcasters_run_on_load(db: &impl TestDb) {
    let store = db.store().await;
    let stream = StreamKey::new("Account", "u");
    append(
        &store,
        &stream,
        vec![
            new_event("Opened", 1, json!({"owner": "x"})),
            new_event("Fee", 1, json!({"cents": 300})),
            new_event("Fee", 2, json!({"amount": 2})),
            new_event("Fee", 3, json!({"amount": 1, "reason": "wire"})),
        ],
    )
    .await;
    let app = app(store).build().unwrap();
    let acc = app.load::<Account>(&"u".to_owned()).await.unwrap().state;
    assert_eq!(acc.fees, 6);
    assert_eq!(acc.fee_reasons, ["unknown", "unknown", "wire"], "v1 took both steps, v2 only the second");
}

pub async fn corrupted_payload_is_a_serialization_error(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store).build().unwrap();
    app.send(Open { account: "c".into(), owner: "x".into() }).await.unwrap();
    app.send(Deposit { account: "c".into(), amount: 1 }).await.unwrap();
    db.exec(r#"UPDATE {t}events SET payload = '{"amount": "lots"}' WHERE stream_id = 'c' AND version = 2"#).await;
    let err = app.load::<Account>(&"c".to_owned()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Serialization { stream, version: 2, event_type, .. } if stream == "Account/c" && event_type == "Deposited"),
        "{err}"
    );
}

pub async fn rollback_leaves_no_trace(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store).build().unwrap();
    app.send(Rename { id: "p".into(), name: "first".into() }).await.unwrap();
    let (events, states, outbox) = (db.count("events").await, db.count("states").await, db.count("outbox").await);
    assert_eq!((events, states, outbox), (1, 1, 0));
    let err = app.send(RenameThenFail { profile: "p".into(), account: "new".into() }).await.unwrap_err();
    assert!(matches!(err, Error::Handler(_)), "{err}");
    assert_eq!(
        (db.count("events").await, db.count("states").await, db.count("outbox").await),
        (events, states, outbox)
    );
    let p = app.load::<Profile>(&"p".to_owned()).await.unwrap();
    assert_eq!((p.version, p.state.name.as_str()), (1, "first"));
}

pub async fn one_command_commits_events_state_and_outbox_together(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(Rename { id: "p".into(), name: "first".into() }).await.unwrap();
    app.send(RenameAndOpen { profile: "p".into(), account: "acc".into() }).await.unwrap();
    assert_eq!((db.count("events").await, db.count("states").await, db.count("outbox").await), (3, 1, 1));
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message.topic, "profiles");
    let p = app.load::<Profile>(&"p".to_owned()).await.unwrap();
    assert_eq!((p.version, p.state.name.as_str()), (2, "acc"));
    let a = app.load::<Account>(&"acc".to_owned()).await.unwrap();
    assert_eq!(a.state.owner, "p");
}

pub async fn state_rows_have_optimistic_versions(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(Rename { id: "p".into(), name: "a".into() }).await.unwrap();
    let stale =
        StateWrite { stream: StreamKey::new("Profile", "p"), expected_version: 0, version: 1, state: "{}".into() };
    let err = store.commit(CommitBatch { states: vec![stale], ..CommitBatch::default() }).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { expected: 0, actual: 1, .. }), "{err}");
    let fresh = StateWrite {
        stream: StreamKey::new("Profile", "p"),
        expected_version: 1,
        version: 2,
        state: json!({"name": "direct", "renames": 9}).to_string(),
    };
    store.commit(CommitBatch { states: vec![fresh], ..CommitBatch::default() }).await.unwrap();
    let row = store.load_state(&StreamKey::new("Profile", "p")).await.unwrap().unwrap();
    assert_eq!(row.version, 2);
}

/// Writers racing on one state row, each from its own store (another process): of the
/// writers creating it one wins, of the writers moving it from one version one wins; the
/// others get a conflict naming the version they met, and no write is lost.
pub async fn racing_writers_of_one_state_row_let_one_win(db: &impl TestDb, writers: usize) {
    let stores: Vec<_> = futures::future::join_all((0..writers).map(|_| db.store())).await;
    let key = StreamKey::new("Profile", "race");
    for (expected, round) in [(0u64, "create"), (1, "update")] {
        let attempts = stores.iter().enumerate().map(|(w, store)| {
            let write = StateWrite {
                stream: key.clone(),
                expected_version: expected,
                version: expected + 1,
                state: json!({ "round": round, "writer": w }).to_string(),
            };
            async move { store.commit(CommitBatch { states: vec![write], ..CommitBatch::default() }).await }
        });
        let results = futures::future::join_all(attempts).await;
        let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(w, _)| w).collect();
        assert_eq!(winners.len(), 1, "{round}: one writer wins: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(r, Err(Error::Conflict { expected: e, actual, .. }) if *e == expected && *actual == expected + 1),
                "{round}: the others conflict with the winner's version: {r:?}"
            );
        }
        let row = stores[0].load_state(&key).await.unwrap().unwrap();
        let state: serde_json::Value = serde_json::from_str(&row.state).unwrap();
        assert_eq!((row.version, state["writer"].as_u64()), (expected + 1, Some(winners[0] as u64)), "{round}");
    }
}

pub async fn long_streams_are_read_as_a_stream(db: &impl TestDb, n: u64) {
    let store = db.store().await;
    db.exec(&format!(
        "INSERT INTO {{t}}events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, occurred_at) \
         SELECT 'Account', 'long', g, {uuid}, CASE WHEN g = 1 THEN 'Opened' ELSE 'Deposited' END, 1, \
         (CASE WHEN g = 1 THEN '{{\"owner\":\"x\"}}' ELSE '{{\"amount\":1}}' END){json}, {now} FROM {series}",
        json = db_json_cast::<_>(db),
        uuid = db_uuid_expr::<_>(db),
        now = db_now_expr::<_>(db),
        series = db_series::<_>(db, n),
    ))
    .await;
    let mut stream = store.read_stream(&StreamKey::new("Account", "long"), 0).await.unwrap();
    let mut count = 0u64;
    let mut last = 0;
    while let Some(e) = stream.next().await {
        let e = e.unwrap();
        assert_eq!(e.version, last + 1);
        last = e.version;
        count += 1;
    }
    assert_eq!(count, n);
    let loaded = app(store).build().unwrap().load::<Account>(&"long".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance), (n, n - 1));
}

fn db_uuid_expr<D: TestDb>(_db: &D) -> &'static str {
    if D::SQLITE {
        "randomblob(16)"
    } else if D::MYSQL {
        "UNHEX(REPLACE(UUID(), '-', ''))"
    } else {
        "gen_random_uuid()"
    }
}
fn db_json_cast<D: TestDb>(_db: &D) -> &'static str {
    if D::SQLITE || D::MYSQL { "" } else { "::jsonb" }
}
fn db_now_expr<D: TestDb>(_db: &D) -> &'static str {
    if D::SQLITE {
        "'2026-01-01T00:00:00Z'"
    } else if D::MYSQL {
        "NOW(3)"
    } else {
        "now()"
    }
}
fn db_series<D: TestDb>(_db: &D, n: u64) -> String {
    if D::SQLITE || D::MYSQL {
        format!("(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) SELECT g FROM s) AS s")
    } else {
        format!("generate_series(1, {n}) AS g")
    }
}

pub async fn envelopes_carry_metadata_through_the_store(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    let meta = Metadata {
        principal: Some("ann".into()),
        headers: [("source".to_owned(), "test".to_owned())].into(),
        ..Metadata::default()
    };
    app.send_with(Open { account: "m".into(), owner: "x".into() }, Some(meta)).await.unwrap();
    visible(&store, 1).await;
    let e = &store.read_all(Cursor::START, 1).await.unwrap()[0];
    assert_eq!(e.metadata.principal.as_deref(), Some("ann"));
    assert_eq!(e.metadata.headers.get("source").map(String::as_str), Some("test"));
    assert!(e.metadata.correlation_id.is_some() && e.metadata.causation_id.is_some());
    assert_eq!((e.version, e.event_type.as_str(), e.schema_version), (1, "Opened", 1));
}

/// A row waits while an earlier row of its stream cannot be claimed (failed and due
/// later, or claimed); rows without a stream and other streams' rows do not.
pub async fn outbox_rows_of_a_stream_are_claimed_in_order(db: &impl TestDb) {
    use cqrs_ddd::broker::headers::STREAM;
    let store = db.store().await;
    let row = |stream: Option<&str>, n: u32| OutboxMessage {
        id: uuid::Uuid::now_v7(),
        topic: format!("t{n}"),
        payload: "{}".into(),
        headers: stream.map(|s| (STREAM.to_owned(), s.to_owned())).into_iter().collect(),
        created_at: chrono::Utc::now(),
    };
    let rows = vec![row(Some("a"), 1), row(Some("b"), 1), row(Some("a"), 2), row(None, 1), row(Some("a"), 3)];
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    store.commit(CommitBatch { outbox: rows, ..CommitBatch::default() }).await.unwrap();
    let lease = Duration::from_secs(60);
    let topics = |claimed: &[OutboxRecord]| -> Vec<String> {
        claimed
            .iter()
            .map(|r| format!("{}{}", r.message.headers.get(STREAM).map_or("-", String::as_str), r.message.topic))
            .collect()
    };

    // a1 claimed by one relay: a2 and a3 wait for it, the rest go to another relay.
    let first = store.claim("r1", 1, lease).await.unwrap();
    assert_eq!(topics(&first), ["at1"]);
    assert_eq!(topics(&store.claim("r2", 10, lease).await.unwrap()), ["bt1", "-t1"]);
    // a1 fails and is due in an hour: a2 and a3 still wait.
    store.mark_failed(ids[0], "broker down", Duration::from_secs(3600), 10).await.unwrap();
    assert!(store.claim("r2", 10, lease).await.unwrap().is_empty());
    // Once a1 is published, a2 and a3 leave in order.
    store.mark_published(ids[0]).await.unwrap();
    let next = store.claim("r2", 10, lease).await.unwrap();
    assert_eq!(topics(&next), ["at2", "at3"]);
    // Given back untried, they can be claimed again at once.
    store.release(&[ids[2], ids[4]]).await.unwrap();
    assert_eq!(topics(&store.claim("r3", 10, lease).await.unwrap()), ["at2", "at3"]);

    // A relay's own claim does not hold back its next batch; another relay's does.
    let rows = vec![row(Some("c"), 1), row(Some("c"), 2)];
    store.commit(CommitBatch { outbox: rows, ..CommitBatch::default() }).await.unwrap();
    assert_eq!(topics(&store.claim("r4", 1, lease).await.unwrap()), ["ct1"]);
    assert!(store.claim("r5", 10, lease).await.unwrap().is_empty());
    assert_eq!(topics(&store.claim("r4", 10, lease).await.unwrap()), ["ct2"]);
}

pub async fn outbox_rows_can_be_published_and_die(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(Rename { id: "p".into(), name: "a".into() }).await.unwrap();
    for account in ["x", "y"] {
        app.send(RenameAndOpen { profile: "p".into(), account: account.into() }).await.unwrap();
    }
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    store.mark_published(pending[0].message.id).await.unwrap();
    for _ in 0..3 {
        store.mark_failed(pending[1].message.id, "broker down", Duration::ZERO, 3).await.unwrap();
    }
    assert!(store.pending(10).await.unwrap().is_empty());
    let dead = Outbox::dead(&store).await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts, dead[0].last_error.as_deref()), (1, 3, Some("broker down")));
}
