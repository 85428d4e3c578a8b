//! Idempotent commits, saga instances and scheduled commands on a real database.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_ddd::ports::{
    CommitBatch, EventStore, OutboxMessage, SagaFilter, SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore,
    ScheduledCommand, StateWrite, StreamAppend, StreamKey, TenantScope,
};
use cqrs_ddd::{Error, Metadata};
use serde_json::json;
use uuid::Uuid;

use super::{TestDb, append, new_event};

/// A fixed time on a whole millisecond (both databases keep milliseconds).
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_900_000_000_123).unwrap()
}

fn ms(offset: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(offset)
}

fn secs(offset: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(offset)
}

fn deposit(stream: &StreamKey, expected_version: u64, key: Uuid) -> CommitBatch {
    CommitBatch {
        appends: vec![StreamAppend {
            stream: stream.clone(),
            expected_version,
            events: vec![new_event("Deposited", 1, json!({"amount": 1}))],
        }],
        idempotency_key: Some(key),
        ..CommitBatch::default()
    }
}

fn is_processed(result: &Result<impl std::fmt::Debug, Error>, key: Uuid) -> bool {
    matches!(result, Err(Error::AlreadyProcessed { key: k }) if *k == key)
}

pub async fn a_repeated_idempotency_key_is_refused_and_writes_nothing(db: &impl TestDb) {
    let store = db.store().await;
    let key = Uuid::now_v7();
    let a = StreamKey::new("Account", "a");
    store.commit(deposit(&a, 0, key)).await.unwrap();

    // Another batch under the key is refused whole: events, state row and outbox row.
    let b = StreamKey::new("Account", "b");
    let mut again = deposit(&b, 0, key);
    again.states.push(StateWrite {
        stream: StreamKey::new("Profile", "p"),
        expected_version: 0,
        version: 1,
        state: "{}".into(),
    });
    again.outbox.push(OutboxMessage {
        id: Uuid::now_v7(),
        topic: "accounts".into(),
        payload: "{}".into(),
        headers: std::collections::BTreeMap::new(),
        created_at: t0(),
    });
    let refused = store.commit(again).await;
    assert!(is_processed(&refused, key), "{refused:?}");
    let counts = [db.count("events").await, db.count("states").await, db.count("outbox").await];
    assert_eq!(counts, [1, 0, 0], "events, states, outbox");
    assert_eq!(db.count("processed_commands").await, 1);
    assert_eq!(store.stream_version(&b).await.unwrap(), 0);

    // A retried command that is also stale is reported as processed, not as a conflict.
    let stale = store.commit(deposit(&a, 0, key)).await;
    assert!(is_processed(&stale, key), "{stale:?}");
    let state_key = Uuid::now_v7();
    let profile = |expected_version| CommitBatch {
        states: vec![StateWrite {
            stream: StreamKey::new("Profile", "q"),
            expected_version,
            version: expected_version + 1,
            state: "{}".into(),
        }],
        idempotency_key: Some(state_key),
        ..CommitBatch::default()
    };
    store.commit(profile(0)).await.unwrap();
    let stale = store.commit(profile(0)).await;
    assert!(is_processed(&stale, state_key), "a state row conflict too: {stale:?}");

    // A batch of nothing but a key records it.
    let lone = Uuid::now_v7();
    let only = CommitBatch { idempotency_key: Some(lone), ..CommitBatch::default() };
    assert_eq!(store.commit(only.clone()).await.unwrap().positions, Vec::<u64>::new());
    assert_eq!(db.count("processed_commands").await, 3);
    let refused = store.commit(only).await;
    assert!(is_processed(&refused, lone), "{refused:?}");
}

pub async fn a_refused_batch_does_not_record_its_key(db: &impl TestDb) {
    let store = db.store().await;
    let a = StreamKey::new("Account", "a");
    append(&store, &a, vec![new_event("Opened", 1, json!({"owner": "x"}))]).await;
    let key = Uuid::now_v7();
    let err = store.commit(deposit(&a, 0, key)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { expected: 0, actual: 1, .. }), "{err}");
    assert_eq!(db.count("processed_commands").await, 0);
    store.commit(deposit(&a, 1, key)).await.expect("the retry under the same key goes through");
    assert_eq!(store.stream_version(&a).await.unwrap(), 2);

    // In the caller's transaction, a refused batch is undone and the rest commits.
    let (retried, b) = (Uuid::now_v7(), StreamKey::new("Account", "b"));
    let results =
        db.commit_in_one_transaction(&store, vec![deposit(&a, 0, retried), deposit(&b, 0, Uuid::now_v7())]).await;
    assert!(matches!(&results[0], Err(Error::Conflict { expected: 0, actual: 2, .. })), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert_eq!(store.stream_version(&b).await.unwrap(), 1);
    store.commit(deposit(&a, 2, retried)).await.expect("the refused batch's key was not kept");
    let results =
        db.commit_in_one_transaction(&store, vec![deposit(&b, 1, retried), deposit(&b, 1, Uuid::now_v7())]).await;
    assert!(is_processed(&results[0], retried), "{:?}", results[0]);
    assert!(results[1].is_ok(), "the transaction stays usable: {:?}", results[1]);
    assert_eq!(store.stream_version(&b).await.unwrap(), 2);
}

pub async fn concurrent_commits_under_one_key_apply_once(db: &impl TestDb) {
    let key = Uuid::now_v7();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store = db.store().await;
        tasks.push(tokio::spawn(async move {
            store.commit(deposit(&StreamKey::new("Account", format!("c{i}")), 0, key)).await
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| is_processed(r, key)), "{results:?}");
    assert_eq!(db.count("events").await, 1);
}

fn saga(saga_type: &str, saga_id: &str, status: SagaStatus, created_at: DateTime<Utc>) -> SagaRecord {
    SagaRecord {
        key: SagaKey::new(saga_type, saga_id),
        status,
        version: 1,
        wake_at: None,
        data: json!({"id": saga_id}).to_string(),
        created_at,
        updated_at: created_at,
    }
}

pub async fn saga_records_round_trip(db: &impl TestDb) {
    let store = db.store().await;
    let key = SagaKey::new("Order", "o-1");
    assert_eq!(SagaStore::load(&store, &key).await.unwrap(), None);
    let first = SagaRecord {
        key: key.clone(),
        status: SagaStatus::Pending,
        version: 1,
        wake_at: Some(secs(30)),
        data: r#"{"order": "o-1",  "lines": [1, 2], "note": "crème"}"#.to_owned(),
        created_at: t0(),
        updated_at: t0(),
    };
    SagaStore::save(&store, &first, 0).await.unwrap();
    assert_eq!(SagaStore::load(&store, &key).await.unwrap().as_ref(), Some(&first), "data is kept as written");
    let second = SagaRecord {
        status: SagaStatus::Suspended,
        version: 2,
        wake_at: None,
        data: r#"{"order":"o-1","step":2}"#.to_owned(),
        updated_at: secs(5),
        ..first.clone()
    };
    SagaStore::save(&store, &second, 1).await.unwrap();
    assert_eq!(SagaStore::load(&store, &key).await.unwrap(), Some(second));

    // Times keep milliseconds, on every database alike.
    let fine = SagaRecord {
        key: SagaKey::new("Order", "o-2"),
        wake_at: Some(t0() + TimeDelta::microseconds(1_999)),
        updated_at: t0() + TimeDelta::nanoseconds(999_999),
        ..first
    };
    SagaStore::save(&store, &fine, 0).await.unwrap();
    let loaded = SagaStore::load(&store, &fine.key).await.unwrap().unwrap();
    assert_eq!((loaded.wake_at, loaded.updated_at), (Some(ms(1)), t0()));
}

pub async fn saga_saves_conflict_with_the_actual_version(db: &impl TestDb) {
    let store = db.store().await;
    let first = saga("Order", "c", SagaStatus::Running, t0());
    let key = first.key.clone();
    SagaStore::save(&store, &first, 0).await.unwrap();
    let err = SagaStore::save(&store, &first, 0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { stream, expected: 0, actual: 1 } if *stream == "saga:Order/c"),
        "inserted twice: {err}"
    );
    let second = SagaRecord { version: 2, data: r#"{"v":2}"#.into(), ..first.clone() };
    SagaStore::save(&store, &second, 1).await.unwrap();
    let stale = SagaRecord { version: 2, data: r#"{"stale":true}"#.into(), ..first.clone() };
    let err = SagaStore::save(&store, &stale, 1).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { expected: 1, actual: 2, .. }), "stale update: {err}");
    assert_eq!(SagaStore::load(&store, &key).await.unwrap(), Some(second.clone()), "the stale write is not kept");
    let ghost = SagaRecord { version: 4, ..saga("Order", "ghost", SagaStatus::Running, t0()) };
    let err = SagaStore::save(&store, &ghost, 3).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { expected: 3, actual: 0, .. }), "missing instance: {err}");
    assert_eq!(SagaStore::load(&store, &ghost.key).await.unwrap(), None);

    // Two writers at one version: one wins, the other learns the version it lost to.
    let other = db.store().await;
    let (mine, theirs) = (
        SagaRecord { version: 3, data: r#"{"by":"mine"}"#.into(), ..second.clone() },
        SagaRecord { version: 3, data: r#"{"by":"theirs"}"#.into(), ..second },
    );
    let (a, b) = tokio::join!(SagaStore::save(&store, &mine, 2), SagaStore::save(&other, &theirs, 2));
    assert_eq!([a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let err = a.err().or(b.err()).unwrap();
    assert!(matches!(&err, Error::Conflict { expected: 2, actual: 3, .. }), "{err}");
}

pub async fn due_sagas_come_earliest_first(db: &impl TestDb) {
    let store = db.store().await;
    let wakes = [
        ("late", Some(ms(-1_000))),
        ("early", Some(ms(-3_000))),
        ("never", None),
        ("mid", Some(ms(-2_000))),
        ("future", Some(ms(1))),
        ("now", Some(t0())),
    ];
    for (id, wake_at) in wakes {
        let record = SagaRecord { wake_at, ..saga("Order", id, SagaStatus::Running, t0()) };
        SagaStore::save(&store, &record, 0).await.unwrap();
    }
    let keys = |ids: &[&str]| ids.iter().map(|id| SagaKey::new("Order", *id)).collect::<Vec<_>>();
    assert_eq!(store.due(t0(), 10).await.unwrap(), keys(&["early", "mid", "late", "now"]));
    assert_eq!(store.due(t0(), 2).await.unwrap(), keys(&["early", "mid"]));
    assert_eq!(store.due(ms(1), 10).await.unwrap(), keys(&["early", "mid", "late", "now", "future"]));
    assert_eq!(store.due(ms(-5_000), 10).await.unwrap(), keys(&[]));
    // Saving without a wake time takes an instance off the list.
    let asleep = SagaRecord { version: 2, ..saga("Order", "early", SagaStatus::Completed, t0()) };
    SagaStore::save(&store, &asleep, 1).await.unwrap();
    assert_eq!(store.due(t0(), 10).await.unwrap(), keys(&["mid", "late", "now"]));
}

pub async fn sagas_are_listed_by_type_and_status(db: &impl TestDb) {
    let store = db.store().await;
    let o1 = saga("Order", "o1", SagaStatus::Running, secs(1));
    let o2 = saga("Order", "o2", SagaStatus::Completed, secs(2));
    let o3 = saga("Order", "o3", SagaStatus::Suspended, secs(3));
    let p1 = saga("Payment", "p1", SagaStatus::Running, secs(0));
    // Created at the same time: ordered by key.
    let ob = saga("Order", "ob", SagaStatus::Running, secs(4));
    let oa = saga("Order", "oa", SagaStatus::Failed, secs(4));
    for r in [&o1, &o2, &o3, &p1, &ob, &oa] {
        SagaStore::save(&store, r, 0).await.unwrap();
    }
    let list = |saga_type, statuses: &'static [SagaStatus], limit| {
        let store = store.clone();
        async move {
            let filter = SagaFilter { saga_type, statuses, limit, ..SagaFilter::default() };
            let found = store.list(&filter).await.unwrap();
            found.into_iter().map(|r| r.key.saga_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Some("Order"), &[], 10).await, ["o1", "o2", "o3", "oa", "ob"]);
    assert_eq!(list(None, &[SagaStatus::Running], 10).await, ["p1", "o1", "ob"]);
    assert_eq!(list(Some("Order"), &SagaStatus::ACTIVE, 10).await, ["o1", "o3", "ob"]);
    assert_eq!(list(None, &[], 2).await, ["p1", "o1"]);
    assert_eq!(list(Some("Payment"), &[SagaStatus::Completed], 10).await, Vec::<String>::new());
    assert_eq!(list(Some("Shipping"), &[], 10).await, Vec::<String>::new());
    let failed = SagaFilter { statuses: &[SagaStatus::Failed], ..SagaFilter::default() };
    assert_eq!(store.list(&failed).await.unwrap(), [oa], "records load back whole");
    // An operator's view of one tenant.
    let mut t1 = saga("Order", "t1-o", SagaStatus::Running, secs(5));
    t1.key.tenant_id = Some("t1".into());
    SagaStore::save(&store, &t1, 0).await.unwrap();
    let of = |tenant| SagaFilter { tenant, ..SagaFilter::default() };
    let ids = |found: Vec<SagaRecord>| found.into_iter().map(|r| r.key.saga_id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(&of(TenantScope::Only(Some("t1")))).await.unwrap()), ["t1-o"]);
    assert_eq!(ids(store.list(&of(TenantScope::Only(None))).await.unwrap()).len(), 6, "the untenanted ones");
    assert_eq!(ids(store.list(&of(TenantScope::All)).await.unwrap()).len(), 7);
    assert!(store.list(&of(TenantScope::Only(Some("")))).await.is_err(), "an empty tenant id is refused");
}

pub async fn saga_keys_are_isolated_by_tenant(db: &impl TestDb) {
    let store = db.store().await;
    let tenants = [None, Some("t1"), Some("t2")];
    let records: Vec<SagaRecord> = tenants
        .iter()
        .map(|t| {
            let key = SagaKey::new("Order", "same").with_tenant(t.map(str::to_owned));
            SagaRecord {
                key,
                wake_at: Some(ms(-1)),
                data: json!({ "tenant": t }).to_string(),
                ..saga("Order", "same", SagaStatus::Running, t0())
            }
        })
        .collect();
    for r in &records {
        SagaStore::save(&store, r, 0).await.expect("one instance per tenant");
    }
    for r in &records {
        assert_eq!(SagaStore::load(&store, &r.key).await.unwrap().as_ref(), Some(r));
    }
    let moved = SagaRecord { version: 2, data: r#"{"moved":true}"#.into(), ..records[1].clone() };
    SagaStore::save(&store, &moved, 1).await.unwrap();
    let err = SagaStore::save(&store, &SagaRecord { version: 3, ..records[2].clone() }, 2).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { stream, expected: 2, actual: 1 } if *stream == "t2/saga:Order/same"),
        "{err}"
    );
    assert_eq!(SagaStore::load(&store, &records[0].key).await.unwrap().map(|r| r.version), Some(1));
    assert_eq!(SagaStore::load(&store, &records[2].key).await.unwrap().map(|r| r.version), Some(1));
    let due: Vec<_> = store.due(t0(), 10).await.unwrap();
    assert_eq!(due, records.iter().map(|r| r.key.clone()).collect::<Vec<_>>());
}

fn command(due_at: DateTime<Utc>) -> ScheduledCommand {
    let id = Uuid::now_v7();
    ScheduledCommand {
        id,
        command_type: "SendReminder".into(),
        payload: json!({ "reminder": id }).to_string(),
        due_at,
        metadata: Metadata::default(),
        attempts: 0,
        last_error: None,
        created_at: t0(),
    }
}

fn ids(commands: &[ScheduledCommand]) -> Vec<Uuid> {
    commands.iter().map(|c| c.id).collect()
}

pub async fn scheduled_commands_are_kept_replaced_and_cancelled(db: &impl TestDb) {
    let store = db.store().await;
    let cmd = ScheduledCommand {
        payload: r#"{"order": "o-1",  "spaced": true}"#.into(),
        metadata: Metadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: Some(Uuid::now_v7()),
            tenant_id: Some("t1".into()),
            principal: Some("ann".into()),
            headers: [("source".to_owned(), "test".to_owned())].into(),
        },
        ..command(secs(60))
    };
    assert_eq!(store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap(), None);
    store.schedule(&cmd).await.unwrap();
    assert_eq!(
        store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap().as_ref(),
        Some(&cmd),
        "payload and metadata as written"
    );
    let replaced = ScheduledCommand {
        command_type: "SendNotice".into(),
        payload: r#"{"order":"o-2"}"#.into(),
        due_at: secs(120),
        // Ids are per tenant: the same id in the same tenant replaces.
        metadata: Metadata { tenant_id: cmd.metadata.tenant_id.clone(), ..Metadata::default() },
        ..cmd.clone()
    };
    store.schedule(&replaced).await.unwrap();
    assert_eq!(store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap(), Some(replaced));
    assert_eq!(db.count("scheduled_commands").await, 1);
    assert!(store.cancel(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap());
    assert_eq!(store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap(), None);
    assert!(!store.cancel(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap(), "nothing left to cancel");
}

pub async fn claims_take_due_live_unclaimed_commands(db: &impl TestDb) {
    let store = db.store().await;
    let (a, b, later, dead) = (command(ms(-2_000)), command(ms(-1_000)), command(secs(5)), command(ms(-3_000)));
    for c in [&a, &b, &later, &dead] {
        store.schedule(c).await.unwrap();
    }
    store.mark_dead(dead.metadata.tenant_id.as_deref(), dead.id, "gone").await.unwrap();
    let lease = Duration::from_secs(30);
    assert_eq!(store.claim_due("w1", t0(), 10, lease).await.unwrap(), [a.clone(), b.clone()]);
    assert_eq!(store.claim_due("w2", t0(), 10, lease).await.unwrap(), [], "claims are live");
    let claimed = store.claim_due("w2", ms(29_999), 10, lease).await.unwrap();
    assert_eq!(ids(&claimed), [later.id], "the others' claims are live until they run out");
    // At secs(30) the first claims ran out.
    assert_eq!(ids(&store.claim_due("w3", secs(30), 1, lease).await.unwrap()), [a.id]);
    assert_eq!(ids(&store.claim_due("w3", secs(30), 10, lease).await.unwrap()), [b.id]);
    assert_eq!(store.claim_due("w4", ms(59_998), 10, lease).await.unwrap(), []);
    assert_eq!(ids(&store.claim_due("w4", ms(59_999), 10, lease).await.unwrap()), [later.id]);
}

pub async fn failed_commands_retry_later_then_die(db: &impl TestDb) {
    let store = db.store().await;
    let cmd = command(t0());
    store.schedule(&cmd).await.unwrap();
    let lease = Duration::from_secs(60);
    assert_eq!(ids(&store.claim_due("w", t0(), 10, lease).await.unwrap()), [cmd.id]);
    store.retry_later(cmd.metadata.tenant_id.as_deref(), cmd.id, "broker down", secs(10)).await.unwrap();
    let retried = store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap().unwrap();
    assert_eq!((retried.attempts, retried.last_error.as_deref(), retried.due_at), (1, Some("broker down"), secs(10)));
    assert_eq!(store.claim_due("w", secs(5), 10, lease).await.unwrap(), [], "not due again yet");
    assert_eq!(store.claim_due("w", secs(10), 10, lease).await.unwrap(), [retried], "the claim was let go");

    store.mark_dead(cmd.metadata.tenant_id.as_deref(), cmd.id, "fatal").await.unwrap();
    let dead = store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap().unwrap();
    assert_eq!((dead.attempts, dead.last_error.as_deref()), (2, Some("fatal")));
    assert_eq!(store.claim_due("w", secs(1_000), 10, lease).await.unwrap(), [], "dead commands are not claimed");
    let older = ScheduledCommand { created_at: secs(-1), ..command(t0()) };
    store.schedule(&older).await.unwrap();
    store.mark_dead(older.metadata.tenant_id.as_deref(), older.id, "fatal too").await.unwrap();
    assert_eq!(ids(&ScheduleStore::dead(&store, 10).await.unwrap()), [older.id, cmd.id], "oldest first");
    assert_eq!(ids(&ScheduleStore::dead(&store, 1).await.unwrap()), [older.id]);

    // Scheduled again, it lives again with a clean slate.
    let revived = ScheduledCommand { due_at: secs(20), ..cmd.clone() };
    store.schedule(&revived).await.unwrap();
    assert_eq!(ids(&ScheduleStore::dead(&store, 10).await.unwrap()), [older.id]);
    assert_eq!(store.claim_due("w", secs(20), 10, lease).await.unwrap(), [revived]);
    store.complete(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap();
    assert_eq!(store.get(cmd.metadata.tenant_id.as_deref(), cmd.id).await.unwrap(), None);
    assert_eq!(db.count("scheduled_commands").await, 1);
}

/// Two workers claim `n` due commands a few at a time: each is claimed exactly once.
pub async fn concurrent_claimers_take_each_command_once(db: &impl TestDb, n: i64) {
    let store = db.store().await;
    let mut all = HashSet::new();
    for i in 0..n {
        let c = command(ms(-i));
        all.insert(c.id);
        store.schedule(&c).await.unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..2 {
        let store = db.store().await;
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store.claim_due(&format!("w{w}"), t0(), 5, Duration::from_secs(600)).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(ids(&batch));
            }
        }));
    }
    let mut claimed = Vec::new();
    for w in workers {
        claimed.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a command was claimed twice");
    assert_eq!(unique, all, "every due command was claimed");
}
