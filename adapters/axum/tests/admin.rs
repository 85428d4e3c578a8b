//! The admin page's JSON API, called in process: who may call it, what its listings
//! show of an application on the in-memory stores, one tenant's view, the actions
//! (rebuild, dead letters, outbox, sagas, scheduled commands) and the answers to names
//! that do not exist or input that is not what it should be.

mod admin_app;
mod common;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use admin_app::*;
use axum::Router;
use axum::http::StatusCode;
use common::*;
use cqrs_ddd::RequestContext;
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::WorkerOptions;
use cqrs_ddd_axum::admin::AdminPage;
use cqrs_ddd_axum::{Api, AuthConfig, ContextLayer, JwtConfig};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;

// ---- what the application holds besides the bank of `common` ---------------------------

/// Totals deposits, each apply waiting for a permit of `gate`: a rebuild that stays
/// running until the test lets it go on.
struct Gated {
    gate: Arc<Semaphore>,
}

#[projection(name = "gated")]
impl Gated {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let _open = self.gate.acquire().await.map_err(Error::handler)?;
        let amount = e.amount;
        tx.docs("gated").update(&e.header.stream_id, |total: &mut u64| *total += amount).await?;
        Ok(())
    }
}

struct Bank {
    app: Mediator,
    router: Router,
    fault: Arc<AtomicBool>,
    gate: Arc<Semaphore>,
    payments: Arc<Payments>,
}

/// 20 deposits of no tenant over four accounts (one of them unlucky: a dead letter of
/// `picky`), 3 of tenant `t1`, 2 of `t2`; projections
/// `picky`, `balances` (every tenant), `balances@t1` and `gated`.
async fn bank() -> Bank {
    let fault = Arc::new(AtomicBool::new(true));
    let gate = Arc::new(Semaphore::new(0));
    let payments = Arc::new(Payments::default());
    let small = || WorkerOptions { batch_size: 5, ..WorkerOptions::default() };
    let app = builder(&fault, &payments)
        .projection_with(Balances, small())
        .projection_with(Balances, WorkerOptions { tenant: Some("t1".into()), ..small() })
        .projection_with(Gated { gate: gate.clone() }, small())
        .build()
        .expect("wired");
    deposits(&app, 20, 4, 7).await;
    for (tenant, account, times) in [("t1", "t1-acc", 3), ("t2", "t2-acc", 2)] {
        as_tenant(tenant, async {
            for _ in 0..times {
                app.send(Deposit { account: account.into(), amount: 5 }).await.unwrap();
            }
        })
        .await;
    }
    app.projection("picky").unwrap().catch_up(|_| ControlFlow::Continue(())).await.unwrap();
    let router = router(app.clone(), AdminPage::new());
    Bank { app, router, fault, gate, payments }
}

async fn as_tenant<T>(tenant: &str, work: impl Future<Output = T>) -> T {
    RequestContext { tenant_id: Some(tenant.to_owned()), ..RequestContext::new() }.scope(work).await
}

impl Bank {
    async fn get(&self, path: &str) -> Answer {
        self.get_as(path, &admin_token(None)).await
    }

    async fn get_as(&self, path: &str, token: &str) -> Answer {
        call(&self.router, get(path, &[("authorization", &bearer(token))])).await
    }

    async fn post(&self, path: &str, body: &str) -> Answer {
        self.post_as(path, body, &admin_token(None)).await
    }

    async fn post_as(&self, path: &str, body: &str, token: &str) -> Answer {
        call(&self.router, post(path, body, &[("authorization", &bearer(token))])).await
    }
}

#[track_caller]
fn assert_ok(a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{a:?}");
}

fn items(a: &Answer) -> &[Value] {
    a.body.as_array().map_or(&[], Vec::as_slice)
}

fn texts<'a>(a: &'a Answer, field: &str) -> Vec<&'a str> {
    items(a).iter().map(|v| v[field].as_str().unwrap_or_default()).collect()
}

// ---- the page ------------------------------------------------------------------------

#[tokio::test]
async fn the_page_needs_no_token_and_holds_no_data() {
    let bank = bank().await;
    let a = call(&bank.router, get("/admin", &[])).await;
    assert_eq!(a.status, StatusCode::OK, "the context layer requires tokens, but not for the page");
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    let policy = a.header("content-security-policy").expect("a content security policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'sha256-"), "{policy}");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let html = a.body.as_str().expect("an HTML document");
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(r#"data-testid="projections""#));
    for data in ["a-1", "t1-acc", "picky", "balances"] {
        assert!(!html.contains(data), "the page carries no data, yet `{data}` is in it");
    }
    for outside in ["http://", "https://", "//cdn"] {
        assert!(!html.contains(outside), "the page fetches nothing from elsewhere, yet names `{outside}`");
    }
}

// ---- who may call the API ------------------------------------------------------------

#[tokio::test]
async fn the_api_needs_a_verified_principal_with_the_role() {
    let bank = bank().await;
    let path = "/admin/api/projections";

    // The context layer refuses a request without a token before the admin API sees it.
    let a = call(&bank.router, get(path, &[])).await;
    a.assert_problem(401, "unauthorized");

    // Where tokens are optional, the admin API refuses a request without one itself, and
    // a token without `sub` names no principal.
    let optional = Api::new(bank.app.clone())
        .context(ContextLayer::new().jwt(JwtConfig::hs256(SECRET)).auth(AuthConfig::Optional))
        .admin(AdminPage::new())
        .router();
    let a = call(&optional, get(path, &[])).await;
    a.assert_problem(401, "unauthorized");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let nobody = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"roles": ["admin"], "exp": now() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    call(&optional, get(path, &[("authorization", &bearer(&nobody))])).await.assert_problem(401, "unauthorized");

    // A principal without the role is forbidden, as an array or a spaced string.
    for roles in [json!(["dev"]), json!("dev ops"), json!("administrator"), json!(null)] {
        let a = bank.get_as(path, &token_with("eve", json!({"roles": roles}))).await;
        a.assert_problem(403, "forbidden");
        assert!(a.body["detail"].as_str().unwrap().contains("`eve`"), "{a:?}");
    }
    a_forbidden_action_does_nothing(&bank).await;

    // With it, the listing answers.
    for roles in [json!(["dev", "admin"]), json!("dev admin")] {
        let a = bank.get_as(path, &token_with("ada", json!({"roles": roles}))).await;
        assert_ok(&a, StatusCode::OK);
    }

    // Another role, in another claim; or a check of one's own.
    let ops = router(bank.app.clone(), AdminPage::new().role("ops").role_claim("groups"));
    let t = token_with("ada", json!({"groups": "ops"}));
    assert_eq!(call(&ops, get(path, &[("authorization", &bearer(&t))])).await.status, StatusCode::OK);
    let t = token_with("ada", json!({"roles": ["admin"]}));
    call(&ops, get(path, &[("authorization", &bearer(&t))])).await.assert_problem(403, "forbidden");
    let only_ada = router(bank.app.clone(), AdminPage::new().authorize(|c| c.get("sub") == Some(&json!("ada"))));
    let ada = token_with("ada", json!({}));
    assert_eq!(call(&only_ada, get(path, &[("authorization", &bearer(&ada))])).await.status, StatusCode::OK);
    let eve = token_with("eve", json!({"roles": ["admin"]}));
    call(&only_ada, get(path, &[("authorization", &bearer(&eve))])).await.assert_problem(403, "forbidden");
}

async fn a_forbidden_action_does_nothing(bank: &Bank) {
    let eve = token_with("eve", json!({"roles": ["dev"]}));
    let letters = bank.app.projection("picky").unwrap().dead_letters().await.unwrap();
    let path = format!("/admin/api/projections/picky/dead-letters/{}/skip", letters[0].event_id);
    bank.post_as(&path, "", &eve).await.assert_problem(403, "forbidden");
    assert_eq!(bank.app.projection("picky").unwrap().dead_letters().await.unwrap().len(), 1);
}

// ---- listings ------------------------------------------------------------------------

#[tokio::test]
async fn listings_show_what_the_application_holds() {
    let bank = bank().await;

    let a = bank.get("/admin/api/me").await;
    assert_eq!(a.body, json!({"principal": "ops", "tenant": null}));
    assert_eq!(a.header("cache-control"), Some("no-store"), "what operators read is not kept");

    let a = bank.get("/admin/api/projections").await;
    assert_ok(&a, StatusCode::OK);
    assert_eq!(texts(&a, "scope"), ["picky", "balances", "balances@t1", "gated"]);
    let picky = &items(&a)[0];
    assert_eq!(picky["lag"], 0, "{picky}");
    assert_eq!(picky["dead_letters"], 1, "{picky}");
    assert_eq!(picky["checkpoints"], json!(["25"]), "{picky}");
    assert_eq!(items(&a)[1]["lag"], 25, "never ran: {a:?}");
    assert_eq!(items(&a)[1]["checkpoints"], json!([null]));
    let a = bank.get("/admin/api/projections/balances@t1").await;
    assert_eq!((a.body["name"].as_str(), a.body["tenant"].as_str()), (Some("balances"), Some("t1")), "{a:?}");

    let a = bank.get("/admin/api/projections/picky/dead-letters").await;
    assert_eq!(items(&a).len(), 1, "{a:?}");
    let letter = &items(&a)[0];
    assert_eq!(letter["event_type"], "Deposited");
    assert_eq!((letter["stream_type"].as_str(), letter["stream_id"].as_str()), (Some("Account"), Some("a-3")));
    assert_eq!(letter["payload"], json!({"amount": UNLUCKY}));
    assert!(letter["error"].as_str().unwrap().contains("unlucky"), "{letter}");

    let a = bank.get("/admin/api/events?limit=3").await;
    assert_eq!(texts(&a, "cursor"), ["23", "24", "25"], "the newest, oldest first");
    assert_eq!(texts(&a, "tenant"), ["t1", "t2", "t2"]);
    let a = bank.get("/admin/api/events?after=18&limit=2").await;
    assert_eq!(texts(&a, "cursor"), ["19", "20"]);
    assert_eq!(items(&a)[0]["payload"], json!({"amount": 1}));

    let a = bank.get("/admin/api/streams/Account/a-3").await;
    assert_eq!(items(&a).len(), 5, "{a:?}");
    assert_eq!(items(&a)[1]["payload"], json!({"amount": UNLUCKY}));

    let a = bank.get("/admin/api/tenants").await;
    assert_eq!(a.body, json!(["t1", "t2"]));

    let a = bank.get("/admin/api/outbox").await;
    assert_eq!(a.body, json!({"pending": 25, "dead": 0}), "every deposit goes through the outbox");
    let a = bank.get("/admin/api/outbox/pending?limit=2").await;
    assert_eq!(texts(&a, "event_type"), ["Deposited", "Deposited"]);
    assert_eq!(bank.get("/admin/api/outbox/dead").await.body, json!([]));

    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    bank.app.schedule(&Reserve { account: "a-1".into() }, due).await.unwrap();
    let a = bank.get("/admin/api/schedules").await;
    assert_eq!(texts(&a, "command_type"), ["Reserve"]);
    assert_eq!(items(&a)[0]["payload"], json!({"account": "a-1"}));
    assert_eq!(bank.get("/admin/api/schedules?dead=true").await.body, json!([]));
}

#[tokio::test]
async fn a_tenant_s_operator_sees_and_acts_on_that_tenant_only() {
    let bank = bank().await;
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    let t1 = as_tenant("t1", bank.app.schedule(&Reserve { account: "t1-acc".into() }, due)).await.unwrap();
    let t2 = as_tenant("t2", bank.app.schedule(&Reserve { account: "t2-acc".into() }, due)).await.unwrap();
    let token = admin_token(Some("t1"));

    let a = bank.get_as("/admin/api/me", &token).await;
    assert_eq!(a.body, json!({"principal": "ops", "tenant": "t1"}));
    let a = bank.get_as("/admin/api/events?limit=50", &token).await;
    assert_eq!(texts(&a, "tenant"), ["t1", "t1", "t1"], "{a:?}");
    let a = bank.get_as("/admin/api/events?after=0&limit=50", &token).await;
    assert_eq!(texts(&a, "stream_id"), ["t1-acc", "t1-acc", "t1-acc"], "{a:?}");
    assert_eq!(bank.get_as("/admin/api/tenants", &token).await.body, json!(["t1"]));
    let a = bank.get_as("/admin/api/projections", &token).await;
    assert_eq!(texts(&a, "scope"), ["balances@t1"], "the workers that read only t1");
    bank.get_as("/admin/api/projections/picky", &token).await.assert_problem(404, "unknown-message");
    let a = bank.get_as("/admin/api/schedules", &token).await;
    assert_eq!(texts(&a, "id"), [t1.to_string()]);

    // Its streams are found by type and id; another tenant's are not.
    assert_eq!(items(&bank.get_as("/admin/api/streams/Account/t1-acc", &token).await).len(), 3);
    bank.get_as("/admin/api/streams/Account/t2-acc", &token).await.assert_problem(404, "not-found");
    bank.get_as("/admin/api/streams/Account/a-1", &token).await.assert_problem(404, "not-found");

    // It cannot cancel another tenant's command, and the header cannot widen its view.
    bank.post_as(&format!("/admin/api/schedules/{t2}/cancel"), "", &token).await.assert_problem(404, "not-found");
    let a = call(&bank.router, get("/admin/api/tenants", &[("authorization", &bearer(&token)), ("x-tenant-id", "t2")]))
        .await;
    a.assert_problem(403, "tenant");
    assert_ok(&bank.post_as(&format!("/admin/api/schedules/{t1}/cancel"), "", &token).await, StatusCode::NO_CONTENT);

    // An operator of every tenant narrows its view with the tenant header, as the page does.
    let every = admin_token(None);
    let a = call(&bank.router, get("/admin/api/events", &[("authorization", &bearer(&every)), ("x-tenant-id", "t2")]))
        .await;
    assert_eq!(texts(&a, "stream_id"), ["t2-acc", "t2-acc"], "{a:?}");
    assert_eq!(texts(&bank.get("/admin/api/schedules").await, "id"), [t2.to_string()]);
}

// ---- actions -------------------------------------------------------------------------

/// Polls the rebuild of `name` until it is no longer running (60 s at most).
async fn rebuilt(bank: &Bank, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = bank.get(&format!("/admin/api/projections/{name}/rebuild")).await;
        assert_ok(&a, StatusCode::OK);
        if a.body["running"] == false {
            return a.body;
        }
        assert!(Instant::now() < deadline, "the rebuild of `{name}` did not end within 60 s: {a:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rebuild_runs_in_the_background_reports_its_progress_and_runs_once_at_a_time() {
    let bank = bank().await;
    let path = "/admin/api/projections/gated/rebuild";
    let a = bank.get(path).await;
    assert_eq!(a.body["running"], false, "none yet: {a:?}");
    assert_eq!(a.body["percent"], 0.0);

    let a = bank.post(path, "").await;
    assert_ok(&a, StatusCode::ACCEPTED);
    assert_eq!((a.body["running"].as_bool(), a.body["percent"].as_f64()), (Some(true), Some(0.0)), "{a:?}");
    // Held at its first event by the gate: still running, and a second one is refused.
    bank.post(path, "").await.assert_problem(409, "conflict");
    let a = bank.get(path).await;
    assert_eq!((a.body["running"].as_bool(), a.body["read"].as_u64()), (Some(true), Some(0)), "{a:?}");

    bank.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let done = rebuilt(&bank, "gated").await;
    assert_eq!(done["projection"], "gated");
    assert_eq!(
        (done["read"].as_u64(), done["applied"].as_u64(), done["total"].as_u64()),
        (Some(25), Some(25), Some(25))
    );
    assert_eq!(done["percent"], 100.0);
    assert_eq!((done["stopped"].as_bool(), done["error"].as_str()), (Some(false), None), "{done}");
    let status = bank.get("/admin/api/projections/gated").await;
    assert_eq!((status.body["lag"].as_u64(), &status.body["checkpoints"]), (Some(0), &json!(["25"])), "{status:?}");

    // Once it has ended, another may start.
    assert_ok(&bank.post(path, "").await, StatusCode::ACCEPTED);
    assert_eq!(rebuilt(&bank, "gated").await["read"], 25);

    // A rebuild reads every event and applies what the projection takes: `picky`
    // dead-letters the unlucky one again.
    assert_ok(&bank.post("/admin/api/projections/picky/rebuild", "").await, StatusCode::ACCEPTED);
    let picky = rebuilt(&bank, "picky").await;
    assert_eq!((picky["read"].as_u64(), picky["applied"].as_u64()), (Some(25), Some(24)), "{picky}");
    bank.post("/admin/api/projections/nope/rebuild", "").await.assert_problem(404, "unknown-message");
    bank.get("/admin/api/projections/nope/rebuild").await.assert_problem(404, "unknown-message");
}

#[tokio::test]
async fn dead_letters_are_retried_once_fixed_or_skipped() {
    let bank = bank().await;
    let picky = bank.app.projection("picky").unwrap();
    let id = picky.dead_letters().await.unwrap()[0].event_id;
    let retry = format!("/admin/api/projections/picky/dead-letters/{id}/retry");

    // Still failing: refused, and the letter stays.
    assert_eq!(bank.post(&retry, "").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(picky.dead_letters().await.unwrap().len(), 1);

    bank.fault.store(false, Ordering::SeqCst);
    assert_ok(&bank.post(&retry, "").await, StatusCode::NO_CONTENT);
    assert_eq!(bank.get("/admin/api/projections/picky/dead-letters").await.body, json!([]));
    assert_eq!(bank.get("/admin/api/projections/picky").await.body["dead_letters"], 0);
    let doc = bank.app.read_model_store().unwrap().document("picky", "a-3").await.unwrap().expect("a-3's total");
    assert_eq!(doc.json, (4 + UNLUCKY).to_string(), "the event is applied");
    let a = bank.post(&retry, "").await;
    a.assert_problem(404, "not-found");
    assert!(a.body["detail"].as_str().unwrap().contains(&id.to_string()), "{a:?}");

    // Another one, skipped: dropped without being applied.
    bank.fault.store(true, Ordering::SeqCst);
    bank.app.send(Deposit { account: "a-3".into(), amount: UNLUCKY }).await.unwrap();
    picky.catch_up(|_| ControlFlow::Continue(())).await.unwrap();
    let id = picky.dead_letters().await.unwrap()[0].event_id;
    let skip = format!("/admin/api/projections/picky/dead-letters/{id}/skip");
    assert_ok(&bank.post(&skip, "").await, StatusCode::NO_CONTENT);
    assert!(picky.dead_letters().await.unwrap().is_empty());
    bank.post(&skip, "").await.assert_problem(404, "not-found");
    let doc = bank.app.read_model_store().unwrap().document("picky", "a-3").await.unwrap().unwrap();
    assert_eq!(doc.json, (4 + UNLUCKY).to_string(), "the skipped event is not applied");
}

#[tokio::test]
async fn dead_outbox_rows_are_put_back() {
    let bank = bank().await;
    let outbox = bank.app.outbox().unwrap();
    let rows = outbox.pending(2).await.unwrap();
    for row in &rows {
        outbox.mark_failed(row.message.id, "the broker is away", Duration::ZERO, 1).await.unwrap();
    }
    assert_eq!(bank.get("/admin/api/outbox").await.body, json!({"pending": 23, "dead": 2}));
    let a = bank.get("/admin/api/outbox/dead").await;
    assert_eq!(texts(&a, "last_error"), ["the broker is away", "the broker is away"]);
    assert_eq!(items(&a)[0]["payload"]["payload"], json!({"amount": 1}), "the event, as published");

    // One by id; an id that is not a dead row retries nothing.
    let first = rows[0].message.id;
    let stranger = Uuid::now_v7();
    let a = bank.post("/admin/api/outbox/retry", &json!({"ids": [first, stranger]}).to_string()).await;
    a.assert_problem(404, "not-found");
    assert_eq!(bank.get("/admin/api/outbox").await.body["dead"], 2);
    let a = bank.post("/admin/api/outbox/retry", &json!({"ids": [first]}).to_string()).await;
    assert_eq!(a.body, json!({"retried": 1}));
    // The rest: every dead row.
    assert_eq!(bank.post("/admin/api/outbox/retry", "").await.body, json!({"retried": 1}));
    assert_eq!(bank.get("/admin/api/outbox").await.body, json!({"pending": 25, "dead": 0}));
    assert_eq!(bank.post("/admin/api/outbox/retry", "{}").await.body, json!({"retried": 0}));

    let a = bank.post("/admin/api/outbox/retry", r#"{"ids": ["not-a-uuid"]}"#).await;
    a.assert_problem(400, "invalid-body");
}

#[tokio::test]
async fn scheduled_commands_are_listed_and_cancelled() {
    let bank = bank().await;
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    let first = bank.app.schedule(&Reserve { account: "a-1".into() }, due).await.unwrap();
    let second =
        bank.app.schedule(&Release { account: "a-2".into() }, due + chrono::Duration::minutes(1)).await.unwrap();
    assert_eq!(texts(&bank.get("/admin/api/schedules").await, "command_type"), ["Reserve", "Release"]);
    assert_eq!(texts(&bank.get("/admin/api/schedules?limit=1").await, "id"), [first.to_string()]);

    let cancel = format!("/admin/api/schedules/{first}/cancel");
    assert_ok(&bank.post(&cancel, "").await, StatusCode::NO_CONTENT);
    assert_eq!(texts(&bank.get("/admin/api/schedules").await, "id"), [second.to_string()]);
    bank.post(&cancel, "").await.assert_problem(404, "not-found");

    // One id scheduled by two tenants: an operator of every tenant must say which.
    let shared = Uuid::now_v7();
    for tenant in ["t1", "t2"] {
        as_tenant(tenant, bank.app.schedule_with_id(shared, &Reserve { account: "x".into() }, due)).await.unwrap();
    }
    let a = bank.post(&format!("/admin/api/schedules/{shared}/cancel"), "").await;
    a.assert_problem(409, "ambiguous");
    let mut candidates: Vec<&str> = a.body["candidates"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    candidates.sort_unstable();
    assert_eq!(candidates, ["tenant t1", "tenant t2"], "{a:?}");
    let t1 = admin_token(Some("t1"));
    assert_ok(&bank.post_as(&format!("/admin/api/schedules/{shared}/cancel"), "", &t1).await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn sagas_are_listed_with_their_history_retried_and_compensated() {
    let bank = bank().await;
    ask_payout(&bank.app, "p-1").await.unwrap();
    bank.payments.refuse.store(true, Ordering::SeqCst);
    let refused = ask_payout(&bank.app, "p-2").await;
    bank.payments.refuse.store(false, Ordering::SeqCst);
    ask_payout(&bank.app, "p-3").await.unwrap();
    assert_eq!(bank.payments.sent(), ["Reserve(p-1)", "Reserve(p-3)"], "{refused:?}");

    let a = bank.get("/admin/api/sagas").await;
    assert_eq!(texts(&a, "saga_id"), ["p-1", "p-2", "p-3"], "{a:?}");
    let p1 = &items(&a)[0];
    assert_eq!((p1["saga_type"].as_str(), p1["status"].as_str()), (Some("payout"), Some("running")), "{p1}");
    assert_eq!(p1["commands"][0]["command_type"], "Reserve");
    assert_eq!(p1["commands"][0]["dispatched"], true);
    assert_eq!(p1["undo"][0]["undo_type"], "Release", "{p1}");
    assert_eq!(p1["state"], json!({"asked": 1}));
    let p2 = &items(&a)[1];
    assert_eq!(p2["status"], "failed", "{p2}");
    assert!(p2["error"].as_str().unwrap_or_default().contains("the bank is closed"), "{p2}");
    let a = bank.get("/admin/api/sagas?status=failed").await;
    assert_eq!(texts(&a, "saga_id"), ["p-2"], "filtered by status");
    let a = bank.get("/admin/api/sagas?status=failed,running&limit=2").await;
    assert_eq!(texts(&a, "saga_id"), ["p-1", "p-2"]);
    assert_eq!(bank.get("/admin/api/sagas?status=completed").await.body, json!([]));

    // Found by id alone, or with its type.
    assert_eq!(bank.get("/admin/api/sagas/p-1").await.body["saga_id"], "p-1");
    assert_eq!(bank.get("/admin/api/sagas/p-1?type=payout").await.body["saga_id"], "p-1");
    bank.get("/admin/api/sagas/p-9").await.assert_problem(404, "not-found");
    bank.get("/admin/api/sagas/p-1?type=other").await.assert_problem(404, "not-found");

    // Compensated by hand, with a reason: its undo stack is sent.
    let a = bank.post("/admin/api/sagas/p-3/compensate?type=payout", r#"{"reason": "the customer withdrew"}"#).await;
    assert_eq!(a.body["status"], "compensated", "{a:?}");
    assert!(a.body["error"].as_str().unwrap().contains("the customer withdrew"), "{a:?}");
    assert_eq!(bank.payments.sent().last().map(String::as_str), Some("Release(p-3)"));

    // A compensation that is refused leaves the saga failed with it unsent; retried by
    // hand once the cause is gone, it goes out.
    bank.payments.refuse.store(true, Ordering::SeqCst);
    let a = bank.post("/admin/api/sagas/p-1/compensate", "").await;
    assert_eq!((a.status, a.body["status"].as_str()), (StatusCode::OK, Some("failed")), "{a:?}");
    assert!(a.body["error"].as_str().unwrap().contains("compensated by `ops` from the admin page"), "{a:?}");
    let release = &a.body["commands"][1];
    assert_eq!((release["command_type"].as_str(), release["dispatched"].as_bool()), (Some("Release"), Some(false)));
    bank.payments.refuse.store(false, Ordering::SeqCst);
    let p1 = bank.get("/admin/api/sagas/p-1").await.body;
    assert_eq!(p1["status"], "failed", "{p1}");
    assert!(p1["error"].as_str().unwrap().contains("Release"), "{p1}");
    let a = bank.post("/admin/api/sagas/p-1/retry", "").await;
    assert_eq!(a.body["status"], "compensated", "{a:?}");
    assert_eq!(bank.payments.sent().last().map(String::as_str), Some("Release(p-1)"));
}

// ---- names that do not exist, input that is not what it should be ---------------------

#[tokio::test]
async fn unknown_names_and_hostile_input_are_problems() {
    let bank = bank().await;
    bank.get("/admin/api/projections/nope").await.assert_problem(404, "unknown-message");
    bank.get("/admin/api/projections/nope/dead-letters").await.assert_problem(404, "unknown-message");
    let a = bank.post("/admin/api/projections/picky/dead-letters/not-a-uuid/retry", "").await;
    a.assert_problem(400, "bad-request");
    assert!(a.body["detail"].as_str().unwrap().contains("not-a-uuid"), "{a:?}");
    let stranger = Uuid::now_v7();
    let a = bank.post(&format!("/admin/api/projections/picky/dead-letters/{stranger}/skip"), "").await;
    a.assert_problem(404, "not-found");
    let a = bank.post(&format!("/admin/api/projections/picky/dead-letters/{stranger}/explode"), "").await;
    a.assert_problem(400, "bad-request");
    assert!(a.body["detail"].as_str().unwrap().contains("expected `retry` or `skip`"), "{a:?}");
    bank.post("/admin/api/schedules/123/cancel", "").await.assert_problem(400, "bad-request");
    bank.get("/admin/api/events?after=yesterday").await.assert_problem(400, "bad-request");
    bank.get("/admin/api/events?limit=-1").await.assert_problem(400, "bad-request");
    bank.get("/admin/api/schedules?dead=maybe").await.assert_problem(400, "bad-request");
    let a = bank.get("/admin/api/sagas?status=failed,lost").await;
    a.assert_problem(400, "bad-request");
    assert!(a.body["detail"].as_str().unwrap().contains("`lost`"), "{a:?}");
    bank.get("/admin/api/streams/%FF/x").await.assert_problem(400, "bad-request");

    // Markup in a name is data: it comes back as JSON text, never interpreted.
    let hostile = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let a = bank.get(&format!("/admin/api/sagas/{hostile}")).await;
    a.assert_problem(404, "not-found");
    assert!(a.body["detail"].as_str().unwrap().contains("<script>alert(1)</script>"), "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let a = bank.get(&format!("/admin/api/streams/Account/{hostile}")).await;
    a.assert_problem(404, "not-found");

    // A huge limit is bounded, not honoured.
    assert_eq!(items(&bank.get("/admin/api/events?limit=99999999").await).len(), 25);
    bank.get("/admin/api/nothing-here").await.assert_problem(404, "no-route");
    assert_eq!(call(&bank.router, post("/admin", "", &[])).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn operators_list_count_cancel_retry_and_purge_jobs_in_their_tenant() {
    use cqrs_ddd::jobs::{JobOptions, JobWorker};
    let bank = bank().await;
    let once = JobOptions::attempts(1);
    let failed = as_tenant("t1", bank.app.enqueue_with(Statement { account: "closed".into() }, once)).await.unwrap();
    let done = as_tenant("t1", bank.app.enqueue(Statement { account: "t1-acc".into() })).await.unwrap();
    JobWorker::new(bank.app.clone()).run_once().await.unwrap();
    let later = JobOptions::default().at(chrono::Utc::now() + chrono::Duration::hours(1));
    let waiting = as_tenant("t2", bank.app.enqueue_with(Statement { account: "t2-acc".into() }, later)).await.unwrap();

    let a = bank.get("/admin/api/jobs/stats").await;
    assert_eq!(a.body, json!({"pending": 1, "running": 0, "completed": 1, "failed": 1, "cancelled": 0}));
    let a = bank.get("/admin/api/jobs?status=failed").await;
    assert_eq!(texts(&a, "id"), [failed.to_string()]);
    assert!(items(&a)[0]["error"].as_str().unwrap().contains("closed"), "{a:?}");
    assert_eq!(texts(&bank.get("/admin/api/jobs?status=completed").await, "id"), [done.to_string()]);
    assert_eq!(items(&bank.get("/admin/api/jobs?status=completed,failed&limit=1&offset=1").await).len(), 1);
    bank.get("/admin/api/jobs?status=sleepy").await.assert_problem(400, "bad-request");

    // A tenant's operator sees and acts on its tenant's jobs only.
    let token = admin_token(Some("t1"));
    let a = bank.get_as("/admin/api/jobs", &token).await;
    assert_eq!(items(&a).len(), 2, "{a:?}");
    let ids = json!({"ids": [waiting, failed]}).to_string();
    let a = bank.post_as("/admin/api/jobs/cancel", &ids, &token).await;
    assert_eq!(a.body, json!({"done": 0, "skipped": 2}), "t2's job is not t1's to cancel; a failed one is done");
    let a = bank.post_as("/admin/api/jobs/retry", &ids, &token).await;
    assert_eq!(a.body, json!({"done": 1, "skipped": 1}));
    let a = bank.post("/admin/api/jobs/cancel", &ids).await;
    assert_eq!(a.body, json!({"done": 2, "skipped": 0}), "pending both");
    let purge = json!({"before": (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339()}).to_string();
    let a = bank.post_as("/admin/api/jobs/purge", &purge, &token).await;
    assert_eq!(a.body, json!({"purged": 2}), "t1's completed and cancelled jobs");
    let a = bank.get("/admin/api/jobs").await;
    assert_eq!(texts(&a, "id"), [waiting.to_string()]);
}
