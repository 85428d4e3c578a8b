//! Health over HTTP on PostgreSQL: readiness turns 503 while the database is cut off (a
//! TCP proxy between the store and the server) and 200 again once it is back; liveness
//! needs no I/O and stays 200. A command sent while it is cut off is a 503 problem.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use common::*;
use cqrs_ddd::App;
use cqrs_ddd::testing::TcpProxy as Proxy;
use cqrs_ddd_axum::Api;
use cqrs_ddd_sqlx::{PgOptions, PgStore};

/// `DATABASE_URL` with its host and port replaced by `addr`, and the server's address.
fn through(url: &str, addr: SocketAddr) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").expect("DATABASE_URL is `postgres://user@host:port/db`");
    let (user, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (host_port, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    let upstream: SocketAddr =
        host_port.parse().unwrap_or_else(|_| panic!("the test needs DATABASE_URL on an IP address, not `{host_port}`"));
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    (format!("{scheme}://{user}{addr}/{path}"), upstream)
}

async fn ready(router: &Router) -> Answer {
    call(router, get("/health/ready", &[])).await
}

/// Asks until the answer has `status`, for 60 seconds at most.
async fn until(router: &Router, status: u16) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = ready(router).await;
        if a.status.as_u16() == status || tokio::time::Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readiness_follows_the_database_and_liveness_does_not() {
    let url = database_url();
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin =
        PgStore::connect_with(PgOptions::new(&url).schema(&schema).max_connections(2)).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at DATABASE_URL ({e}); start it (`scripts/services.sh`) or set DATABASE_URL"
            )
        });
    admin.migrate().await.expect("the schema migrates");

    let (_, upstream) = through(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(upstream).await.expect("a free port on 127.0.0.1 for the proxy");
    let (proxied, _) = through(&url, proxy.addr());
    let store = PgStore::connect_with(PgOptions::new(proxied).schema(&schema).max_connections(4))
        .await
        .expect("through the proxy");
    let app = App::builder().event_store(store).build().expect("wired");
    let router = Api::new(app).commands().health().router();

    let a = until(&router, 200).await;
    assert_eq!(a.status, 200, "ready while the database answers: {a:?}");
    assert_eq!(a.body["status"], "up");
    let sent = call(&router, post("/commands/Deposit", r#"{"account": "h", "amount": 1}"#, &[])).await;
    assert_eq!(sent.status, 200, "{sent:?}");

    proxy.cut();
    let a = until(&router, 503).await;
    assert_eq!(a.status, 503, "not ready while the database is cut off: {a:?}");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let store_check = a.body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "event_store").cloned();
    assert_eq!(store_check.map(|c| c["status"].clone()), Some("down".into()), "{a:?}");
    let live = call(&router, get("/health/live", &[])).await;
    assert_eq!(live.status, 200, "liveness does no I/O: {live:?}");
    let refused = call(&router, post("/commands/Deposit", r#"{"account": "h", "amount": 1}"#, &[])).await;
    refused.assert_problem(503, "unavailable");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");

    proxy.restore();
    let a = until(&router, 200).await;
    assert_eq!(a.status, 200, "ready again once the database is back: {a:?}");
    let sent = call(&router, post("/commands/Deposit", r#"{"account": "h", "amount": 1}"#, &[])).await;
    assert_eq!(sent.status, 200, "{sent:?}");

    drop(proxy);
    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(admin.pool()).await;
}
