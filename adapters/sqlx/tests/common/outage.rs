//! Workers ride out an outage of the database: their stores connect through a TCP
//! proxy that cuts every connection mid-run and later lets traffic through again.

use std::net::SocketAddr;
use std::time::Duration;

use cqrs_ddd::ports::async_trait;

use super::domain::{Deposit, Open};
use super::projections::{Announce, Balance, Balances, Flaky, balance};
use super::saga_engine::{Journal, Reserve};
use super::{TestDb, app, eventually};
use cqrs_ddd::memory::MemoryProjectionStore;
use cqrs_ddd::outbox::{OutboxRelay, RelayOptions};
use cqrs_ddd::ports::{Outbox, ProjectionStore};
use cqrs_ddd::projection::{ProjectionWorker, WorkerOptions};
use cqrs_ddd::saga::SagaRecovery;
use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions};
use cqrs_ddd::testing::TcpProxy as Proxy;
use cqrs_ddd::{Backoff, WorkerHealth, WorkerState};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A database reached over the network, so a proxy can stand in front of it.
#[async_trait]
pub trait Proxied: TestDb {
    /// Where the server listens.
    async fn upstream(&self) -> SocketAddr;
    /// A store on this database whose connections go to `addr` (a proxy in front of the
    /// server) and give up on a connection attempt within 2 s.
    async fn store_via(&self, addr: SocketAddr) -> Self::Store;
}

/// The stores of the workers connect through a proxy that cuts every connection
/// mid-run and later lets traffic through again, while commands keep arriving (straight
/// to the database). No `run` returns; each worker reports retrying while cut; afterwards
/// the read model equals a replay, every outbox message was published and every
/// scheduled command was applied once.
pub async fn workers_ride_out_a_database_outage<D: Proxied>(db: &D) {
    let direct = db.store().await;
    let proxy = Proxy::start(db.upstream().await).await.expect("a free port on 127.0.0.1 for the proxy");
    let via = db.store_via(proxy.addr()).await;

    // Commands go straight to the database; the workers' stores go through the proxy.
    let writer = app(direct.clone()).build().unwrap();
    let workers_app = app(via.clone()).schedulable::<Reserve>().build().unwrap();
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(300));
    let poll = Duration::from_millis(50);
    let schedules = SchedulerOptions {
        poll_interval: poll,
        lease: Duration::from_secs(1),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        max_attempts: 1000,
        outage_backoff: backoff,
        ..SchedulerOptions::default()
    };
    let projection = Arc::new(
        ProjectionWorker::new(Balances, Arc::new(via.clone()), Arc::new(via.clone())).with_options(WorkerOptions {
            poll_interval: poll,
            outage_backoff: backoff,
            ..WorkerOptions::default()
        }),
    );
    let publisher = Arc::new(Flaky::default());
    let relay = Arc::new(OutboxRelay::new(Arc::new(via.clone()), publisher.clone()).with_options(RelayOptions {
        poll_interval: poll,
        lease: Duration::from_secs(1),
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        max_attempts: 1000,
        outage_backoff: backoff,
        ..RelayOptions::default()
    }));
    let scheduler = Arc::new(Scheduler::with_options(workers_app.clone(), schedules.clone()));
    let recovery = Arc::new(
        SagaRecovery::new(workers_app.clone()).poll_interval(poll).scheduler_options(schedules).outage_backoff(backoff),
    );
    let healths = [
        ("projection", projection.watch_health()),
        ("relay", relay.watch_health()),
        ("scheduler", scheduler.watch_health()),
        ("saga recovery", recovery.watch_health()),
    ];
    let health = |h: &tokio::sync::watch::Receiver<WorkerHealth>| h.borrow().clone();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let runs = [
        tokio::spawn({
            let (w, s) = (projection.clone(), shutdown());
            async move { w.run(s).await }
        }),
        tokio::spawn({
            let (w, s) = (relay.clone(), shutdown());
            async move { w.run(s).await }
        }),
        tokio::spawn({
            let (w, s) = (scheduler.clone(), shutdown());
            async move { w.run(s).await }
        }),
        tokio::spawn({
            let (w, s) = (recovery.clone(), shutdown());
            async move { w.run(s).await }
        }),
    ];

    // Commands all along: accounts opened then credited, outbox messages, and commands
    // scheduled for now.
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    let commands = tokio::spawn({
        let (writer, sent, sending) = (writer.clone(), sent.clone(), sending.clone());
        async move {
            let mut i = 0u64;
            while sending.load(Ordering::SeqCst) {
                let account = format!("acc-{}", i % 10);
                if i < 10 {
                    writer.send(Open { account, owner: format!("owner-{i}") }).await.unwrap();
                } else {
                    writer.send(Deposit { account, amount: i }).await.unwrap();
                }
                writer.send(Announce { topics: vec![format!("m{i}")] }).await.unwrap();
                if i.is_multiple_of(5) {
                    writer.schedule(&Reserve { order: format!("sched-{i}") }, chrono::Utc::now()).await.unwrap();
                }
                i += 1;
                sent.store(usize::try_from(i).unwrap(), Ordering::SeqCst);
                // Pacing the load, not waiting for an outcome.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            i
        }
    });
    let wait = Duration::from_secs(30);
    let sent_by = |n: usize| {
        let sent = sent.clone();
        async move { sent.load(Ordering::SeqCst) >= n }
    };
    eventually("the workers are at work", wait, || async {
        let published = !publisher.published.lock().is_empty();
        published && sent_by(20).await && balance(&via, "acc-1").await.is_some()
    })
    .await;

    assert!(proxy.live() > 0, "the workers hold connections through the proxy");
    proxy.cut();
    let at_cut = sent.load(Ordering::SeqCst);
    eventually("every worker reports retrying", wait, || async {
        healths.iter().map(|(_, h)| health(h)).all(|h| h.retrying_since().is_some() && h.consecutive_failures >= 2)
    })
    .await;
    eventually("commands arrive while the workers are cut off", wait, || sent_by(at_cut + 30)).await;
    for (name, h) in &healths {
        let h = health(h);
        assert!(h.last_error.is_some(), "{name}: {h:?}");
    }
    assert!(proxy.refused() > 0, "the workers tried to reconnect while cut");
    assert!(runs.iter().all(|r| !r.is_finished()), "a worker returned during the outage");

    proxy.restore();
    let at_restore = sent.load(Ordering::SeqCst);
    eventually("every worker runs again", wait, || async {
        healths.iter().all(|(_, h)| health(h).state == WorkerState::Running)
    })
    .await;
    eventually("commands arrive after the outage", wait, || sent_by(at_restore + 30)).await;
    sending.store(false, Ordering::SeqCst);
    let total = commands.await.unwrap();

    // The read model equals a replay from the start.
    let replay_store = MemoryProjectionStore::new();
    let replay = ProjectionWorker::new(Balances, Arc::new(direct.clone()), Arc::new(replay_store.clone()));
    let parse = |docs: Vec<cqrs_ddd::ports::Document>| -> BTreeMap<String, Balance> {
        docs.into_iter().map(|d| (d.id, serde_json::from_str(&d.json).unwrap())).collect()
    };
    // Both catch up as the read horizon passes the last commits (other tests run alongside).
    eventually("the read model equals a replay", wait, || async {
        replay.catch_up().await.unwrap();
        let expected = parse(replay_store.documents("balances").await.unwrap());
        expected.len() == 10 && parse(direct.documents("balances").await.unwrap()) == expected
    })
    .await;
    // Every outbox message was published (at least once, as promised).
    let topics: HashSet<String> = (0..total).map(|i| format!("m{i}")).collect();
    eventually("every outbox message is published", wait, || async {
        let published: HashSet<String> = publisher.published.lock().iter().cloned().collect();
        // The outbox also carries deposits for the asynchronous event handler.
        topics.is_subset(&published) && direct.pending(1).await.unwrap().is_empty()
    })
    .await;
    // Every scheduled command was applied, once.
    let scheduled: Vec<String> = (0..total).filter(|i| i.is_multiple_of(5)).map(|i| format!("sched-{i}")).collect();
    eventually("every scheduled command is applied", wait, || async { db.count("scheduled_commands").await == 0 })
        .await;
    for order in &scheduled {
        let journal = writer.load::<Journal>(order).await.unwrap();
        assert_eq!(journal.state.entries, ["Reserve"], "{order}: applied once");
    }

    assert!(runs.iter().all(|r| !r.is_finished()), "a worker returned");
    stop.send(true).unwrap();
    for (run, (name, h)) in runs.into_iter().zip(&healths) {
        let result = run.await.unwrap();
        assert!(result.is_ok(), "{name}: {result:?}");
        let h = health(h);
        assert_eq!(h.state, WorkerState::Stopped, "{name}");
        assert!(h.retries >= 2, "{name}: {h:?}");
    }
    drop(proxy);
}

/// A command sent while the database is cut off is retried under a transient-retry
/// policy until it is back, and applied once; without the policy the caller gets the
/// failure. The cut outlasts the pool's 2 s wait for a connection, so the first attempt
/// fails whatever the timing.
pub async fn commands_ride_out_a_database_outage<D: Proxied>(db: &D) {
    use super::domain::Account;
    use cqrs_ddd::TransientRetry;

    let proxy = Proxy::start(db.upstream().await).await.expect("a free port on 127.0.0.1 for the proxy");
    let via = db.store_via(proxy.addr()).await;
    let retrying = app(via.clone())
        .retry_transient(TransientRetry::exponential(100, Duration::from_millis(20), Duration::from_millis(250)))
        .build()
        .unwrap();
    let plain = app(via.clone()).build().unwrap();
    retrying.send(Open { account: "o".into(), owner: "Ada".into() }).await.unwrap();

    proxy.cut();
    let failed = plain.send(Deposit { account: "o".into(), amount: 1 }).await.unwrap_err();
    assert!(failed.is_transient(), "an outage is transient: {failed}");
    let sending = {
        let retrying = retrying.clone();
        tokio::spawn(async move { retrying.send(Deposit { account: "o".into(), amount: 5 }).await })
    };
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    proxy.restore();
    tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the retried send ends once the database is back")
        .unwrap()
        .unwrap();
    let account = db.store().await;
    let loaded = app(account).build().unwrap().load::<Account>(&"o".to_owned()).await.unwrap();
    assert_eq!(loaded.state.balance, 5, "applied once; the plain send wrote nothing");
    assert_eq!(loaded.version, 2);
}
