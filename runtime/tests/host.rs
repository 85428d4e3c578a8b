//! The worker host, messages by name as JSON, read-your-writes and health, on the
//! in-memory stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cqrs_ddd::cqrs::{Payload, SendOptions};
use cqrs_ddd::health::{Status, check_fn};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, StoredEvent, StoredState, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, WorkerOptions};
use cqrs_ddd::{BuildProblem, MessageKind};
use tokio::sync::oneshot;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
enum AccountError {
    #[error("amounts must be below {limit}")]
    TooLarge { limit: u64, asked: u64 },
}

#[aggregate(id = String, events(Deposited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if c.amount >= 1_000_000 {
            return Err(AccountError::TooLarge { limit: 1_000_000, asked: c.amount });
        }
        Ok(vec![Deposited { amount: c.amount }.into()])
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[command(aggregate = Account)]
#[derive(Deserialize)]
struct Deposit {
    #[id]
    account: String,
    amount: u64,
}

#[command(response = u64)]
#[derive(Deserialize)]
struct Double {
    n: u64,
}

#[command_handler]
async fn double(c: Double, _ctx: &mut CommandContext) -> Result<u64> {
    Ok(c.n * 2)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BalanceView {
    balance: u64,
}

struct Balances;

#[projection(name = "host_balances")]
impl Balances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        if e.amount == 13 {
            return Err(Error::handler("thirteen is refused"));
        }
        let amount = e.amount;
        tx.docs("host_balances").update(&e.header.stream_id, |v: &mut BalanceView| v.balance += amount).await?;
        Ok(())
    }
}

#[query(reads = Balances)]
#[derive(Deserialize)]
struct GetBalance {
    account: String,
}

#[query_handler]
async fn get_balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
    let doc = ctx.read_models()?.get("host_balances", &q.account).await?;
    Ok(doc
        .map(|d| serde_json::from_str::<BalanceView>(&d.json).map(|v| v.balance))
        .transpose()
        .map_err(Error::handler)?
        .unwrap_or(0))
}

/// Deposits seen by the async handler.
#[derive(Default)]
struct Seen(AtomicU64);

#[event_handler(async)]
async fn count_deposits(e: &Deposited, seen: Dep<Seen>) -> Result<()> {
    seen.0.fetch_add(e.amount, Ordering::SeqCst);
    Ok(())
}

fn app(seen: &Arc<Seen>) -> Mediator {
    App::builder().provide_arc(seen.clone()).projection(Balances).build().expect("the wiring is complete")
}

/// Starts the host; the sender stops it.
fn start(app: &Mediator) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(app.clone().host().run(async move {
        let _ = stopped.await;
    }));
    (stop, run)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn the_host_runs_what_the_wiring_implies_and_stops_gracefully() {
    let seen = Arc::new(Seen::default());
    let app = app(&seen);
    let mut labels = app.host().labels();
    labels.sort();
    assert_eq!(labels, ["outbox_relay", "projection:host_balances", "scheduler"]);

    let (stop, run) = start(&app);
    let receipt = app
        .send_json("Deposit", Payload::Json(r#"{"account": "a-1", "amount": 40}"#), SendOptions::default())
        .await
        .expect("the deposit goes through");
    assert_eq!(receipt.response, serde_json::Value::Null);
    let position = receipt.position.expect("a deposit commits an event");

    // Read your writes: the projection runs in the host.
    app.wait_for_position("GetBalance", position, Duration::from_secs(10)).await.expect("the read model catches up");
    let balance = app.query_json("GetBalance", Payload::Form("account=a-1"), None).await.expect("the query answers");
    assert_eq!(balance, serde_json::json!(40));
    // The async handler runs through the relay the host started.
    eventually("the async handler", || seen.0.load(Ordering::SeqCst) == 40).await;
    // The relay marks the message published after the handler ran.
    let outbox = app.outbox().expect("the memory store is its own outbox");
    for _ in 0..2_000 {
        if outbox.counts().await.unwrap().pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let report = app.health().await;
    assert!(report.is_ready(), "{report:?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    for expected in ["event_store", "outbox_relay", "projection:host_balances", "scheduler"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let projection = report.checks.iter().find(|c| c.name == "projection:host_balances").unwrap();
    assert_eq!(projection.detail["lag"], 0, "{projection:?}");
    let relay = report.checks.iter().find(|c| c.name == "outbox_relay").unwrap();
    assert_eq!(relay.detail["backlog"], 0, "{relay:?}");

    stop.send(()).unwrap();
    run.await.unwrap().expect("the host stops without an error");
    assert_eq!(app.liveness().status, Status::Up, "stopped workers are still live");
    assert_eq!(app.health().await.status, Status::Down, "stopped workers serve nothing");
}

#[tokio::test]
async fn messages_by_name_answer_json_and_say_what_is_wrong() {
    let seen = Arc::new(Seen::default());
    let app = app(&seen);
    let kinds: Vec<(MessageKind, &str)> = app.messages().iter().map(|m| (m.kind, m.name)).collect();
    assert!(kinds.contains(&(MessageKind::Command, "Deposit")), "{kinds:?}");
    assert!(kinds.contains(&(MessageKind::Query, "GetBalance")), "{kinds:?}");
    let get = app.messages().into_iter().find(|m| m.name == "GetBalance").unwrap();
    assert_eq!(get.reads, ["host_balances"]);

    let doubled = app.send_json("Double", Payload::Json(r#"{"n": 21}"#), SendOptions::default()).await.unwrap();
    assert_eq!((doubled.response, doubled.position), (serde_json::json!(42), None));

    let bad =
        app.send_json("Deposit", Payload::Json(r#"{"account": "a", "amount": "x"}"#), SendOptions::default()).await;
    match bad {
        Err(Error::Decode { path, .. }) => assert_eq!(path.as_deref(), Some("amount")),
        other => panic!("a bad field is a decode error naming it, not {other:?}"),
    }
    let form = app.send_json("Deposit", Payload::Form("account=a"), SendOptions::default()).await;
    assert!(matches!(form, Err(Error::Decode { .. })), "{form:?}");
    let unknown = app.send_json("Withdraw", Payload::Json("{}"), SendOptions::default()).await;
    assert!(matches!(unknown, Err(Error::UnknownMessage { kind: "command", .. })), "{unknown:?}");
    let unknown = app.query_json("Nothing", Payload::Form(""), None).await;
    assert!(matches!(unknown, Err(Error::UnknownMessage { kind: "query", .. })), "{unknown:?}");
    let bad = app.query_json("GetBalance", Payload::Form("acount=a"), None).await;
    assert!(matches!(bad, Err(Error::Decode { .. })), "{bad:?}");

    // A domain error keeps its fields.
    let err = app
        .send_json("Deposit", Payload::Json(r#"{"account": "a", "amount": 2000000}"#), SendOptions::default())
        .await
        .unwrap_err();
    let Error::Domain(domain) = &err else { panic!("{err:?}") };
    assert_eq!(domain.fields(), Some(&serde_json::json!({"TooLarge": {"limit": 1_000_000, "asked": 2_000_000}})));
    assert!(err.domain_error::<AccountError>().is_some());
}

#[tokio::test]
async fn reading_ones_writes_times_out_without_a_worker() {
    let seen = Arc::new(Seen::default());
    let app = app(&seen);
    let receipt = app
        .send_json("Deposit", Payload::Json(r#"{"account": "b", "amount": 1}"#), SendOptions::default())
        .await
        .unwrap();
    let err = app
        .wait_for_position("GetBalance", receipt.position.unwrap(), Duration::from_millis(50))
        .await
        .expect_err("nothing runs the projection");
    assert!(matches!(err, Error::Timeout { .. }) && err.is_transient(), "{err:?}");
    // A position already reached is answered at once.
    app.wait_for_position("GetBalance", Cursor::START, Duration::ZERO).await.unwrap();
    assert_eq!("12".parse::<Cursor>().unwrap(), Cursor { commit: 12, position: 12 });
    assert_eq!("7.12".parse::<Cursor>().unwrap().to_string(), "7.12");
    assert!("x.1".parse::<Cursor>().is_err());
}

#[tokio::test]
async fn a_worker_that_cannot_heal_stops_the_host_with_its_error() {
    let seen = Arc::new(Seen::default());
    let options = WorkerOptions { error_policy: ErrorPolicy::Stop, ..WorkerOptions::default() };
    let app = App::builder().provide_arc(seen.clone()).projection_with(Balances, options).build().unwrap();
    let (_stop, run) = start(&app);
    app.send(Deposit { account: "c".into(), amount: 13 }).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the host stops").unwrap();
    let err = result.expect_err("the projection's error ends the host");
    assert!(err.to_string().contains("thirteen"), "{err}");
    let live = app.liveness();
    assert_eq!(live.status, Status::Down, "{live:?}");
}

#[tokio::test]
async fn a_failing_check_makes_the_application_not_ready() {
    let app = App::builder()
        .provide(Seen::default())
        .health_check(check_fn("mail", || async { Err::<(), _>("connection refused") }))
        .health_check(check_fn("cache", || async { Ok::<(), String>(()) }))
        .build()
        .unwrap();
    let report = app.health().await;
    assert!(!report.is_ready());
    let mail = report.checks.iter().find(|c| c.name == "mail").unwrap();
    assert_eq!((mail.status, mail.detail["error"].as_str()), (Status::Down, Some("connection refused")));
    assert_eq!(report.checks.iter().find(|c| c.name == "cache").unwrap().status, Status::Up);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "down");
}

/// An event store that keeps no outbox and no read models of its own, and lets other
/// tasks run at each read (as a store on a network would).
struct Bare(MemoryStore);

#[async_trait]
impl EventStore for Bare {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.0.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        self.0.read_stream(stream, after_version).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        tokio::task::yield_now().await;
        self.0.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.0.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.0.load_state(stream).await
    }
}

#[test]
fn wiring_that_cannot_run_is_refused_by_build() {
    let Err(err) =
        App::builder().event_store(Bare(MemoryStore::new())).provide(Seen::default()).projection(Balances).build()
    else {
        panic!("nothing relays the async handler, nothing keeps the projection")
    };
    let Error::Build(build) = &err else { panic!("{err:?}") };
    assert!(
        build.problems.iter().any(|p| matches!(p, BuildProblem::AsyncHandlersWithoutOutbox { handlers } if handlers.iter().any(|h| h.contains("count_deposits")))),
        "{err}"
    );
    assert!(
        build.problems.iter().any(|p| matches!(p, BuildProblem::ProjectionsWithoutReadModels { projections } if projections == &["host_balances"])),
        "{err}"
    );
    // Given an outbox and a document store, the same wiring builds.
    App::builder()
        .event_store(Bare(MemoryStore::new()))
        .outbox(MemoryStore::new())
        .read_models(cqrs_ddd::MemoryProjectionStore::new())
        .provide(Seen::default())
        .projection(Balances)
        .build()
        .expect("complete wiring");
}

/// An application whose balances projection runs with `options`.
fn app_projecting(options: WorkerOptions) -> Mediator {
    let events = MemoryStore::new();
    App::builder()
        .event_store(Bare(events.clone()))
        .outbox(events)
        .read_models(cqrs_ddd::MemoryProjectionStore::new())
        .provide(Seen::default())
        .projection_with(Balances, options)
        .build()
        .unwrap()
}

/// A rebuild asked to stop stops after the batch it is told about, with that batch
/// committed; progress counts every event read, and the estimate is the head.
#[tokio::test]
async fn a_rebuild_asked_to_stop_stops_at_a_batch_boundary() {
    let app = app_projecting(WorkerOptions { batch_size: 10, ..WorkerOptions::default() });
    for n in 0..35u64 {
        app.send(Deposit { account: format!("a-{}", n % 5), amount: 1 }).await.unwrap();
    }
    let control = app.projection("host_balances").unwrap();
    let mut seen = Vec::new();
    let stopped = control
        .rebuild(|p| {
            seen.push((p.read, p.total));
            if p.read >= 20 { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
        })
        .await
        .unwrap();
    assert_eq!(seen, [(10, 35), (20, 35)], "told after each batch, against the head");
    assert!(stopped.stopped);
    assert_eq!((stopped.read, stopped.applied), (20, 20));
    assert!((stopped.percent() - 57.142).abs() < 0.01, "{}", stopped.percent());
    let status = control.status().await.unwrap();
    assert_eq!(status.checkpoints[0].map(|c| c.position), Some(20), "the second batch is committed");
    assert_eq!(status.lag, 15);
    let store = app.read_model_store().unwrap();
    let sum = |docs: Vec<cqrs_ddd::ports::Document>| {
        docs.iter().map(|d| serde_json::from_str::<BalanceView>(&d.json).unwrap().balance).sum::<u64>()
    };
    assert_eq!(sum(store.documents("host_balances").await.unwrap()), 20, "the read model is the checkpoint's");
    let rest = control.catch_up(|_| std::ops::ControlFlow::Continue(())).await.unwrap();
    assert_eq!((rest.read, rest.total, rest.stopped), (15, 15, false));
    assert!((rest.percent() - 100.0).abs() < f64::EPSILON);
    assert_eq!(sum(store.documents("host_balances").await.unwrap()), 35);
}

#[tokio::test]
async fn an_operator_rebuilds_a_projection_stopped_midway_and_resumes_it() {
    let app = app_projecting(WorkerOptions {
        batch_size: 10,
        error_policy: ErrorPolicy::RetryThenDeadLetter { attempts: 0, backoff: Duration::ZERO },
        ..WorkerOptions::default()
    });
    for n in 0..60u64 {
        let amount = if n == 25 { 13 } else { 1 };
        app.send(Deposit { account: format!("a-{}", n % 5), amount }).await.unwrap();
    }
    assert_eq!(
        app.projections().iter().map(cqrs_ddd::host::ProjectionControl::name).collect::<Vec<_>>(),
        ["host_balances"]
    );
    assert!(matches!(app.projection("nope"), Err(Error::UnknownMessage { kind: "projection", .. })));
    let control = app.projection("host_balances").unwrap();
    let store = app.read_model_store().unwrap();
    let total = || async {
        let docs = store.documents("host_balances").await.unwrap();
        docs.iter().map(|d| serde_json::from_str::<BalanceView>(&d.json).unwrap().balance).sum::<u64>()
    };

    // Stopped after its second batch, wherever the rebuild is then: what is written
    // matches the checkpoint.
    let (reached, stop) = oneshot::channel::<()>();
    let mut reached = Some(reached);
    let rebuild = control.rebuild(move |progress| {
        if progress.applied >= 20 {
            reached.take().map(|r| r.send(()));
        }
        std::ops::ControlFlow::Continue(())
    });
    tokio::select! {
        done = rebuild => panic!("the rebuild was to be stopped midway: {done:?}"),
        _ = stop => {}
    }
    let status = control.status().await.unwrap();
    let checkpoint = status.checkpoints[0].expect("a checkpoint after two batches");
    let events = app.event_store().read_all(Cursor::START, 1_000).await.unwrap();
    let expected = events.iter().filter(|e| e.cursor() <= checkpoint && !e.payload.contains("13")).count() as u64;
    assert!((19..59).contains(&expected), "stopped midway: {expected}");
    assert_eq!(total().await, expected, "the read model is the checkpoint's");

    // Resumed, it goes on from the checkpoint; the refused event is a dead letter.
    let resumed = control.catch_up(|_| std::ops::ControlFlow::Continue(())).await.unwrap();
    assert!(!resumed.stopped);
    assert_eq!(resumed.read, resumed.total, "finished: all it read");
    assert_eq!(total().await, 59);
    assert_eq!(control.status().await.unwrap().lag, 0);
    let letters = control.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(control.retry_dead_letter(letters[0].event_id).await.is_err(), "still refused");
    control.skip_dead_letter(letters[0].event_id).await.unwrap();
    assert!(control.dead_letters().await.unwrap().is_empty());
    assert!(app.outbox().is_some(), "the outbox given to the builder");
}
