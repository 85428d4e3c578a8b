//! The adapter contract on SQLite; each test works in a database file of its own.
#![cfg(feature = "sqlite")]

#[macro_use]
mod common;

use std::path::PathBuf;
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
use cqrs_ddd_sqlx::SqliteStore;

struct Lite {
    path: PathBuf,
    admin: SqliteStore,
}

impl Lite {
    async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("cqrs-ddd-{}.db", uuid::Uuid::now_v7().simple()));
        let admin = SqliteStore::connect(&Self::url_of(&path)).await.unwrap_or_else(|e| panic!("{e}"));
        admin.migrate().await.unwrap();
        Lite { path, admin }
    }

    fn url_of(path: &std::path::Path) -> String {
        format!("sqlite://{}", path.display())
    }

    async fn drop(self) {
        self.admin.pool().close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

#[async_trait]
impl TestDb for Lite {
    type Store = SqliteStore;
    const SQLITE: bool = true;

    async fn store(&self) -> SqliteStore {
        SqliteStore::connect(&Self::url_of(&self.path)).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(&sql.replace("{t}", "")).execute(self.admin.pool()).await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(self.admin.pool()).await.unwrap()
    }

    async fn commit_slowly(&self, store: &SqliteStore, batch: CommitBatch, delay: Duration) -> Result<()> {
        let mut conn = store.pool().acquire().await.map_err(cqrs_ddd::Error::store)?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.map_err(cqrs_ddd::Error::store)?;
        store.commit_in(&mut conn, batch).await?;
        tokio::time::sleep(delay).await;
        sqlx::query("COMMIT").execute(&mut *conn).await.map_err(cqrs_ddd::Error::store)?;
        Ok(())
    }

    async fn commit_in_one_transaction(
        &self,
        store: &SqliteStore,
        batches: Vec<CommitBatch>,
    ) -> Vec<Result<CommitReceipt>> {
        let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
        let mut results = Vec::new();
        for batch in batches {
            results.push(store.commit_in(&mut tx, batch).await);
        }
        tx.commit().await.unwrap();
        results
    }
}

#[async_trait]
impl common::kill::Reopen for Lite {
    const APPLIED: &'static str = "CREATE TABLE {t}applied (event_id BLOB PRIMARY KEY)";
    const RECORD: common::kill::Record = |tx, _, id| {
        Box::pin(async move {
            let conn =
                tx.connection::<sqlx::SqliteConnection>().ok_or_else(|| cqrs_ddd::Error::handler("not on SQLite"))?;
            sqlx::query("INSERT INTO applied (event_id) VALUES (?)")
                .bind(id)
                .execute(conn)
                .await
                .map_err(cqrs_ddd::Error::store)?;
            Ok(())
        })
    };

    async fn create() -> Self {
        Lite::new().await
    }

    fn place(&self) -> String {
        self.path.display().to_string()
    }

    async fn reopen(path: &str) -> Self {
        let path = PathBuf::from(path);
        let admin = SqliteStore::connect(&Self::url_of(&path)).await.unwrap();
        Lite { path, admin }
    }

    async fn destroy(self) {
        self.drop().await;
    }
}

kill_tests!(Lite);

/// Messages for the two-relay test.
const MESSAGES: usize = 2_000;

#[tokio::test]
async fn the_available_books_query_uses_its_declared_index() {
    let db = Lite::new().await;
    common::specs::the_available_books_query_uses_its_declared_index(&db, 20_000).await;
    db.drop().await;
}

every_store_contract!(on_own_database, Lite);
every_sql_contract!(on_own_database, Lite);

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = Lite::new().await;
    db.admin.migrate().await.unwrap();
    db.store().await.migrate().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn an_unopenable_database_names_the_file_and_the_cause() {
    let missing = std::env::temp_dir().join(format!("cqrs-ddd-missing-{}", uuid::Uuid::now_v7().simple()));
    let file = missing.join("sub").join("x.db");
    let err = SqliteStore::connect(&format!("sqlite://{}", file.display())).await.err().unwrap();
    match &err {
        cqrs_ddd::Error::Connect { backend: "SQLite", target, reason } => {
            assert_eq!(target, &file.display().to_string());
            assert!(reason.contains("does not exist") && reason.contains(&missing.display().to_string()), "{reason}");
        }
        other => panic!("expected a connect error naming the file, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_extension_is_a_connect_error_naming_it() {
    let path = std::env::temp_dir().join(format!("cqrs-ddd-{}.db", uuid::Uuid::now_v7().simple()));
    let options = SqliteStore::options(&Lite::url_of(&path)).unwrap().extension("mod_cqrs_ddd_not_installed");
    let err = SqliteStore::connect_with(options).await.err().unwrap();
    match &err {
        cqrs_ddd::Error::Connect { backend: "SQLite", reason, .. } => {
            assert!(reason.contains("extension") && reason.contains("mod_cqrs_ddd_not_installed"), "{reason}");
        }
        other => panic!("expected a connect error naming the extension, got {other:?}"),
    }
    let _ = std::fs::remove_file(&path);
}

/// The geometry operators on SpatiaLite (installed by scripts/services.sh).
#[cfg(feature = "geo")]
mod geometry {
    use cqrs_ddd::ports::ProjectionStore;
    use cqrs_ddd::spec::{Op, QueryOptions, Spec};

    use super::*;

    /// A migrated store with SpatiaLite loaded, in a database file of its own.
    async fn spatialite() -> (Lite, SqliteStore) {
        let db = Lite::new().await;
        let options = SqliteStore::options(&Lite::url_of(&db.path)).unwrap().extension("mod_spatialite");
        let store = SqliteStore::connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("{e} (scripts/services.sh installs libsqlite3-mod-spatialite)"));
        store.migrate().await.unwrap();
        (db, store)
    }

    #[tokio::test]
    async fn geometry_operators_answer_the_fixtures() {
        let (db, store) = spatialite().await;
        common::geometry::geometry_operators_answer_the_fixtures(&store).await;
        store.pool().close().await;
        db.drop().await;
    }

    #[tokio::test]
    async fn bad_geometry_values_are_refused() {
        let (db, store) = spatialite().await;
        common::geometry::bad_geometry_values_are_refused_alike(&store).await;
        store.pool().close().await;
        db.drop().await;
    }

    #[tokio::test]
    async fn random_geometry_conditions_agree_with_memory() {
        let (db, store) = spatialite().await;
        common::geometry::random_geometry_conditions_agree_with_memory(&store, 30).await;
        store.pool().close().await;
        db.drop().await;
    }

    /// Without SpatiaLite, a geometry condition is a store error that says what to load.
    #[tokio::test]
    async fn a_geometry_condition_without_spatialite_says_what_to_load() {
        let db = Lite::new().await;
        let q = QueryOptions::new().filter(Spec::leaf("g", Op::BboxIntersects, serde_json::json!([0, 0, 1, 1])));
        let err = db.admin.find_of(None, "places", &q).await.unwrap_err();
        assert!(matches!(&err, cqrs_ddd::Error::Store(_)) && err.to_string().contains("mod_spatialite"), "{err}");
        db.drop().await;
    }
}
