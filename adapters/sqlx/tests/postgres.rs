//! The adapter contract on PostgreSQL (DATABASE_URL, default the loopback server); each
//! test works in a schema of its own.
#![cfg(feature = "postgres")]

#[macro_use]
mod common;

use std::time::Duration;

use common::conns::*;
use common::deadlines::*;
use common::hardening::*;
use common::jobs::*;
use common::merging::*;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::specs::*;
use common::tenancy::*;
use common::undo::*;
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
            let conn =
                tx.connection::<sqlx::PgConnection>().ok_or_else(|| cqrs_ddd::Error::handler("not on PostgreSQL"))?;
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

#[async_trait]
impl common::outage::Proxied for Pg {
    async fn upstream(&self) -> std::net::SocketAddr {
        let options = options();
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL host of {}", url()))
    }

    async fn store_via(&self, addr: std::net::SocketAddr) -> PgStore {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .connect_with(options().host(&addr.ip().to_string()).port(addr.port()))
            .await
            .unwrap();
        PgStore::from_pool(pool, &self.schema).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_database_outage() {
    let db = Pg::new().await;
    common::outage::workers_ride_out_a_database_outage(&db).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_ride_out_a_database_outage() {
    let db = Pg::new().await;
    common::outage::commands_ride_out_a_database_outage(&db).await;
    db.drop().await;
}

/// Messages for the two-relay test.
const MESSAGES: usize = 10_000;

#[tokio::test]
async fn the_available_books_query_uses_its_declared_index() {
    let db = Pg::new().await;
    common::specs::the_available_books_query_uses_its_declared_index(&db, 100_000).await;
    db.drop().await;
}

every_store_contract!(on_own_database, Pg);
every_sql_contract!(on_own_database, Pg);

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

/// The geometry operators on PostGIS (installed by scripts/services.sh).
#[cfg(feature = "geo")]
mod geometry {
    use super::*;

    /// A store in a schema of its own, with PostGIS in the database. Tests create the
    /// extension at once: an advisory lock makes them take turns, and a creation that
    /// another session won all the same is a duplicate error, after which it exists.
    async fn postgis() -> Pg {
        let db = Pg::new().await;
        let created =
            sqlx::raw_sql("SELECT pg_advisory_xact_lock(7205759403792793); CREATE EXTENSION IF NOT EXISTS postgis")
                .execute(db.admin.pool())
                .await;
        if let Err(e) = created {
            let duplicate = e
                .as_database_error()
                .and_then(sqlx::error::DatabaseError::code)
                .is_some_and(|c| c == "23505" || c == "42710");
            assert!(duplicate, "PostGIS could not be created (scripts/services.sh installs it): {e}");
            let started = std::time::Instant::now();
            while !sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')")
                .fetch_one(db.admin.pool())
                .await
                .unwrap()
            {
                assert!(started.elapsed() < Duration::from_secs(30), "PostGIS was not created by the other session");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        db
    }

    #[tokio::test]
    async fn geometry_operators_answer_the_fixtures() {
        let db = postgis().await;
        common::geometry::geometry_operators_answer_the_fixtures(&db.store().await).await;
        db.drop().await;
    }

    #[tokio::test]
    async fn bad_geometry_values_are_refused() {
        let db = postgis().await;
        common::geometry::bad_geometry_values_are_refused_alike(&db.store().await).await;
        db.drop().await;
    }

    #[tokio::test]
    async fn random_geometry_conditions_agree_with_memory() {
        let db = postgis().await;
        common::geometry::random_geometry_conditions_agree_with_memory(&db.store().await, 30).await;
        db.drop().await;
    }
}

mod advisory_locks {
    //! Locks on PostgreSQL advisory locks, between two "processes" (two stores).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use cqrs_ddd::lock::{LockBackend, LockError, LockManager, LockMode, LockOptions, Resource};
    use cqrs_ddd_sqlx::PgLocks;

    use super::Pg;
    use crate::common::TestDb as _;

    fn res(id: &str) -> Resource {
        Resource::of_tenant(Some("t1"), "Account", id)
    }

    fn opts(timeout_ms: u64) -> LockOptions {
        LockOptions { timeout: Duration::from_millis(timeout_ms), ttl: Duration::from_secs(30) }
    }

    #[tokio::test]
    async fn readers_share_writers_exclude_and_a_failed_multi_lock_gives_back_what_it_took() {
        let db = Pg::new().await;
        let (a, b) = (PgLocks::new(&db.store().await), PgLocks::new(&db.store().await));
        a.health().await.unwrap();
        let r1 = a.acquire(&res("x"), LockMode::Read, &opts(1_000)).await.unwrap();
        let r2 = b.acquire(&res("x"), LockMode::Read, &opts(1_000)).await.unwrap();
        let err = b.acquire(&res("x"), LockMode::Write, &opts(50)).await.err().unwrap();
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        a.release(&r1).await.unwrap();
        b.release(&r2).await.unwrap();
        let w = a.acquire(&res("x"), LockMode::Write, &opts(1_000)).await.unwrap();
        assert!(b.acquire(&res("x"), LockMode::Read, &opts(50)).await.is_err(), "a writer holds it");
        a.release(&w).await.unwrap();

        let (ma, mb) = (LockManager::new(a.clone()), LockManager::new(b.clone()));
        let held_b = mb.lock([(res("b"), LockMode::Write)], "other", &opts(1_000)).await.unwrap();
        let err =
            ma.lock([(res("a"), LockMode::Write), (res("b"), LockMode::Write)], "me", &opts(50)).await.err().unwrap();
        assert!(matches!(&err, LockError::Timeout { resource, .. } if resource.id == "b"), "{err}");
        mb.lock([(res("a"), LockMode::Write)], "third", &opts(1_000)).await.unwrap().release().await.unwrap();
        held_b.release().await.unwrap();
        // Another tenant's `b` is another lock.
        let other_tenant = Resource::of_tenant(Some("t2"), "Account", "b");
        let held_b = mb.lock([(res("b"), LockMode::Write)], "other", &opts(1_000)).await.unwrap();
        ma.lock([(other_tenant, LockMode::Write)], "me", &opts(1_000)).await.unwrap().release().await.unwrap();
        held_b.release().await.unwrap();
        db.drop().await;
    }

    #[tokio::test]
    async fn fences_increase_and_an_expired_lease_is_lost() {
        let db = Pg::new().await;
        let (a, b) = (PgLocks::new(&db.store().await), PgLocks::new(&db.store().await));
        let short = LockOptions { timeout: Duration::from_secs(10), ttl: Duration::from_millis(50) };
        let first = a.acquire(&res("f"), LockMode::Write, &short).await.unwrap();
        // Not released: its lease runs out and the other process takes over.
        let second = b.acquire(&res("f"), LockMode::Write, &opts(10_000)).await.unwrap();
        assert!(second.fence > first.fence, "{} then {}", first.fence, second.fence);
        assert!(matches!(a.extend(&first, Duration::from_secs(1)).await, Err(LockError::Lost { .. })));
        b.extend(&second, Duration::from_secs(30)).await.unwrap();
        b.release(&second).await.unwrap();
        db.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tasks_of_two_processes_never_overlap() {
        let db = Pg::new().await;
        let managers =
            [LockManager::new(PgLocks::new(&db.store().await)), LockManager::new(PgLocks::new(&db.store().await))];
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (locks, inside) = (managers[t % 2].clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let held =
                        locks.lock([(res("hot"), LockMode::Write)], &format!("t{t}-{i}"), &opts(60_000)).await.unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    held.release().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        db.drop().await;
    }
}
