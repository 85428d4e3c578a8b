//! Faults a store must survive: writes and reads cancelled at any await point.

use std::time::Duration;

use chrono::Utc;
use cqrs_ddd::RetryPolicy;
use cqrs_ddd::ports::{
    CommitBatch, Cursor, EventStore, Outbox, OutboxMessage, ProjectionStore, SagaKey, SagaRecord, SagaStatus,
    SagaStore, ScheduleStore, ScheduledCommand, StateWrite, StreamKey,
};
use cqrs_ddd::prelude::*;
use futures::{StreamExt, TryStreamExt};
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
    tx.put_doc(None, "cancel", id, json!({ "id": id }).to_string()).await?;
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

fn one_event(stream: &StreamKey, payload: &str) -> CommitBatch {
    let mut event = super::new_event("Deposited", 1, json!({}));
    payload.clone_into(&mut event.payload);
    CommitBatch {
        appends: vec![cqrs_ddd::ports::StreamAppend {
            stream: stream.clone(),
            expected_version: 0,
            events: vec![event],
        }],
        ..CommitBatch::default()
    }
}

#[track_caller]
fn assert_unstorable<T: std::fmt::Debug>(result: Result<T>, names: &[&str]) {
    match result {
        Err(e @ Error::Unstorable { .. }) => {
            assert!(!e.is_transient(), "a value no backend stores is not worth a retry: {e}");
            let Error::Unstorable { what, .. } = &e else { unreachable!() };
            for name in names {
                assert!(what.contains(name), "`{what}` should name {name}");
            }
        }
        other => panic!("expected Error::Unstorable naming {names:?}, got {other:?}"),
    }
}

/// Every write of `json` into a JSON column: an event, its headers, a state row, an
/// outbox message, a snapshot, a document, a saga instance, a scheduled command. Each
/// must be refused as `Unstorable`, naming what it was.
async fn every_json_column_refuses<D: TestDb>(db: &D, store: &D::Store, json: &str, tag: &str) {
    let stream = StreamKey::new("Account", format!("bad-{tag}"));
    assert_unstorable(store.commit(one_event(&stream, json)).await, &["Deposited", &stream.to_string()]);
    let mut headed = one_event(&stream, "{}");
    headed.appends[0].events[0].metadata.headers.insert("h".into(), "a\0b".into());
    assert_unstorable(store.commit(headed).await, &["Deposited", &stream.to_string()]);

    let state = StateWrite {
        stream: StreamKey::new("Profile", format!("bad-{tag}")),
        expected_version: 0,
        version: 1,
        state: json.to_owned(),
    };
    assert_unstorable(
        store.commit(CommitBatch { states: vec![state], ..CommitBatch::default() }).await,
        &[&format!("Profile/bad-{tag}")],
    );

    let (id, mut outbox) = outbox_batch();
    json.clone_into(&mut outbox.outbox[0].payload);
    assert_unstorable(store.commit(outbox).await, &[&id.to_string(), "cancel"]);

    let snapshot =
        cqrs_ddd::ports::Snapshot { stream: stream.clone(), version: 1, state: json.to_owned(), taken_at: Utc::now() };
    assert_unstorable(cqrs_ddd::ports::SnapshotStore::save(store, snapshot).await, &[&stream.to_string()]);

    let mut tx = store.begin().await.unwrap();
    assert_unstorable(
        tx.put_doc(None, "docs", &format!("bad-{tag}"), json.to_owned()).await,
        &[&format!("docs/bad-{tag}")],
    );
    tx.rollback().await.unwrap();

    let saga = SagaRecord { data: json.to_owned(), ..saga_record(&format!("bad-{tag}")) };
    assert_unstorable(SagaStore::save(store, &saga, 0).await, &[&format!("Cancel/bad-{tag}")]);

    let command = ScheduledCommand { payload: json.to_owned(), ..due_command() };
    assert_unstorable(store.schedule(&command).await, &[&command.id.to_string()]);

    assert_eq!(
        (db.count("events").await, db.count("states").await, db.count("outbox").await, db.count("snapshots").await),
        (0, 0, 0, 0),
        "nothing refused is written"
    );
    assert_eq!((db.count("documents").await, db.count("sagas").await, db.count("scheduled_commands").await), (0, 0, 0));
}

/// JSON with the escape `\u0000` (PostgreSQL's jsonb cannot hold it) or a lone surrogate
/// (jsonb refuses it, serde cannot read it back), and a NUL character in text, are
/// refused by both databases alike, before the write, in every JSON column (events
/// too, so no event that would poison its readers gets in), as a non-transient
/// `Unstorable` naming the refused value. The same text with the backslash escaped is
/// plain JSON and is stored.
pub async fn values_no_backend_stores_are_refused_alike(db: &impl TestDb) {
    let store = db.store().await;
    every_json_column_refuses(db, &store, r#"{"note": "a\u0000b"}"#, "nul").await;
    every_json_column_refuses(db, &store, r#"{"note": "\ud800"}"#, "surrogate").await;

    // Through a command: a string with a NUL character serializes to `\u0000`.
    let app = app(store.clone()).build().unwrap();
    assert_unstorable(app.send(Open { account: "nul".into(), owner: "a\0b".into() }).await, &["Opened", "Account/nul"]);
    assert_eq!(db.count("events").await, 0);
    let err = store.commit(one_event(&StreamKey::new("Account\0x", "1"), "{}")).await.unwrap_err();
    assert!(matches!(err, Error::Unstorable { .. }), "a NUL character in a stream id: {err}");

    // An escaped backslash before `u0000` is a plain string.
    let fine = r#"{"note": "\\u0000 and \ud83d\ude00"}"#;
    let stream = StreamKey::new("Account", "fine");
    store.commit(one_event(&stream, fine)).await.unwrap();
    super::visible(&store, 1).await;
    let all = store.read_all(Cursor::START, 10).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&all[0].payload).unwrap(),
        serde_json::from_str::<serde_json::Value>(fine).unwrap()
    );
    let mut tx = store.begin().await.unwrap();
    tx.put_doc(None, "docs", "fine", fine.to_owned()).await.unwrap();
    tx.commit().await.unwrap();
}

/// Times outside the years 1 to 9999 and schema versions above `i32::MAX` are refused
/// by every backend alike, naming what was refused, and write nothing; the limits
/// themselves are stored and read back.
pub async fn out_of_range_times_and_schema_versions_are_refused_alike(db: &impl TestDb) {
    use chrono::{DateTime, TimeZone};
    let store = db.store().await;
    let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    let early = DateTime::<Utc>::MIN_UTC;
    for (n, t) in [far, early].into_iter().enumerate() {
        let mut batch = one_event(&StreamKey::new("Account", format!("t{n}")), "{}");
        batch.appends[0].events[0].occurred_at = t;
        assert_unstorable(store.commit(batch).await, &["Deposited", "Account/t"]);
        let command = ScheduledCommand {
            id: cqrs_ddd::new_id(),
            command_type: "Deposit".to_owned(),
            payload: "{}".to_owned(),
            due_at: t,
            metadata: cqrs_ddd::Metadata::default(),
            attempts: 0,
            last_error: None,
            created_at: Utc::now(),
        };
        assert_unstorable(store.schedule(&command).await, &["scheduled command"]);
    }
    let mut batch = one_event(&StreamKey::new("Account", "sv"), "{}");
    batch.appends[0].events[0].schema_version = u32::MAX;
    assert_unstorable(store.commit(batch).await, &["Deposited", "Account/sv"]);
    assert_eq!(db.count("events").await, 0);
    assert_eq!(db.count("scheduled_commands").await, 0);

    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
    let mut batch = one_event(&StreamKey::new("Account", "last"), "{}");
    batch.appends[0].events[0].occurred_at = last;
    batch.appends[0].events[0].schema_version = u32::try_from(i32::MAX).unwrap();
    store.commit(batch).await.unwrap();
    super::visible(&store, 1).await;
    let all = store.read_all(Cursor::START, 10).await.unwrap();
    assert_eq!((all[0].occurred_at, all[0].schema_version), (last, u32::try_from(i32::MAX).unwrap()));
}

/// Text that is not JSON is refused by every JSON column of both databases (SQLite by
/// the triggers of migration 5) as a non-transient `Unstorable` naming what it was; the
/// stream it was meant for stays readable.
pub async fn text_that_is_not_json_is_refused_alike(db: &impl TestDb) {
    let store = db.store().await;
    every_json_column_refuses(db, &store, "not json", "text").await;
    let app = app(store.clone()).build().unwrap();
    app.send(Open { account: "a".into(), owner: "x".into() }).await.unwrap();
    let mut deposit = one_event(&StreamKey::new("Account", "a"), "{\"amount\": 1");
    deposit.appends[0].expected_version = 1;
    assert_unstorable(store.commit(deposit).await, &["Deposited", "version 2", "Account/a"]);
    let loaded = app.load::<Account>(&"a".to_owned()).await.unwrap();
    assert_eq!(loaded.version, 1, "the stream stays readable");
}

/// Reads all events after `cursor` until the page holds `n` events or fails, waiting for
/// PostgreSQL's gap-safe horizon to pass commits of tests running alongside.
async fn page_of(store: &impl EventStore, cursor: Cursor, n: usize) -> Result<Vec<cqrs_ddd::ports::StoredEvent>> {
    let started = std::time::Instant::now();
    loop {
        let page = store.read_all(cursor, 100).await;
        match &page {
            Ok(events) if events.len() < n && started.elapsed() < STUCK => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => return page,
        }
    }
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T>, stream: &str, version: i64, reason: &str) {
    match result {
        Err(Error::CorruptRow { stream: s, version: v, reason: r, .. }) => {
            assert_eq!((s.as_str(), v), (stream, version), "{r}");
            assert!(r.contains(reason), "the reason `{r}` should say `{reason}`");
        }
        other => panic!("expected a corrupt row at version {version} of `{stream}`, got {other:?}"),
    }
}

/// Rows no writer of this crate makes are typed errors naming the stream and the version
/// as stored: a gap in a stream's versions, a negative version (never clamped to 0), a
/// negative schema version, headers that are not a JSON object of strings. A reader of
/// all events gets every good event before a bad row, then the bad row's error (which
/// names where it sits); once the row is repaired, it reads on.
pub async fn corrupt_rows_are_named_errors(db: &impl TestDb) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for id in ["a", "n", "b", "h", "c", "s", "g"] {
        app.send(Open { account: id.into(), owner: "x".into() }).await.unwrap();
    }
    for _ in 0..2 {
        app.send(Deposit { account: "g".into(), amount: 1 }).await.unwrap();
    }
    super::visible(&store, 9).await;
    db.exec("UPDATE {t}events SET version = -1 WHERE stream_id = 'n'").await;
    db.exec(r#"UPDATE {t}events SET headers = '{"n": 1}' WHERE stream_id = 'h'"#).await;
    db.exec("UPDATE {t}events SET schema_version = -3 WHERE stream_id = 's'").await;
    db.exec("DELETE FROM {t}events WHERE stream_id = 'g' AND version = 2").await;

    // Loading a stream checks its versions and numbers.
    assert_corrupt(app.load::<Account>(&"g".to_owned()).await, "Account/g", 3, "gap");
    assert_corrupt(app.load::<Account>(&"s".to_owned()).await, "Account/s", 1, "schema version -3");
    assert_corrupt(app.load::<Account>(&"n".to_owned()).await, "Account/n", -1, "version -1 is below 1");
    assert!(!Error::CorruptRow { stream: String::new(), version: 0, reason: String::new(), at: None }.is_transient());

    // Reading all events: the good ones before each bad row, then the bad row's error.
    let first = page_of(&store, Cursor::START, 1).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.stream.stream_id.as_str()).collect::<Vec<_>>(),
        ["a"],
        "the page stops before the bad row"
    );
    let cursor = first[0].cursor();
    assert_corrupt(store.read_all(cursor, 100).await, "Account/n", -1, "position");
    db.exec("DELETE FROM {t}events WHERE stream_id = 'n'").await;

    let page = page_of(&store, cursor, 1).await.unwrap();
    assert_eq!(page.iter().map(|e| e.stream.stream_id.as_str()).collect::<Vec<_>>(), ["b"]);
    let cursor = page[0].cursor();
    assert_corrupt(store.read_all(cursor, 100).await, "Account/h", 1, "headers");
    db.exec("UPDATE {t}events SET headers = NULL WHERE stream_id = 'h'").await;

    let page = page_of(&store, cursor, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.stream.stream_id.as_str()).collect::<Vec<_>>(), ["h", "c"]);
    assert_corrupt(store.read_all(page[1].cursor(), 100).await, "Account/s", 1, "schema version");
}

/// A row the store cannot decode goes through the projection's error policy: `Stop`
/// ends with the row's `CorruptRow` (naming where it sits) after applying every good
/// event before it; `Skip` moves past it and applies what follows; a rebuild under
/// `RetryThenDeadLetter` leaves a dead letter naming it.
pub async fn corrupt_rows_go_through_the_projection_error_policy(db: &impl TestDb) {
    use std::sync::Arc;

    use cqrs_ddd::projection::{ErrorPolicy, ProjectionWorker, WorkerOptions};

    use super::projections::Balances;
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for id in ["a", "bad", "c"] {
        app.send(Open { account: id.into(), owner: "x".into() }).await.unwrap();
    }
    super::visible(&store, 3).await;
    db.exec(r#"UPDATE {t}events SET headers = '{"n": 1}' WHERE stream_id = 'bad'"#).await;
    let worker = |policy| {
        ProjectionWorker::new(Balances, Arc::new(store.clone()), Arc::new(store.clone()))
            .with_options(WorkerOptions { error_policy: policy, ..WorkerOptions::default() })
    };
    let doc = |id: &'static str| {
        let store = store.clone();
        async move { store.document("balances", id).await.unwrap().is_some() }
    };

    let err = worker(ErrorPolicy::Stop).catch_up().await.unwrap_err();
    assert!(
        matches!(&err, Error::CorruptRow { stream, at: Some(_), .. } if stream == "Account/bad"),
        "stop names the row: {err:?}"
    );
    assert!(doc("a").await && !doc("c").await, "the events before the row are applied, none after");

    assert_eq!(worker(ErrorPolicy::Skip).catch_up().await.unwrap(), 1, "skip passes the row and applies `c`");
    assert!(doc("c").await);

    let dead_lettering = worker(ErrorPolicy::RetryThenDeadLetter { attempts: 0, backoff: Duration::ZERO });
    assert_eq!(dead_lettering.rebuild(|_| {}).await.unwrap(), 2);
    let letters = store.dead_letters("balances").await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].event_type.as_str(), letters[0].stream.stream_id.as_str()),
        ("(corrupt row)", "Account/bad")
    );
    assert!(letters[0].error.contains("header"), "{}", letters[0].error);
    assert!(doc("a").await && doc("c").await);
}

/// Reads cut short: streams dropped after their first row and loads dropped at random
/// await points leave no connection the store keeps for its next statement in the middle
/// of one. Afterwards each read returns the whole stream, many times over, so every
/// connection kept serves some of them.
pub async fn cancelled_reads_leave_every_path_working(db: &impl TestDb) {
    let store = db.store().await;
    let stream = StreamKey::new("Account", "reads");
    let events = (0..60).map(|i| super::new_event("Deposited", 1, json!({ "amount": i }))).collect();
    super::append(&store, &stream, events).await;
    for _ in 0..50 {
        // A stream dropped after one row, with the rest of its rows still on the wire.
        let mut rows = store.read_stream(&stream, 0).await.unwrap();
        assert_eq!(rows.next().await.unwrap().unwrap().version, 1);
        drop(rows);
        // Reads dropped wherever their budget ends.
        let _ = tokio::time::timeout(random_budget(), async {
            store.read_stream(&stream, 0).await?.try_collect::<Vec<_>>().await
        })
        .await;
        let _ = tokio::time::timeout(random_budget(), store.stream_version(&stream)).await;
        let _ = tokio::time::timeout(random_budget(), store.read_all(Cursor::START, 100)).await;
    }
    for _ in 0..40 {
        let read =
            bounded("reading the stream", async { store.read_stream(&stream, 0).await?.try_collect::<Vec<_>>().await })
                .await;
        assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=60).collect::<Vec<u64>>());
        assert_eq!(bounded("the stream's version", store.stream_version(&stream)).await, 60);
        assert_eq!(bounded("reading all", store.read_all(Cursor::START, 100)).await.len(), 60);
    }
}
