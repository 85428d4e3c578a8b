//! The adapter contract on PostgreSQL (DATABASE_URL, default the loopback server); each
//! test works in a schema of its own.
#![cfg(feature = "postgres")]

#[macro_use]
mod common;

use std::time::Duration;

use common::hardening::*;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::tenancy::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, Cursor, EventStore, async_trait};
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

#[async_trait]
impl common::kill::Reopen for Pg {
    const APPLIED: &'static str = "CREATE TABLE {t}applied (event_id UUID PRIMARY KEY)";
    const RECORD: common::kill::Record = |tx, schema, id| {
        Box::pin(async move {
            let conn = tx.connection::<sqlx::PgConnection>().ok_or_else(|| cqrs_ddd::Error::handler("not on PostgreSQL"))?;
            sqlx::query(&format!("INSERT INTO \"{schema}\".applied (event_id) VALUES ($1)"))
                .bind(id)
                .execute(conn)
                .await
                .map_err(cqrs_ddd::Error::store)?;
            Ok(())
        })
    };

    async fn create() -> Self {
        Pg::new().await
    }

    fn place(&self) -> String {
        self.schema.clone()
    }

    async fn reopen(schema: &str) -> Self {
        let admin = PgStore::connect_with(PgOptions::new(url()).schema(schema).max_connections(4)).await.unwrap();
        Pg { schema: schema.to_owned(), admin }
    }

    async fn destroy(self) {
        self.drop().await;
    }
}

kill_tests!(Pg);

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

every_store_contract!(pg_tests);
every_sql_contract!(pg_tests);

/// The stores of the workers connect through a proxy that cuts every connection
/// mid-run and later lets traffic through again, while commands keep arriving (straight
/// to the database). No `run` returns; each worker reports retrying while cut; afterwards
/// the read model equals a replay, every outbox message was published and every
/// scheduled command was applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_database_outage() {
    use common::domain::{Deposit, Open};
    use common::proxy::Proxy;
    use common::saga_engine::{Journal, Reserve};
    use cqrs_ddd::memory::MemoryProjectionStore;
    use cqrs_ddd::outbox::{OutboxRelay, RelayOptions};
    use cqrs_ddd::ports::{Outbox, ProjectionStore};
    use cqrs_ddd::projection::{ProjectionWorker, WorkerOptions};
    use cqrs_ddd::saga::SagaRecovery;
    use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions};
    use cqrs_ddd::{Backoff, WorkerHealth, WorkerState};
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let db = Pg::new().await;
    let direct = db.store().await;
    let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL host of {}", url()));
    let proxy = Proxy::start(upstream).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect_with(options.host("127.0.0.1").port(proxy.addr().port()))
        .await
        .unwrap();
    let via = PgStore::from_pool(pool, &db.schema).unwrap();

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
    db.drop().await;
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

/// The reason of a connect error to PostgreSQL, or a panic saying what came instead.
fn connect_reason(result: cqrs_ddd::Result<PgStore>, target: &str) -> String {
    match result {
        Err(cqrs_ddd::Error::Connect { backend: "PostgreSQL", target: t, reason }) => {
            assert!(t.contains(target), "`{t}` should name {target}");
            reason
        }
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("expected a connect error, got a store"),
    }
}

fn url_with(edit: impl FnOnce(&mut sqlx::postgres::PgConnectOptions) -> String) -> String {
    let mut options = options();
    edit(&mut options)
}

/// With nothing listening on the port, `connect` fails at once with the real cause, not
/// after the pool's 30 s with "pool timed out".
#[tokio::test]
async fn a_server_that_is_down_fails_fast_with_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let result = PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    let reason = connect_reason(result, &format!("127.0.0.1:{port}"));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(reason.contains("connection refused"), "{reason}");
}

/// A server that accepts the connection and never answers is given up on after the
/// connect timeout.
#[tokio::test]
async fn a_server_that_does_not_answer_times_out_after_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let options = PgOptions::new(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .connect_timeout(Duration::from_millis(300));
    let reason = connect_reason(PgStore::connect_with(options).await, &format!("127.0.0.1:{port}"));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "took {took:?}");
    assert!(reason.contains("no answer within 300ms"), "{reason}");
    drop(silent);
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let name = format!("cqrs_ddd_missing_{}", uuid::Uuid::now_v7().simple());
    let url = url_with(|o| format!("postgres://{}@{}:{}/{name}", o.get_username(), o.get_host(), o.get_port()));
    let reason = connect_reason(PgStore::connect(&url).await, &name);
    assert!(reason.contains(&format!("database `{name}` does not exist")), "{reason}");
}

#[tokio::test]
async fn a_missing_role_is_named() {
    let role = format!("cqrs_ddd_nobody_{}", uuid::Uuid::now_v7().simple());
    let url = url_with(|o| format!("postgres://{role}@{}:{}/postgres", o.get_host(), o.get_port()));
    let reason = connect_reason(PgStore::connect(&url).await, "/postgres");
    assert!(reason.contains(&format!("role `{role}` does not exist")), "{reason}");
}

#[tokio::test]
async fn a_bad_schema_name_is_rejected() {
    let pool = sqlx::PgPool::connect_lazy(&url()).unwrap();
    assert!(PgStore::from_pool(pool, "x; DROP TABLE y").is_err());
}

/// A connection to `url` (another database: replace the path) holding a write
/// transaction open: it has a transaction id and runs until dropped or committed.
struct Holder {
    conn: sqlx::PgConnection,
    xid: u64,
    pid: i32,
}

impl Holder {
    async fn open(options: sqlx::postgres::PgConnectOptions) -> Self {
        let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        let (xid, pid): (i64, i32) = sqlx::query_as("SELECT pg_current_xact_id()::text::bigint, pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        Holder { conn, xid: u64::try_from(xid).unwrap(), pid }
    }

    /// Whether its transaction is still the one it opened.
    async fn still_open(&mut self) -> bool {
        let xid: Option<i64> = sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text::bigint")
            .fetch_one(&mut self.conn)
            .await
            .unwrap();
        xid.and_then(|x| u64::try_from(x).ok()) == Some(self.xid)
    }
}

fn options() -> sqlx::postgres::PgConnectOptions {
    url().parse().unwrap()
}

/// A database of its own, dropped afterwards. The tests that hold transactions open
/// hold them in databases like this one, so that readers of the database the other
/// tests share are never held by them.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    async fn create(admin: &PgStore) -> Self {
        let name = format!("cqrs_ddd_scratch_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(admin.pool()).await.unwrap();
        ScratchDb { name }
    }

    fn options(&self) -> sqlx::postgres::PgConnectOptions {
        options().database(&self.name)
    }

    /// A migrated store in this database, connecting as `role` (default: the url's).
    async fn store(&self, role: Option<&str>) -> PgStore {
        let options = match role {
            Some(role) => self.options().username(role),
            None => self.options(),
        };
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
        PgStore::from_pool(pool, "public").unwrap()
    }

    async fn drop(self, admin: &PgStore) {
        sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name)).execute(admin.pool()).await.unwrap();
    }
}

fn one_deposit(id: &str) -> CommitBatch {
    CommitBatch {
        appends: vec![cqrs_ddd::ports::StreamAppend {
            stream: cqrs_ddd::ports::StreamKey::new("Account", id),
            expected_version: 0,
            events: vec![new_event("Deposited", 1, serde_json::json!({"amount": 1}))],
        }],
        ..CommitBatch::default()
    }
}

/// Reads all events until `wanted` are among them, within `limit`; returns what it read.
async fn read_until(store: &PgStore, wanted: &[uuid::Uuid], limit: Duration) -> Vec<uuid::Uuid> {
    let started = std::time::Instant::now();
    loop {
        let seen: Vec<uuid::Uuid> =
            store.read_all(Cursor::START, 1000).await.unwrap().iter().map(|e| e.event_id).collect();
        if wanted.iter().all(|w| seen.contains(w)) || started.elapsed() > limit {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `read_stall` until it names the process `pid`, within 15 s.
async fn stall_of(store: &PgStore, pid: i32) -> cqrs_ddd::ports::ReadStall {
    let started = std::time::Instant::now();
    loop {
        let stall = store.read_stall().await.unwrap();
        match stall {
            Some(s) if s.pid == Some(pid) => return s,
            other if started.elapsed() > Duration::from_secs(15) => panic!("the holder is not reported: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A write transaction held open in another database of the server (a batch job, another
/// application) does not delay readers of this database's events, nor is it reported as
/// what holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_in_another_database_does_not_hold_readers() {
    let admin = Pg::new().await;
    let (mine, theirs) = (ScratchDb::create(&admin.admin).await, ScratchDb::create(&admin.admin).await);
    let store = mine.store(None).await;
    store.migrate().await.unwrap();
    let mut other = Holder::open(theirs.options()).await;
    let batch = one_deposit("after-other");
    let event = batch.appends[0].events[0].event_id;
    store.commit(batch).await.unwrap();

    let seen = read_until(&store, &[event], Duration::from_secs(15)).await;
    assert!(seen.contains(&event), "a transaction of another database held the reader back");
    assert!(other.still_open().await, "the other database's transaction was open all along");
    assert!(store.head().await.unwrap() > Cursor::START, "head moves past it too");
    if let Some(stall) = store.read_stall().await.unwrap() {
        assert_ne!(stall.xid, other.xid, "another database's transaction is not what holds readers: {stall:?}");
    }
    drop(other);
    store.pool().close().await;
    mine.drop(&admin.admin).await;
    theirs.drop(&admin.admin).await;
    admin.drop().await;
}

/// A write transaction held open in this database holds readers (it may still commit
/// events below what they would read next), `read_stall` reports it with its process,
/// application name and start, and once it commits readers catch up in order, skipping
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_in_this_database_holds_readers_and_is_reported() {
    let admin = Pg::new().await;
    let scratch = ScratchDb::create(&admin.admin).await;
    let store = scratch.store(None).await;
    store.migrate().await.unwrap();
    let app_name = format!("holder-{}", uuid::Uuid::now_v7().simple());
    let mut holder = Holder::open(scratch.options().application_name(&app_name)).await;
    let held = one_deposit("held");
    let held_id = held.appends[0].events[0].event_id;
    store.commit_in(&mut holder.conn, held).await.unwrap();
    let after = one_deposit("after");
    let after_id = after.appends[0].events[0].event_id;
    store.commit(after).await.unwrap();

    let page = store.read_all(Cursor::START, 100).await.unwrap();
    assert!(page.is_empty(), "nothing after the open transaction is read while it runs: {page:?}");
    let stall = stall_of(&store, holder.pid).await;
    assert_eq!((stall.xid, stall.application_name.as_deref()), (holder.xid, Some(app_name.as_str())));
    assert!(stall.since.is_some_and(|t| t <= chrono::Utc::now()), "{stall:?}");
    assert!(stall.xid_age.is_some_and(|age| age >= 1), "a transaction started after it: {stall:?}");
    assert!(holder.still_open().await);

    sqlx::query("COMMIT").execute(&mut holder.conn).await.unwrap();
    let seen = read_until(&store, &[held_id, after_id], Duration::from_secs(15)).await;
    assert_eq!(seen, [held_id, after_id], "the held event comes first, each once");
    assert_eq!(store.read_stall().await.unwrap(), None, "nothing holds readers any more");
    drop(holder);
    store.pool().close().await;
    scratch.drop(&admin.admin).await;
    admin.drop().await;
}

/// A reader whose role may not see other roles' activity (no `pg_read_all_stats`) still
/// passes another database's transactions (`backend_xid` and `datname` are visible to
/// every role), and `read_stall` still names a holder of its database by transaction id,
/// process and application name, without its start time (hidden from other roles).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_reader_passes_other_databases_and_sees_holders() {
    let admin = Pg::new().await;
    let (mine, theirs) = (ScratchDb::create(&admin.admin).await, ScratchDb::create(&admin.admin).await);
    let owner = mine.store(None).await;
    owner.migrate().await.unwrap();
    let role = format!("reader_{}", uuid::Uuid::now_v7().simple());
    sqlx::raw_sql(&format!("CREATE ROLE \"{role}\" LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\""))
        .execute(owner.pool())
        .await
        .unwrap();
    let reader = mine.store(Some(&role)).await;
    let mut other = Holder::open(theirs.options()).await;
    let batch = one_deposit("unprivileged");
    let event = batch.appends[0].events[0].event_id;
    owner.commit(batch).await.unwrap();
    let seen = read_until(&reader, &[event], Duration::from_secs(15)).await;
    assert!(seen.contains(&event), "another database's transaction held the reader");
    assert!(other.still_open().await);

    let app_name = format!("holder-{}", uuid::Uuid::now_v7().simple());
    let mut holder = Holder::open(mine.options().application_name(&app_name)).await;
    // It holds readers once a later transaction has committed.
    owner.commit(one_deposit("after-holder")).await.unwrap();
    let stall = stall_of(&reader, holder.pid).await;
    assert_eq!(
        (stall.xid, stall.application_name.as_deref(), stall.since),
        (holder.xid, Some(app_name.as_str()), None)
    );
    sqlx::query("ROLLBACK").execute(&mut holder.conn).await.unwrap();
    drop((holder, other));
    reader.pool().close().await;
    owner.pool().close().await;
    mine.drop(&admin.admin).await;
    theirs.drop(&admin.admin).await;
    sqlx::query(&format!("DROP ROLE \"{role}\"")).execute(admin.admin.pool()).await.unwrap();
    admin.drop().await;
}
