//! Faults a store must survive: writes cancelled at any await point.

use std::time::Duration;

use chrono::Utc;
use cqrs_ddd::RetryPolicy;
use cqrs_ddd::ports::{
    CommitBatch, EventStore, Outbox, OutboxMessage, ProjectionStore, SagaKey, SagaRecord, SagaStatus, SagaStore,
    ScheduleStore, ScheduledCommand, StateWrite, StreamKey,
};
use cqrs_ddd::prelude::*;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use super::domain::*;
use super::{TestDb, app};

/// How long one operation may take after the cancellations before the test calls it stuck
/// (a connection left inside a transaction holds SQLite's write lock until the busy
/// timeout).
const STUCK: Duration = Duration::from_secs(20);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T>>) -> T {
    let Ok(done) = tokio::time::timeout(STUCK, f).await else {
        panic!("{what} did not finish within {STUCK:?} after the cancelled writes")
    };
    done.unwrap_or_else(|e| panic!("{what} failed after the cancelled writes: {e}"))
}

/// A time budget of 0 to 4 ms, one in two under 0.4 ms (where `BEGIN` is on the wire).
fn random_budget() -> Duration {
    let mut rng = rand::rng();
    let max = if rng.random_bool(0.5) { 400 } else { 4_000 };
    Duration::from_micros(rng.random_range(0..=max))
}

/// A state row written with no event to guard it: PostgreSQL checks its version in a
/// transaction of its own.
async fn state_only(store: &impl EventStore, id: &str) -> Result<()> {
    let stream = StreamKey::new("Profile", id);
    let expected = store.load_state(&stream).await?.map_or(0, |s| s.version);
    let write = StateWrite {
        stream,
        expected_version: expected,
        version: expected + 1,
        state: json!({"name": id, "renames": expected + 1}).to_string(),
    };
    match store.commit(CommitBatch { states: vec![write], ..CommitBatch::default() }).await {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn projection_batch(store: &impl ProjectionStore, id: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.put_doc("cancel", id, json!({ "id": id }).to_string()).await?;
    tx.commit().await
}

fn outbox_batch() -> (Uuid, CommitBatch) {
    let id = Uuid::now_v7();
    let message = OutboxMessage {
        id,
        topic: "cancel".into(),
        payload: json!({ "id": id }).to_string(),
        headers: std::collections::BTreeMap::new(),
        created_at: Utc::now(),
    };
    (id, CommitBatch { outbox: vec![message], ..CommitBatch::default() })
}

fn saga_record(id: &str) -> SagaRecord {
    // Both databases keep saga times to the millisecond.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    SagaRecord {
        key: SagaKey::new("Cancel", id),
        status: SagaStatus::Running,
        version: 1,
        wake_at: None,
        data: json!({ "id": id }).to_string(),
        created_at: now,
        updated_at: now,
    }
}

fn due_command() -> ScheduledCommand {
    let id = Uuid::now_v7();
    ScheduledCommand {
        id,
        command_type: "Cancel".into(),
        payload: json!({ "id": id }).to_string(),
        due_at: Utc::now() - chrono::TimeDelta::seconds(1),
        metadata: Metadata::default(),
        attempts: 0,
        last_error: None,
        created_at: Utc::now(),
    }
}

/// A hundred sends dropped at random await points (timeouts of 0 to 4 ms), with
/// projection batches, state writes and claims dropped alike, leave no pooled connection
/// inside a transaction: afterwards commands, projection batches, saga saves, outbox
/// claims and schedule claims all still work, on every connection of the pool.
pub async fn cancelled_writes_leave_every_path_working(db: &impl TestDb) {
    let store = db.store().await;
    // A cancelled send may still commit after the next one loaded the stream: that one
    // conflicts and is retried.
    let app = app(store.clone())
        .retry_on_conflict(RetryPolicy { max_retries: 10, base_delay: Duration::from_millis(1) })
        .build()
        .unwrap();
    app.send(Open { account: "c".into(), owner: "x".into() }).await.unwrap();
    let mut cancelled = 0;
    for i in 0..100 {
        let sent = tokio::time::timeout(random_budget(), app.send(Deposit { account: "c".into(), amount: 1 })).await;
        cancelled += usize::from(sent.is_err());
        // The other paths that open transactions, cut short alike.
        let _ = tokio::time::timeout(random_budget(), state_only(&store, "cancelled")).await;
        let _ = tokio::time::timeout(random_budget(), projection_batch(&store, &format!("d{i}"))).await;
        let _ = tokio::time::timeout(random_budget(), store.commit(outbox_batch().1)).await;
        let _ = tokio::time::timeout(random_budget(), store.claim("r", 1, Duration::ZERO)).await;
        let _ = tokio::time::timeout(random_budget(), store.claim_due("w", Utc::now(), 1, Duration::ZERO)).await;
    }
    assert!(cancelled > 0, "some sends must have been cancelled for the test to mean anything");

    // Every path, several times over, so that each pooled connection serves each of them.
    for round in 0..12 {
        bounded("a command", app.send(Deposit { account: "c".into(), amount: 1 })).await;
        bounded("a state write", state_only(&store, "after")).await;
        let doc = format!("after-{round}");
        bounded("a projection batch", projection_batch(&store, &doc)).await;
        assert!(bounded("reading the document", store.document("cancel", &doc)).await.is_some());

        let record = saga_record(&format!("s{round}"));
        bounded("a saga save", SagaStore::save(&store, &record, 0)).await;
        assert_eq!(bounded("a saga load", SagaStore::load(&store, &record.key)).await, Some(record));

        let (id, batch) = outbox_batch();
        bounded("an outbox commit", store.commit(batch)).await;
        let mut claimed = Vec::new();
        while !claimed.iter().any(|r: &cqrs_ddd::ports::OutboxRecord| r.message.id == id) {
            let page = bounded("an outbox claim", store.claim("after", 100, Duration::from_secs(600))).await;
            assert!(!page.is_empty(), "the new outbox message is claimable");
            claimed.extend(page);
        }

        let command = due_command();
        bounded("scheduling", store.schedule(&command)).await;
        let mut taken = Vec::new();
        while !taken.iter().any(|c: &ScheduledCommand| c.id == command.id) {
            let page =
                bounded("a schedule claim", store.claim_due("after", Utc::now(), 100, Duration::from_secs(600))).await;
            assert!(!page.is_empty(), "the due command is claimable");
            taken.extend(page);
        }
    }
    let version = bounded("the stream version", store.stream_version(&StreamKey::new("Account", "c"))).await;
    let balance = app.load::<Account>(&"c".to_owned()).await.unwrap();
    assert_eq!(balance.version, version);
    assert_eq!(balance.state.balance, version - 1, "every committed deposit is in the stream once");
}
