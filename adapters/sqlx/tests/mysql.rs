//! The adapter contract on MariaDB / MySQL (MYSQL_URL, default the loopback MariaDB as
//! root); each test works in a database of its own.
#![cfg(feature = "mysql")]

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
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, async_trait};
use cqrs_ddd_sqlx::MySqlStore;

/// The server, without a database.
fn server() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

struct My {
    database: String,
    admin: MySqlStore,
}

impl My {
    async fn new() -> Self {
        let database = format!("t_{}", uuid::Uuid::now_v7().simple());
        let root = sqlx::MySqlPool::connect(&server()).await.unwrap_or_else(|e| {
            panic!("MariaDB is not reachable at {} ({e}); start it with scripts/services.sh", server())
        });
        sqlx::raw_sql(&format!("CREATE DATABASE `{database}`")).execute(&root).await.unwrap();
        root.close().await;
        let admin = MySqlStore::connect(&format!("{}/{database}", server())).await.unwrap_or_else(|e| panic!("{e}"));
        admin.migrate().await.unwrap();
        My { database, admin }
    }

    async fn drop(self) {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE `{}`", self.database)).execute(self.admin.pool()).await;
        self.admin.pool().close().await;
    }
}

#[async_trait]
impl TestDb for My {
    type Store = MySqlStore;
    const SQLITE: bool = false;
    const MYSQL: bool = true;

    async fn store(&self) -> MySqlStore {
        MySqlStore::connect(&format!("{}/{}", server(), self.database)).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        // Long generated series recurse more than MariaDB's default 1000 times.
        let sql = format!("SET SESSION max_recursive_iterations = 4294967295; {}", sql.replace("{t}", ""));
        sqlx::raw_sql(&sql).execute(self.admin.pool()).await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(self.admin.pool()).await.unwrap()
    }

    async fn commit_slowly(&self, store: &MySqlStore, batch: CommitBatch, delay: Duration) -> Result<()> {
        let mut tx = store.pool().begin().await.map_err(cqrs_ddd::Error::store)?;
        store.commit_in(&mut tx, batch).await?;
        tokio::time::sleep(delay).await;
        tx.commit().await.map_err(cqrs_ddd::Error::store)
    }

    async fn commit_in_one_transaction(
        &self,
        store: &MySqlStore,
        batches: Vec<CommitBatch>,
    ) -> Vec<Result<CommitReceipt>> {
        let mut tx = store.pool().begin().await.unwrap();
        let mut results = Vec::new();
        for batch in batches {
            results.push(store.commit_in(&mut tx, batch).await);
        }
        tx.commit().await.unwrap();
        results
    }
}

#[async_trait]
impl common::kill::Reopen for My {
    const APPLIED: &'static str = "CREATE TABLE {t}applied (event_id BINARY(16) PRIMARY KEY)";
    const RECORD: common::kill::Record = |tx, _, id| {
        Box::pin(async move {
            let conn =
                tx.connection::<sqlx::MySqlConnection>().ok_or_else(|| cqrs_ddd::Error::handler("not on MariaDB"))?;
            sqlx::query("INSERT INTO applied (event_id) VALUES (?)")
                .bind(id)
                .execute(conn)
                .await
                .map_err(cqrs_ddd::Error::store)?;
            Ok(())
        })
    };

    async fn create() -> Self {
        My::new().await
    }

    fn place(&self) -> String {
        self.database.clone()
    }

    async fn reopen(database: &str) -> Self {
        let admin = MySqlStore::connect(&format!("{}/{database}", server())).await.unwrap();
        My { database: database.to_owned(), admin }
    }

    async fn destroy(self) {
        self.drop().await;
    }
}

kill_tests!(My);

#[async_trait]
impl common::outage::Proxied for My {
    async fn upstream(&self) -> std::net::SocketAddr {
        let options: sqlx::mysql::MySqlConnectOptions = server().parse().unwrap();
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the MariaDB host of {}", server()))
    }

    async fn store_via(&self, addr: std::net::SocketAddr) -> MySqlStore {
        let options: sqlx::mysql::MySqlConnectOptions = server().parse().unwrap();
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        &mut *conn,
                        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')",
                    )
                    .await?;
                    sqlx::Executor::execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
                    Ok(())
                })
            })
            .connect_with(options.host(&addr.ip().to_string()).port(addr.port()).database(&self.database))
            .await
            .unwrap();
        MySqlStore::from_pool(pool)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_database_outage() {
    let db = My::new().await;
    common::outage::workers_ride_out_a_database_outage(&db).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_ride_out_a_database_outage() {
    let db = My::new().await;
    common::outage::commands_ride_out_a_database_outage(&db).await;
    db.drop().await;
}

/// Messages for the two-relay test.
const MESSAGES: usize = 2_000;

every_store_contract!(on_own_database, My);
every_sql_contract!(on_own_database, My);

#[tokio::test]
async fn migrations_are_idempotent_and_safe_in_parallel() {
    // Two processes migrate an empty database at once: they take turns.
    let db = My::new().await;
    let fresh = format!("{}_fresh", db.database);
    sqlx::raw_sql(&format!("CREATE DATABASE `{fresh}`")).execute(db.admin.pool()).await.unwrap();
    let url = format!("{}/{fresh}", server());
    let (a, b) = (MySqlStore::connect(&url).await.unwrap(), MySqlStore::connect(&url).await.unwrap());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.migrate().await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cqrs_ddd_migrations").fetch_one(a.pool()).await.unwrap();
    assert_eq!(applied, 4, "each of the four migrations recorded once");
    sqlx::raw_sql(&format!("DROP DATABASE `{fresh}`")).execute(db.admin.pool()).await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn identifiers_differing_in_case_or_trailing_space_are_distinct_streams() {
    use cqrs_ddd::ports::{EventStore, StreamAppend, StreamKey};
    let db = My::new().await;
    let store = db.store().await;
    for id in ["acc", "ACC", "acc "] {
        let append = StreamAppend {
            stream: StreamKey::new("Account", id),
            expected_version: 0,
            events: vec![new_event("Opened", 1, serde_json::json!({"owner": "x"}))],
        };
        let batch = CommitBatch { appends: vec![append], ..CommitBatch::default() };
        store.commit(batch).await.unwrap_or_else(|e| panic!("stream `{id}`: {e}"));
    }
    for id in ["acc", "ACC", "acc "] {
        assert_eq!(store.stream_version(&StreamKey::new("Account", id)).await.unwrap(), 1, "stream `{id}`");
    }
    db.drop().await;
}

#[tokio::test]
async fn an_id_longer_than_its_column_is_unstorable_and_writes_nothing() {
    use cqrs_ddd::ports::{EventStore, StreamAppend, StreamKey};
    let db = My::new().await;
    let store = db.store().await;
    let long = "x".repeat(256);
    let append = StreamAppend {
        stream: StreamKey::new("Account", &long),
        expected_version: 0,
        events: vec![new_event("Opened", 1, serde_json::json!({"owner": "x"}))],
    };
    let err = store.commit(CommitBatch { appends: vec![append], ..CommitBatch::default() }).await.unwrap_err();
    assert!(matches!(err, cqrs_ddd::Error::Unstorable { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(db.count("events").await, 0);
    db.drop().await;
}

#[tokio::test]
async fn a_server_that_is_down_fails_fast_with_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = MySqlStore::connect(&format!("mysql://root@127.0.0.1:{port}/test")).await.err().unwrap();
    match err {
        cqrs_ddd::Error::Connect { reason, .. } => assert!(reason.contains("connection refused"), "{reason}"),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let err = MySqlStore::connect(&format!("{}/no_such_database_here", server())).await.err().unwrap();
    match err {
        cqrs_ddd::Error::Connect { reason, .. } => {
            assert!(reason.contains("`no_such_database_here` does not exist"), "{reason}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// MariaDB has no geometry operators: a typed refusal, before any statement runs.
#[cfg(feature = "geo")]
#[tokio::test]
async fn geometry_conditions_are_unsupported_on_mariadb() {
    use cqrs_ddd::ports::ProjectionStore;
    use cqrs_ddd::spec::{EvalError, Op, QueryOptions, Spec};

    let db = My::new().await;
    let point = serde_json::json!({"type": "Point", "coordinates": [2.3522, 48.8566]});
    let q = QueryOptions::new().filter(Spec::leaf("g", Op::Intersects, point));
    let err = db.store().await.find_of(None, "places", &q).await.unwrap_err();
    assert!(matches!(err, cqrs_ddd::Error::Spec(EvalError::Unsupported(Op::Intersects))), "{err}");
    db.drop().await;
}
