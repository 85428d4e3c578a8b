//! Read-model routes (filters, pages, tenants, owners), read-your-writes with a lagging
//! projection, and the API over a real loopback socket.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::*;
use cqrs_ddd::memory::{MemoryProjectionStore, MemoryStore};
use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd_axum::{Api, ContextLayer, JwtConfig};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// Notes, each shown to its owner only, per tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ReadModel)]
#[read_model(collection = "notes", owner = owner, tenant_required)]
pub struct Note {
    /// Who wrote it.
    #[read_model(filter, select)]
    pub owner: String,
    /// What it says.
    #[read_model(filter, sort, select)]
    pub text: String,
}

async fn seeded() -> MemoryProjectionStore {
    let store = MemoryProjectionStore::new();
    let mut tx = store.begin().await.unwrap();
    for (tenant, account, balance) in
        [("t1", "a", 5), ("t1", "b", 50), ("t1", "c", 20), ("t1", "d", 80), ("t2", "z", 99)]
    {
        let doc = json!({"account": account, "balance": balance}).to_string();
        tx.put_doc(Some(tenant), "balances", account, doc).await.unwrap();
    }
    for (owner, id, text) in [("ada", "1", "ada's"), ("bob", "2", "bob's")] {
        tx.put_doc(Some("t1"), "notes", id, json!({"owner": owner, "text": text}).to_string()).await.unwrap();
    }
    tx.commit().await.unwrap();
    store
}

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

async fn router() -> Router {
    let app = App::builder().event_store(MemoryStore::new()).read_models(seeded().await).build().expect("wired");
    let layer = ContextLayer::new().jwt(JwtConfig::hs256(SECRET)).auth(cqrs_ddd_axum::AuthConfig::Optional);
    Api::new(app).context(layer).read_model::<BalanceView>().read_model::<Note>().router()
}

/// The documents of a page, without their ids and versions.
fn documents(items: &Value) -> Value {
    Value::Array(items.as_array().map(|a| a.iter().map(|i| i["document"].clone()).collect()).unwrap_or_default())
}

fn accounts(a: &Answer) -> Vec<&str> {
    a.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {a:?}"))
        .iter()
        .map(|i| i["document"]["account"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn documents_are_filtered_sorted_and_paged_for_the_tenant() {
    let router = router().await;
    let t1 = [("x-tenant-id", "t1")];
    let a = call(&router, get("/read-models/balances?filter=balance:gte:10&sort=-balance&limit=2", &t1)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(accounts(&a), ["d", "b"]);
    let next = a.body["next"].as_str().expect("a next page").to_owned();
    let path = format!("/read-models/balances?filter=balance:gte:10&sort=-balance&limit=2&cursor={next}");
    let a = call(&router, get(&path, &t1)).await;
    assert_eq!(accounts(&a), ["c"], "{a:?}");
    assert_eq!(a.body["next"], Value::Null, "the last page: {a:?}");

    let a = call(&router, get("/read-models/balances?fields=account&sort=account&limit=1", &t1)).await;
    assert_eq!(documents(&a.body["items"]), json!([{"account": "a"}]), "{a:?}");
    assert_eq!(a.body["items"][0]["id"], "a", "{a:?}");

    let a = call(&router, get("/read-models/balances", &[("x-tenant-id", "t2")])).await;
    assert_eq!(accounts(&a), ["z"], "another tenant sees its own documents only");
}

#[tokio::test]
async fn filters_that_cannot_be_answered_are_400_naming_the_mistake() {
    let router = router().await;
    let t1 = [("x-tenant-id", "t1")];
    let a = call(&router, get("/read-models/balances?filter=balanse:gte:10", &t1)).await;
    a.assert_problem(400, "invalid-filter");
    assert!(a.body["detail"].as_str().unwrap().contains("did you mean `balance`"), "{a:?}");
    call(&router, get("/read-models/balances?filter=balance:like:1", &t1)).await.assert_problem(400, "invalid-filter");
    call(&router, get("/read-models/balances?limit=0", &t1)).await.assert_problem(400, "invalid-filter");
    call(&router, get("/read-models/balances?sort=-balance&cursor=garbage", &t1))
        .await
        .assert_problem(400, "invalid-filter");
}

#[tokio::test]
async fn owned_read_models_show_each_principal_their_own_within_a_tenant() {
    let router = router().await;
    let ada = token(Algorithm::HS256, &EncodingKey::from_secret(SECRET), None, &claims("ada", json!({"tenant": "t1"})));
    let a = call(&router, get("/read-models/notes", &[("authorization", &bearer(&ada))])).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(documents(&a.body["items"]), json!([{"owner": "ada", "text": "ada's"}]));
    // Asking for someone else's adds to the owner constraint, it does not replace it.
    let a = call(&router, get("/read-models/notes?filter=owner:eq:bob", &[("authorization", &bearer(&ada))])).await;
    assert_eq!(a.body["items"], json!([]), "{a:?}");
    call(&router, get("/read-models/notes", &[("x-tenant-id", "t1")])).await.assert_problem(401, "unauthorized");
    let anyone = token(Algorithm::HS256, &EncodingKey::from_secret(SECRET), None, &claims("ada", json!({})));
    call(&router, get("/read-models/notes", &[("authorization", &bearer(&anyone))]))
        .await
        .assert_problem(403, "tenant");
}

fn lagging_app() -> cqrs_ddd::Mediator {
    App::builder()
        .event_store(MemoryStore::new())
        .read_models(MemoryProjectionStore::new())
        .projection(Balances)
        .build()
        .expect("wired")
}

#[tokio::test]
async fn a_query_waits_for_its_read_models_to_reach_the_position_of_a_command() {
    let app = lagging_app();
    let router = Api::new(app.clone()).commands().queries().router();
    let sent = call(&router, post("/commands/Deposit", r#"{"account": "r", "amount": 70}"#, &[])).await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    let position = sent.header("x-cqrs-position").expect("the command committed").to_owned();

    // No worker runs yet: the read model does not show the deposit.
    let stale = call(&router, get("/queries/BalanceOf?account=r", &[])).await;
    assert_eq!((stale.status, &stale.body), (StatusCode::OK, &Value::Null), "{stale:?}");

    let waiting = {
        let router = router.clone();
        let headers = [("x-cqrs-min-position", position.clone()), ("x-cqrs-wait-ms", "30000".to_owned())];
        tokio::spawn(async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call(&router, get("/queries/BalanceOf?account=r", &headers)).await
        })
    };
    // The projection starts late; the waiting query sees the deposit once it has run.
    tokio::task::yield_now().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn({
        let app = app.clone();
        async move {
            app.run(async move {
                stopped.await.ok();
            })
            .await
        }
    });
    let fresh = waiting.await.expect("the query task");
    assert_eq!(fresh.status, StatusCode::OK, "{fresh:?}");
    assert_eq!(fresh.body, json!({"account": "r", "balance": 70}), "{fresh:?}");
    stop.send(()).ok();
    host.await.expect("the host task").expect("the host stops cleanly");
}

#[tokio::test]
async fn a_position_not_reached_in_time_is_503_with_retry_after() {
    let router = Api::new(lagging_app()).commands().queries().router();
    let headers = [("x-cqrs-min-position", "1000000"), ("x-cqrs-wait-ms", "50")];
    let a = call(&router, get("/queries/BalanceOf?account=r", &headers)).await;
    a.assert_problem(503, "timeout");
    assert!(a.header("retry-after").is_some(), "{a:?}");
    let a = call(&router, get("/queries/BalanceOf?account=r", &[("x-cqrs-min-position", "soon")])).await;
    a.assert_problem(400, "bad-request");
}

#[tokio::test]
async fn the_api_answers_over_a_loopback_socket() {
    let app = lagging_app();
    let router = Api::new(app.clone()).commands().queries().read_model::<BalanceView>().health().openapi().router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port on 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                stopped.await.ok();
            })
            .await
    });
    let (stop_host, host_stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn({
        let app = app.clone();
        async move {
            app.run(async move {
                host_stopped.await.ok();
            })
            .await
        }
    });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();

    let sent = client
        .post(format!("{base}/commands/Deposit"))
        .header("x-correlation-id", "0195a4d2-7c1e-7cc1-9a55-3d0bf51a2f12")
        .json(&json!({"account": "s", "amount": 42}))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(sent.status(), 200);
    assert_eq!(sent.headers()["x-correlation-id"], "0195a4d2-7c1e-7cc1-9a55-3d0bf51a2f12");
    let position = sent.headers()["x-cqrs-position"].to_str().unwrap().to_owned();
    let receipt: Value = sent.json().await.unwrap();
    assert_eq!(receipt["position"], position.as_str());

    let balance: Value = client
        .get(format!("{base}/queries/BalanceOf?account=s"))
        .header("x-cqrs-min-position", &position)
        .header("x-cqrs-wait-ms", "30000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance, json!({"account": "s", "balance": 42}));
    let page: Value = client.get(format!("{base}/read-models/balances")).send().await.unwrap().json().await.unwrap();
    assert_eq!(documents(&page["items"]), json!([{"account": "s", "balance": 42}]));
    let problem = client
        .post(format!("{base}/commands/Withdraw"))
        .json(&json!({"account": "s", "amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem.status(), 422);
    assert_eq!(problem.headers()["content-type"], "application/problem+json");
    let live = client.get(format!("{base}/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let doc: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/commands/Deposit"]["post"].is_object(), "{doc}");

    stop.send(()).ok();
    server.await.unwrap().expect("the server stops cleanly");
    stop_host.send(()).ok();
    host.await.unwrap().expect("the host stops cleanly");
}
