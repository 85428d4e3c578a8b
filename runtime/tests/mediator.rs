//! Behaviour of the mediator, the unit of work, middleware and the request context.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::middleware::{Validate, ValidationMiddleware};
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, NewEvent, StoredEvent, StoredState, StreamAppend,
    StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{
    AppBuilder, BuildProblem, DynCommandHandler, Message, Middleware, Next, Reply, RequestContext, RetryPolicy,
};
use futures::future::BoxFuture;
use parking_lot::Mutex;

/// Services every app of this test binary provides (handlers here ask for them).
#[derive(Default)]
struct HookLog(Mutex<Vec<u32>>);
#[derive(Default)]
struct Seen(Mutex<Vec<(String, u64, u64, Metadata)>>);
struct Gate(tokio::sync::Barrier);

fn app_with(store: impl EventStore) -> (AppBuilder, Arc<HookLog>, Arc<Seen>) {
    let log = Arc::new(HookLog::default());
    let seen = Arc::new(Seen::default());
    let b = App::builder()
        .event_store(store)
        .provide_arc(log.clone())
        .provide_arc(seen.clone())
        .provide(Gate(tokio::sync::Barrier::new(2)));
    (b, log, seen)
}

#[event_handler]
async fn record_deposit(e: &Envelope<Deposited>, seen: Dep<Seen>) -> Result<()> {
    let h = &e.header;
    seen.0.lock().push((h.stream_id.clone(), h.version, h.position, h.metadata.clone()));
    Ok(())
}

#[command]
#[derive(Debug, Clone)]
struct Transfer {
    from: AccountId,
    to: AccountId,
    amount: u64,
    fail: bool,
}

#[command_handler]
async fn transfer(cmd: Transfer, ctx: &mut CommandContext, log: Dep<HookLog>) -> Result<()> {
    ctx.send(Withdraw { account: cmd.from.clone(), amount: cmd.amount }).await?;
    // Through the mediator rather than the context: it must join the same unit of work.
    let mediator = ctx.mediator().clone();
    mediator.send(Deposit { account: cmd.to.clone(), amount: cmd.amount }).await?;
    ctx.outbox("transfers", &cmd.amount)?;
    for i in 0..3 {
        let log = log.clone();
        ctx.after_commit(async move { log.0.lock().push(i) })?;
    }
    if cmd.fail {
        return Err(Error::handler("transfer refused after staging"));
    }
    Ok(())
}

#[command]
struct DepositAfterGate {
    account: AccountId,
}

#[command_handler]
async fn deposit_after_gate(cmd: DepositAfterGate, ctx: &mut CommandContext, gate: Dep<Gate>) -> Result<()> {
    ctx.send(Deposit { account: cmd.account, amount: 1 }).await?;
    gate.0.wait().await;
    Ok(())
}

/// Counts commits, to see how many transactions a command took.
#[derive(Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    commits: Arc<AtomicUsize>,
}

#[async_trait]
impl EventStore for CountingStore {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after: u64) -> Result<EventStream<'static>> {
        self.inner.read_stream(stream, after).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.inner.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.inner.load_state(stream).await
    }
}

async fn open(app: &Mediator, id: &str, amount: u64) {
    app.send(Open { account: id.into(), owner: id.into() }).await.unwrap();
    if amount > 0 {
        app.send(Deposit { account: id.into(), amount }).await.unwrap();
    }
}

async fn balance_of(app: &Mediator, id: &str) -> u64 {
    app.query(GetBalance { account: id.into() }).await.unwrap()
}

struct Recorder {
    priority: i32,
    log: Arc<Mutex<Vec<String>>>,
}

impl Middleware for Recorder {
    fn priority(&self) -> i32 {
        self.priority
    }
    fn handle<'a>(&'a self, msg: Message, next: Next<'a>) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            self.log.lock().push(format!("before {}", self.priority));
            let r = next.run(msg).await;
            self.log.lock().push(format!("after {}", self.priority));
            r
        })
    }
}

#[tokio::test]
async fn pipeline_runs_lower_priority_outer() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut b = app_with(MemoryStore::new()).0;
    for priority in [10, 0, 5] {
        b = b.middleware(Recorder { priority, log: log.clone() });
    }
    let app = b.build().unwrap();
    app.send(Open { account: "a".into(), owner: "x".into() }).await.unwrap();
    assert_eq!(*log.lock(), ["before 0", "before 5", "before 10", "after 10", "after 5", "after 0"]);
}

#[command(response = u32)]
struct Ping;

struct PingHandler;
impl DynCommandHandler<Ping> for PingHandler {
    fn handle<'a>(&'a self, _: Ping, _: &'a mut CommandContext) -> BoxFuture<'a, Result<u32>> {
        Box::pin(async { Ok(7) })
    }
}

struct OtherPingHandler;
impl DynCommandHandler<Ping> for OtherPingHandler {
    fn handle<'a>(&'a self, _: Ping, _: &'a mut CommandContext) -> BoxFuture<'a, Result<u32>> {
        Box::pin(async { Ok(8) })
    }
}

struct DepositByHand;
impl DynCommandHandler<Deposit> for DepositByHand {
    fn handle<'a>(&'a self, _: Deposit, _: &'a mut CommandContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn registering_the_same_handler_twice_is_harmless() {
    let app = app_with(MemoryStore::new()).0.command_handler(PingHandler).command_handler(PingHandler).build().unwrap();
    assert_eq!(app.dispatch(Ping).await.unwrap(), 7);
}

#[tokio::test]
async fn a_different_second_handler_for_one_command_is_an_error() {
    let err = app_with(MemoryStore::new())
        .0
        .command_handler(PingHandler)
        .command_handler(OtherPingHandler)
        .command_handler(DepositByHand)
        .build()
        .err()
        .expect("two handlers must not build");
    let Error::Build(b) = err else { panic!("expected a build error, got {err}") };
    assert_eq!(b.problems.len(), 2, "{b}");
    assert!(
        matches!(&b.problems[0], BuildProblem::DuplicateCommandHandler { command: "Ping", first_by_macro: false, .. }),
        "{b}"
    );
    assert!(
        matches!(
            &b.problems[1],
            BuildProblem::DuplicateCommandHandler { command: "Deposit", second, first_by_macro: true, .. }
                if second.ends_with("DepositByHand")
        ),
        "{b}"
    );
    assert!(b.problems[0].to_string().contains("`Ping` has two handlers"), "{b}");
}

#[tokio::test]
async fn dispatch_without_handler_is_a_typed_error() {
    let app = app_with(MemoryStore::new()).0.build().unwrap();
    assert!(matches!(app.dispatch(Ping).await, Err(Error::NoHandler { name: "Ping", .. })));
}

#[tokio::test]
async fn failing_handler_rolls_back_and_runs_no_hook() {
    let store = MemoryStore::new();
    let (b, log, seen) = app_with(store.clone());
    let app = b.build().unwrap();
    open(&app, "a", 100).await;
    open(&app, "b", 100).await;
    let events_before = store.event_count();
    seen.0.lock().clear();

    let err = app.send(Transfer { from: "a".into(), to: "b".into(), amount: 30, fail: true }).await.unwrap_err();
    assert!(matches!(err, Error::Handler(_)), "{err}");
    assert_eq!(store.event_count(), events_before, "no event of the failed transfer is stored");
    assert!(store.outbox_records().is_empty(), "no outbox row of the failed transfer");
    assert!(log.0.lock().is_empty(), "after-commit hooks must not run on rollback");
    assert!(seen.0.lock().is_empty(), "event handlers must not run on rollback");
    assert_eq!((balance_of(&app, "a").await, balance_of(&app, "b").await), (100, 100));
}

#[tokio::test]
async fn successful_command_runs_hooks_once_in_order() {
    let (b, log, _) = app_with(MemoryStore::new());
    let app = b.build().unwrap();
    open(&app, "a", 100).await;
    open(&app, "b", 0).await;
    app.send(Transfer { from: "a".into(), to: "b".into(), amount: 30, fail: false }).await.unwrap();
    assert_eq!(*log.0.lock(), [0, 1, 2]);
    assert_eq!((balance_of(&app, "a").await, balance_of(&app, "b").await), (70, 30));
}

#[tokio::test]
async fn nested_send_commits_with_its_parent() {
    let store = CountingStore::default();
    let app = app_with(store.clone()).0.build().unwrap();
    open(&app, "a", 100).await;
    open(&app, "b", 0).await;
    let commits = store.commits.load(Ordering::SeqCst);
    let events = store.inner.event_count();
    app.send(Transfer { from: "a".into(), to: "b".into(), amount: 30, fail: false }).await.unwrap();
    assert_eq!(store.commits.load(Ordering::SeqCst), commits + 1, "one commit for the root and both nested commands");
    assert_eq!(store.inner.event_count(), events + 2);
    assert_eq!(store.inner.outbox_records().len(), 1, "the outbox row commits with the events");
}

#[tokio::test]
async fn independent_root_commands_get_distinct_correlation_ids() {
    let store = MemoryStore::new();
    let app = app_with(store.clone()).0.build().unwrap();
    for id in ["a", "b", "c"] {
        app.send(Open { account: id.into(), owner: id.into() }).await.unwrap();
    }
    let events = store.read_all(Cursor::START, 10).await.unwrap();
    let mut ids: Vec<_> = events.iter().map(|e| e.metadata.correlation_id.unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for e in &events {
        let causation = e.metadata.causation_id.expect("events carry the id of their command");
        assert_ne!(Some(causation), e.metadata.correlation_id);
    }
}

#[tokio::test]
async fn correlation_comes_from_metadata_then_context_and_never_leaks() {
    let store = MemoryStore::new();
    let (b, _, seen) = app_with(store.clone());
    let app = b.build().unwrap();
    let given = cqrs_ddd::new_id();
    let meta = Metadata { correlation_id: Some(given), principal: Some("ann".into()), ..Metadata::default() };
    app.send_with(Open { account: "a".into(), owner: "x".into() }, Some(meta)).await.unwrap();
    app.send(Open { account: "b".into(), owner: "x".into() }).await.unwrap();
    let ctx = RequestContext::new().with_tenant("t1");
    let scoped = ctx.correlation_id;
    ctx.scope(async { app.send(Open { account: "c".into(), owner: "x".into() }).await.unwrap() }).await;

    let events = store.read_all(Cursor::START, 10).await.unwrap();
    assert_eq!(events[0].metadata.correlation_id, Some(given));
    assert_eq!(events[0].metadata.principal.as_deref(), Some("ann"));
    assert_ne!(events[1].metadata.correlation_id, Some(given), "the next root call gets its own id");
    assert_eq!(events[1].metadata.principal, None);
    assert_eq!(events[2].metadata.correlation_id, Some(scoped));
    assert_eq!(events[2].stream.tenant_id.as_deref(), Some("t1"));
    assert!(seen.0.lock().is_empty());
}

#[tokio::test]
async fn nested_commands_share_the_root_correlation_id() {
    let store = MemoryStore::new();
    let app = app_with(store.clone()).0.build().unwrap();
    open(&app, "a", 100).await;
    open(&app, "b", 0).await;
    let before = store.event_count() as u64;
    let before = Cursor { commit: before, position: before };
    app.send(Transfer { from: "a".into(), to: "b".into(), amount: 1, fail: false }).await.unwrap();
    let events = store.read_all(before, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].metadata.correlation_id, events[1].metadata.correlation_id);
    assert_ne!(
        events[0].metadata.causation_id, events[1].metadata.causation_id,
        "each nested command is its own cause"
    );
}

#[tokio::test]
async fn event_handlers_see_committed_envelopes() {
    let (b, _, seen) = app_with(MemoryStore::new());
    let app = b.build().unwrap();
    open(&app, "a", 5).await;
    app.send(Deposit { account: "a".into(), amount: 6 }).await.unwrap();
    let seen = seen.0.lock();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0.as_str(), seen[0].1, seen[0].2), ("a", 2, 2));
    assert_eq!((seen[1].1, seen[1].2), (3, 3));
    assert!(seen[1].3.correlation_id.is_some());
}

#[tokio::test]
async fn loading_an_aggregate_with_no_events_is_not_found() {
    let app = app_with(MemoryStore::new()).0.build().unwrap();
    let err = app.load::<Account>(&"nobody".to_owned()).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { stream } if stream == "Account/nobody"), "{err}");
    let err = app.send(Deposit { account: "nobody".into(), amount: 1 }).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn creating_twice_is_already_exists() {
    let app = app_with(MemoryStore::new()).0.build().unwrap();
    open(&app, "a", 0).await;
    let err = app.send(Open { account: "a".into(), owner: "again".into() }).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { version: 1, .. }), "{err}");
}

#[tokio::test]
async fn domain_errors_keep_their_type() {
    let app = app_with(MemoryStore::new()).0.build().unwrap();
    open(&app, "a", 10).await;
    let err = app.send(Withdraw { account: "a".into(), amount: 11 }).await.unwrap_err();
    assert_eq!(err.domain_error::<AccountError>(), Some(&AccountError::InsufficientFunds { balance: 10, asked: 11 }));
    assert_eq!(balance_of(&app, "a").await, 10);
}

#[tokio::test]
async fn two_writers_at_the_same_version_exactly_one_wins() {
    let store = MemoryStore::new();
    let app = app_with(store.clone()).0.build().unwrap();
    open(&app, "a", 0).await;
    // Both commands load version 1, stage a deposit, then wait for each other before
    // committing: exactly one commit can win.
    let (r1, r2) = tokio::join!(
        app.send(DepositAfterGate { account: "a".into() }),
        app.send(DepositAfterGate { account: "a".into() })
    );
    let results = [r1, r2];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let err = results.into_iter().find_map(Result::err).unwrap();
    assert!(matches!(&err, Error::Conflict { stream, expected: 1, actual: 2 } if stream == "Account/a"), "{err}");
    assert_eq!(balance_of(&app, "a").await, 1);
}

#[tokio::test]
async fn store_level_concurrent_appends_at_one_version_conflict() {
    let store = MemoryStore::new();
    let key = StreamKey::new("Account", "x");
    let batch = |amount: u64| CommitBatch {
        appends: vec![StreamAppend {
            stream: key.clone(),
            expected_version: 0,
            events: vec![raw_event("Deposited", &format!("{{\"amount\":{amount}}}"))],
        }],
        ..CommitBatch::default()
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, b) = (store.clone(), batch(i));
        tasks.push(tokio::spawn(async move { s.commit(b).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { expected: 0, actual: 1, .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.stream_version(&key).await.unwrap(), 1);
}

fn raw_event(event_type: &'static str, payload: &str) -> NewEvent {
    NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type,
        schema_version: 1,
        payload: payload.to_owned(),
        metadata: Metadata::default(),
        occurred_at: chrono::Utc::now(),
    }
}

async fn append_raw(store: &MemoryStore, id: &str, events: Vec<NewEvent>) {
    let stream = StreamKey::new("Account", id);
    let expected_version = store.stream_version(&stream).await.unwrap();
    store
        .commit(CommitBatch {
            appends: vec![StreamAppend { stream, expected_version, events }],
            ..CommitBatch::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_event_type_is_an_error_naming_stream_and_version() {
    let store = MemoryStore::new();
    append_raw(&store, "a", vec![raw_event("Opened", r#"{"owner":"x"}"#), raw_event("Mystery", "{}")]).await;
    let app = app_with(store).0.build().unwrap();
    let err = app.load::<Account>(&"a".to_owned()).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownEventType { stream, version: 2, event_type } if stream == "Account/a" && event_type == "Mystery"),
        "{err}"
    );
}

#[tokio::test]
async fn corrupted_payload_is_a_serialization_error() {
    let store = MemoryStore::new();
    append_raw(
        &store,
        "a",
        vec![raw_event("Opened", r#"{"owner":"x"}"#), raw_event("Deposited", r#"{"amount":"lots"}"#)],
    )
    .await;
    let app = app_with(store).0.build().unwrap();
    let err = app.send(Deposit { account: "a".into(), amount: 1 }).await.unwrap_err();
    assert!(
        matches!(&err, Error::Serialization { stream, version: 2, event_type, .. } if stream == "Account/a" && event_type == "Deposited"),
        "{err}"
    );
}

impl Validate for Deposit {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.amount == 0 { Err("amount must be positive".into()) } else { Ok(()) }
    }
}

#[tokio::test]
async fn validation_middleware_rejects_before_the_handler() {
    let store = MemoryStore::new();
    let app = app_with(store.clone()).0.middleware(ValidationMiddleware::new().rule::<Deposit>()).build().unwrap();
    open(&app, "a", 0).await;
    let err = app.send(Deposit { account: "a".into(), amount: 0 }).await.unwrap_err();
    assert!(matches!(err, Error::Validation { message: "Deposit", .. }), "{err}");
    assert_eq!(store.event_count(), 1);
}

#[tokio::test]
async fn tenants_have_separate_streams() {
    let app = app_with(MemoryStore::new()).0.build().unwrap();
    for tenant in ["t1", "t2"] {
        RequestContext::new().with_tenant(tenant).scope(async { open(&app, "same-id", 5).await }).await;
    }
    let err = app.load::<Account>(&"same-id".to_owned()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "no tenant sees neither stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deposits_with_retry_lose_no_update() {
    let store = MemoryStore::new();
    let app = app_with(store.clone()).0.retry_on_conflict(RetryPolicy::retries(1000)).build().unwrap();
    open(&app, "hot", 0).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                app.send(Deposit { account: "hot".into(), amount: 1 }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = app.load::<Account>(&"hot".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance), (801, 800));
}
