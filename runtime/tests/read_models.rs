//! Query handlers read read models through `QueryContext::read_models`, scoped to the
//! query's tenant, with specifications.

use cqrs_ddd::memory::{MemoryProjectionStore, MemoryStore};
use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd::spec::{Aggregation, Dir, Op, QueryOptions, Spec};
use cqrs_ddd::{Error, RequestContext};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Book {
    title: String,
    status: String,
}

#[query]
struct AvailableBooks;

#[query_handler]
async fn available(_q: AvailableBooks, ctx: &QueryContext) -> Result<Vec<Book>> {
    let read = ctx.read_models()?;
    let q = QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "available")).order_by("title", Dir::Asc);
    read.find_as("books", &q).await
}

#[query]
struct BooksByStatus;

#[query_handler]
async fn by_status(_q: BooksByStatus, ctx: &QueryContext) -> Result<Vec<serde_json::Value>> {
    ctx.read_models()?.aggregate("books", &Aggregation::new().group_by("status").count("books")).await
}

async fn seeded() -> MemoryProjectionStore {
    let store = MemoryProjectionStore::new();
    let mut tx = store.begin().await.unwrap();
    for (tenant, id, title, status) in [
        ("t1", "1", "Odyssey", "available"),
        ("t1", "2", "Iliad", "lent"),
        ("t1", "3", "Antigone", "available"),
        ("t2", "1", "Aeneid", "available"),
    ] {
        let json = serde_json::json!({"title": title, "status": status}).to_string();
        tx.put_doc(Some(tenant), "books", id, json).await.unwrap();
    }
    tx.commit().await.unwrap();
    store
}

#[tokio::test]
async fn query_handlers_read_the_read_models_of_their_tenant() {
    let app = App::builder().event_store(MemoryStore::new()).read_models(seeded().await).build().unwrap();
    let t1 = RequestContext::new().with_tenant("t1").scope(app.query(AvailableBooks)).await.unwrap();
    let titles: Vec<&str> = t1.iter().map(|b| b.title.as_str()).collect();
    assert_eq!(titles, ["Antigone", "Odyssey"]);
    let t2 = RequestContext::new().with_tenant("t2").scope(app.query(AvailableBooks)).await.unwrap();
    assert_eq!(t2, [Book { title: "Aeneid".into(), status: "available".into() }]);
    let groups = RequestContext::new().with_tenant("t1").scope(app.query(BooksByStatus)).await.unwrap();
    assert_eq!(
        groups,
        [serde_json::json!({"status": "available", "books": 2}), serde_json::json!({"status": "lent", "books": 1})]
    );
}

#[tokio::test]
async fn without_a_read_model_store_a_query_gets_a_typed_error() {
    let app = App::builder().event_store(MemoryStore::new()).build().unwrap();
    let err = app.query(AvailableBooks).await.unwrap_err();
    assert!(matches!(err, Error::NoReadModels { .. }), "{err}");
    assert!(err.to_string().contains("add `.read_models(store)` to `App::builder()`"), "{err}");
}
