//! `GET /metrics` serves what the framework records: commands that succeed, are rejected
//! or conflict, a projection, the outbox relay with a message that dies, a saga, the
//! scheduler, a stale snapshot; each metric found by the name `cqrs_ddd::metrics` gives
//! it, with plausible values.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cqrs_ddd::memory::{MemorySagaStore, MemoryScheduleStore};
use cqrs_ddd::metrics as m;
use cqrs_ddd::ports::{Cursor, EventStore, Snapshot, SnapshotStore, StreamKey};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, WorkerOptions};
use cqrs_ddd::{
    MemoryProjectionStore, MemorySnapshotStore, MemoryStore, MetricsMiddleware, OutboxRelay, ProjectionWorker,
    RelayOptions, SnapshotPolicy,
};
use cqrs_ddd_axum::metrics::{CONTENT_TYPE, PrometheusMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    account: String,
    amount: u64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flagged {
    account: String,
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("amounts must be positive")]
    Zero,
}

#[aggregate(id = String, events(Deposited, Flagged), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if c.amount == 0 {
            return Err(AccountError::Zero);
        }
        Ok(vec![Deposited { account: c.account.clone(), amount: c.amount }.into()])
    }
    #[handle(create_if_missing)]
    fn flag(&self, c: &Flag) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Flagged { account: c.account.clone() }.into()])
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
    #[apply]
    fn flagged(&mut self, _: &Flagged) {}
}

#[command(aggregate = Account)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposit {
    #[id]
    account: String,
    amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flag {
    #[id]
    account: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counted {}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Counted), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {}

#[aggregate]
impl Ledger {
    #[handle(create_if_missing)]
    fn count(&self, _: &Count) -> Result<Vec<LedgerEvent>, Never> {
        Ok(vec![Counted {}.into()])
    }
    #[apply]
    fn counted(&mut self, _: &Counted) {}
}

#[command(aggregate = Ledger)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Count {
    #[id]
    ledger: String,
}

/// Another process on the same store (no middleware), reached from inside a handler.
#[derive(Default)]
struct OtherProcess(OnceLock<Mediator>);

/// Deposits on an account while another process deposits on it too: the commit conflicts.
#[command]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Race {
    account: String,
}

#[command_handler]
async fn race(cmd: Race, ctx: &mut CommandContext, other: Dep<OtherProcess>) -> Result<()> {
    ctx.send(Deposit { account: cmd.account.clone(), amount: 1 }).await?;
    let other = other.0.get().expect("set before any command").clone();
    // A task of its own: outside this command's unit of work.
    tokio::spawn(async move { other.send(Deposit { account: cmd.account, amount: 1 }).await })
        .await
        .map_err(Error::handler)??;
    Ok(())
}

/// Fails after the commit for one amount (the command stays committed).
#[event_handler]
async fn audit(e: &Envelope<Deposited>) -> Result<()> {
    if e.amount == 13 { Err(Error::handler("thirteen is unlucky")) } else { Ok(()) }
}

/// Counts every deposit in a ledger of its own, through the outbox.
#[event_handler(async)]
async fn tally(_e: &Envelope<Deposited>, ctx: &EventContext) -> Result<()> {
    ctx.send(Count { ledger: "tally".into() }).await
}

/// Never gets through: its message dies.
#[event_handler(async)]
async fn notify(_e: &Envelope<Flagged>) -> Result<()> {
    Err(Error::handler("the mail server is down"))
}

#[saga(name = "keeper", associate = account)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Keeper {}

#[saga]
impl Keeper {
    #[step(start, send = Count)]
    fn deposited(&mut self, _e: &Deposited) -> Count {
        Count { ledger: "sagas".into() }
    }
}

struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        if e.amount == 13 {
            return Err(Error::handler("the projection cannot count to thirteen"));
        }
        let amount = e.amount;
        tx.docs("totals").update(&e.header.stream_id, |t: &mut u64| *t += amount).await?;
        Ok(())
    }
}

/// The value of the sample `name{labels}` (labels in the exporter's order), if served.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET path` over a real connection: the status line, the headers and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A small count as a sample's value.
fn count(n: impl TryInto<u32, Error: std::fmt::Debug>) -> f64 {
    f64::from(n.try_into().unwrap())
}

async fn account_events(store: &MemoryStore) -> usize {
    let all = store.read_all(Cursor::START, 10_000).await.unwrap();
    all.iter().filter(|e| e.stream.stream_type == "Account").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_route_serves_every_metric_the_application_triggered() {
    let metrics = PrometheusMetrics::install().unwrap();
    assert!(PrometheusMetrics::install().is_ok(), "installing again hands back the same recorder");

    let store = MemoryStore::new();
    let snapshots = MemorySnapshotStore::new();
    let other = Arc::new(OtherProcess::default());
    let app = App::builder()
        .event_store(store.clone())
        .snapshot_store(snapshots.clone())
        .snapshot::<Account>(SnapshotPolicy::every(1000))
        .saga_store(MemorySagaStore::new())
        .schedule_store(MemoryScheduleStore::new())
        .middleware(MetricsMiddleware)
        .provide_arc(other.clone())
        .build()
        .unwrap();
    let other_app = App::builder()
        .event_store(store.clone())
        .saga_store(MemorySagaStore::new())
        .schedule_store(MemoryScheduleStore::new())
        .provide_arc(other.clone())
        .build()
        .unwrap();
    assert!(other.0.set(other_app).is_ok());

    // Commands: four deposits, one rejected, one that conflicts, one flag.
    for amount in [5, 7, 13, 20] {
        app.send(Deposit { account: "a".into(), amount }).await.unwrap();
    }
    let rejected = app.send(Deposit { account: "a".into(), amount: 0 }).await.unwrap_err();
    assert!(rejected.domain_error::<AccountError>().is_some(), "{rejected}");
    let conflict = app.send(Race { account: "a".into() }).await.unwrap_err();
    assert!(conflict.is_conflict(), "{conflict}");
    app.send(Flag { account: "a".into() }).await.unwrap();

    // The scheduler sends one more deposit.
    app.schedule(&Deposit { account: "b".into(), amount: 3 }, chrono::Utc::now()).await.unwrap();
    let scheduled = cqrs_ddd::scheduling::Scheduler::new(app.clone()).run_once().await.unwrap();
    assert_eq!(scheduled.sent, 1);

    // A snapshot that no longer fits the aggregate.
    let stale = Snapshot {
        stream: StreamKey::new("Account", "a"),
        version: 1,
        state: "[\"not an account\"]".into(),
        taken_at: chrono::Utc::now(),
    };
    snapshots.save(stale).await.unwrap();
    assert_eq!(app.load::<Account>(&"a".to_owned()).await.unwrap().state.balance, 5 + 7 + 13 + 20 + 1);

    // A projection that skips the event it fails on.
    let read_models = MemoryProjectionStore::new();
    let worker = ProjectionWorker::new(Totals, Arc::new(store.clone()), Arc::new(read_models))
        .with_options(WorkerOptions { error_policy: ErrorPolicy::Skip, ..WorkerOptions::default() });
    let applied = worker.catch_up().await.unwrap();
    assert_eq!(worker.lag().await.unwrap(), 0);

    // The relay, in process: the async handler and the saga on every deposit, the flag's
    // message dead after its second attempt; idle, it watches the read horizon.
    let options = RelayOptions {
        max_attempts: 2,
        base_backoff: Duration::from_millis(1),
        poll_interval: Duration::from_millis(10),
        ..RelayOptions::default()
    };
    let relay = Arc::new(
        OutboxRelay::for_app(Arc::new(store.clone()), &app)
            .with_options(options)
            .watch_read_horizon(Arc::new(store.clone())),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let relay = relay.clone();
        async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    for _ in 0..500 {
        let served = metrics.render();
        if sample(&served, m::OUTBOX_DEAD_TOTAL) == Some(1.0) && served.contains(m::READ_HORIZON_HELD_SECONDS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    // A message delivered again changes nothing.
    let deposited = store.outbox_records().into_iter().find(|r| r.message.topic == "Deposited").unwrap();
    app.deliver(&deposited.message).await.unwrap();

    // Served over HTTP, as Prometheus scrapes it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, metrics.routes::<()>()).await });
    let (status, headers, body) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(headers.get("content-type").map(String::as_str), Some(CONTENT_TYPE));

    let triggered = [
        m::MESSAGES_TOTAL,
        m::MESSAGE_SECONDS,
        m::EVENTS_APPENDED_TOTAL,
        m::CONFLICTS_TOTAL,
        m::EVENT_HANDLER_FAILURES_TOTAL,
        m::ASYNC_HANDLER_FAILURES_TOTAL,
        m::REDELIVERIES_IGNORED_TOTAL,
        m::STALE_SNAPSHOTS_TOTAL,
        m::PROJECTION_LAG,
        m::PROJECTION_EVENTS_APPLIED_TOTAL,
        m::PROJECTION_FAILURES_TOTAL,
        m::OUTBOX_PUBLISHED_TOTAL,
        m::OUTBOX_FAILED_TOTAL,
        m::OUTBOX_DEAD_TOTAL,
        m::OUTBOX_PUBLISH_SECONDS,
        m::OUTBOX_BACKLOG,
        m::SAGA_TRANSITIONS_TOTAL,
        m::SCHEDULED_SENT_TOTAL,
        m::READ_HORIZON_HELD_SECONDS,
    ];
    let missing: Vec<&str> = triggered.iter().copied().filter(|name| !body.contains(&format!("\n{name}"))).collect();
    assert!(missing.is_empty(), "not served: {missing:?}\n{body}");
    for name in triggered {
        assert!(body.contains(&format!("# HELP {name} ")), "{name} was not described");
    }

    // Plausible values. Deposit: four sent, the scheduled one and the one nested in the
    // race went through; one was rejected. The race itself conflicted.
    let deposits = |outcome: &str| {
        sample(&body, &format!("{}{{kind=\"command\",name=\"Deposit\",outcome=\"{outcome}\"}}", m::MESSAGES_TOTAL))
    };
    assert_eq!(deposits("ok"), Some(6.0), "{body}");
    assert_eq!(deposits("rejected"), Some(1.0), "{body}");
    let races = format!("{}{{kind=\"command\",name=\"Race\",outcome=\"conflict\"}}", m::MESSAGES_TOTAL);
    assert_eq!(sample(&body, &races), Some(1.0), "{body}");
    let timed = format!("{}_count{{kind=\"command\",name=\"Deposit\"}}", m::MESSAGE_SECONDS);
    assert_eq!(sample(&body, &timed), Some(7.0), "{body}");
    let fastest = format!("{}_bucket{{kind=\"command\",name=\"Deposit\",le=\"0.0005\"}}", m::MESSAGE_SECONDS);
    assert!(sample(&body, &fastest).is_some(), "the histogram has the framework's buckets\n{body}");
    // Every Account event the store holds was counted once, and nothing else.
    let appended = format!("{}{{stream_type=\"Account\"}}", m::EVENTS_APPENDED_TOTAL);
    assert_eq!(sample(&body, &appended), Some(count(account_events(&store).await)), "{body}");
    assert_eq!(sample(&body, &format!("{}{{stream_type=\"Account\"}}", m::CONFLICTS_TOTAL)), Some(1.0));
    let projected = format!("{}{{projection=\"totals\"}}", m::PROJECTION_EVENTS_APPLIED_TOTAL);
    assert_eq!(sample(&body, &projected), Some(count(applied)), "{body}");
    assert_eq!(applied, 5, "every deposit but the thirteen");
    assert_eq!(sample(&body, &format!("{}{{projection=\"totals\"}}", m::PROJECTION_FAILURES_TOTAL)), Some(1.0));
    assert_eq!(sample(&body, m::OUTBOX_DEAD_TOTAL), Some(1.0), "the flag's message");
    assert_eq!(sample(&body, m::OUTBOX_FAILED_TOTAL), Some(1.0), "its first attempt");
    // One message per deposit committed (the tally and the saga share it): the four, the
    // other process's and the scheduled one; the flag's never went.
    assert_eq!(sample(&body, m::OUTBOX_PUBLISHED_TOTAL), Some(6.0), "{body}");
    let started = format!("{}{{saga=\"keeper\",state=\"running\"}}", m::SAGA_TRANSITIONS_TOTAL);
    assert_eq!(sample(&body, &started), Some(2.0), "an instance per account\n{body}");
}
