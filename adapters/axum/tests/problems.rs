//! Commands and queries by name over HTTP, and every error answered as a problem.

mod common;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing;
use common::*;
use cqrs_ddd::{App, ValidationMiddleware};
use cqrs_ddd_axum::{Api, Application, Cmd, Problem};
use serde_json::json;

fn app() -> cqrs_ddd::Mediator {
    App::builder().middleware(ValidationMiddleware::new().rule::<Deposit>()).build().expect("the test domain is wired")
}

fn router() -> Router {
    Api::new(app()).commands().queries().router()
}

#[tokio::test]
async fn a_command_answers_its_response_and_position() {
    let router = router();
    let a = call(&router, post("/commands/Deposit", r#"{"account": "a-1", "amount": 70}"#, &[])).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["response"], json!(null), "{a:?}");
    let position = a.body["position"].as_str().expect("a position: the command committed an event").to_owned();
    assert_eq!(a.header("x-cqrs-position"), Some(position.as_str()));
    let q = call(&router, get("/queries/GetBalance?account=a-1", &[])).await;
    assert_eq!((q.status, &q.body), (StatusCode::OK, &json!(70)), "{q:?}");
    let q = call(&router, post("/queries/GetBalance", r#"{"account": "a-1"}"#, &[])).await;
    assert_eq!((q.status, &q.body), (StatusCode::OK, &json!(70)), "{q:?}");
}

#[tokio::test]
async fn a_command_that_commits_nothing_has_no_position() {
    let router = router();
    let a = call(&router, post("/commands/Whoami", "{}", &[("x-tenant-id", "acme")])).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["position"], json!(null));
    assert!(a.header("x-cqrs-position").is_none());
    assert_eq!(a.body["response"]["tenant"], "acme", "the handler ran in the request's tenant: {a:?}");
    assert_eq!(a.body["response"]["correlation_id"], a.header("x-correlation-id").unwrap());
}

#[tokio::test]
async fn a_malformed_body_is_400_with_the_path_of_the_field() {
    let router = router();
    let a = call(&router, post("/commands/Deposit", r#"{"account": "a", "amount": "ten"}"#, &[])).await;
    a.assert_problem(400, "invalid-body");
    assert!(a.body["detail"].as_str().unwrap().contains("expected u64"), "{a:?}");
    let a = call(&router, post("/queries/GetBalance", r#"{"account": 5}"#, &[])).await;
    a.assert_problem(400, "invalid-body");
    assert_eq!(a.body["path"], "account", "{a:?}");
    let a = call(&router, post("/commands/Deposit", r#"{"account": "a", "#, &[])).await;
    a.assert_problem(400, "invalid-body");
    assert!(a.body["detail"].as_str().unwrap().contains("not JSON"), "{a:?}");
    let a = call(&router, get("/queries/GetBalance?acount=a", &[])).await;
    a.assert_problem(400, "invalid-body");
    assert!(a.body["detail"].as_str().unwrap().contains("account"), "{a:?}");
}

#[tokio::test]
async fn a_body_of_another_media_type_is_415() {
    let router = router();
    let request = axum::http::Request::post("/commands/Deposit")
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("amount=1"))
        .unwrap();
    call(&router, request).await.assert_problem(415, "unsupported-media-type");
}

#[tokio::test]
async fn a_refused_validation_is_400() {
    let a = call(&router(), post("/commands/Deposit", r#"{"account": "a", "amount": 0}"#, &[])).await;
    a.assert_problem(400, "validation");
    assert!(a.body["detail"].as_str().unwrap().contains("above zero"), "{a:?}");
}

/// Registers a user; declared rules checked before the handler runs.
#[cqrs_ddd::command(validate)]
#[derive(serde::Deserialize, garde::Validate)]
struct Register {
    #[garde(length(min = 3))]
    name: String,
    #[garde(contains("@"))]
    email: String,
}

#[cqrs_ddd::command_handler]
async fn register(_cmd: Register) -> cqrs_ddd::Result<()> {
    Ok(())
}

#[tokio::test]
async fn a_declarative_validation_is_400_with_every_failing_field() {
    let a = call(&router(), post("/commands/Register", r#"{"name": "a", "email": "nowhere"}"#, &[])).await;
    a.assert_problem(400, "validation");
    let fields = a.body["fields"].as_array().unwrap();
    let paths: Vec<&str> = fields.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["email", "name"], "{a:?}");
    assert!(fields.iter().all(|f| !f["message"].as_str().unwrap().is_empty()));
    let ok = call(&router(), post("/commands/Register", r#"{"name": "ada", "email": "ada@example.org"}"#, &[])).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn unknown_names_are_404() {
    let router = router();
    let a = call(&router, post("/commands/Nope", "{}", &[])).await;
    a.assert_problem(404, "unknown-message");
    assert_eq!((a.body["kind"].as_str(), a.body["name"].as_str()), (Some("command"), Some("Nope")));
    call(&router, get("/queries/Nope", &[])).await.assert_problem(404, "unknown-message");
    // Paths and methods nothing serves are problems too, with the correlation id.
    let a = call(&router, get("/nothing/here", &[])).await;
    a.assert_problem(404, "no-route");
    assert!(a.headers.contains_key("x-correlation-id"), "{a:?}");
    call(&router, get("/commands/Deposit", &[])).await.assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn a_missing_aggregate_is_404() {
    let a = call(&router(), post("/commands/Withdraw", r#"{"account": "nobody", "amount": 1}"#, &[])).await;
    a.assert_problem(404, "not-found");
    call(&router(), get("/queries/GetBalance?account=nobody", &[])).await.assert_problem(404, "not-found");
}

#[tokio::test]
async fn conflicts_are_409() {
    let router = router();
    call(&router, post("/commands/Fail", r#"{"how": "conflict"}"#, &[])).await.assert_problem(409, "conflict");
    let ok = call(&router, post("/commands/Open", r#"{"account": "o", "initial": 1}"#, &[])).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    call(&router, post("/commands/Open", r#"{"account": "o", "initial": 1}"#, &[]))
        .await
        .assert_problem(409, "already-exists");
}

#[tokio::test]
async fn an_idempotency_key_sends_once_and_a_repeat_is_409() {
    let router = router();
    let key = [("idempotency-key", "0195a4d2-7c1e-7cc1-9a55-3d0bf51a2f10")];
    let first = call(&router, post("/commands/Deposit", r#"{"account": "i", "amount": 5}"#, &key)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let again = call(&router, post("/commands/Deposit", r#"{"account": "i", "amount": 5}"#, &key)).await;
    again.assert_problem(409, "already-processed");
    let q = call(&router, get("/queries/GetBalance?account=i", &[])).await;
    assert_eq!(q.body, json!(5), "the repeat wrote nothing: {q:?}");
    call(&router, post("/commands/Deposit", r#"{"account": "i", "amount": 5}"#, &[("idempotency-key", "7")]))
        .await
        .assert_problem(400, "bad-request");
}

#[tokio::test]
async fn a_domain_error_is_422_with_its_type_and_fields() {
    let router = router();
    call(&router, post("/commands/Deposit", r#"{"account": "d", "amount": 3}"#, &[])).await;
    let a = call(&router, post("/commands/Withdraw", r#"{"account": "d", "amount": 10}"#, &[])).await;
    a.assert_problem(422, "domain");
    assert_eq!(a.body["error"], "AccountError", "{a:?}");
    assert_eq!(a.body["detail"], "insufficient funds: the balance is 3, 10 was asked");
    assert_eq!(a.body["fields"], json!({"Overdraft": {"balance": 3, "asked": 10}}), "{a:?}");
}

#[tokio::test]
async fn a_store_failure_is_503_with_retry_after_and_no_internals() {
    let a = call(&router(), post("/commands/Fail", r#"{"how": "store"}"#, &[])).await;
    a.assert_problem(503, "unavailable");
    assert!(a.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{a:?}");
    assert!(!a.body.to_string().contains("secret internals"), "{a:?}");
}

#[tokio::test]
async fn any_other_failure_is_500_without_its_cause() {
    let a = call(&router(), post("/commands/Fail", r#"{"how": "other"}"#, &[])).await;
    a.assert_problem(500, "internal");
    assert!(!a.body.to_string().contains("private details"), "{a:?}");
}

#[tokio::test]
async fn tenant_errors_are_403() {
    call(&router(), post("/commands/Fail", r#"{"how": "tenant"}"#, &[])).await.assert_problem(403, "tenant");
    call(&router(), post("/commands/Whoami", "{}", &[("x-tenant-id", "")])).await.assert_problem(403, "tenant");
}

#[tokio::test]
async fn the_correlation_id_is_taken_from_the_request_or_its_trace() {
    let router = router();
    let id = "0195a4d2-7c1e-7cc1-9a55-3d0bf51a2f11";
    let a = call(&router, post("/commands/Whoami", "{}", &[("x-correlation-id", id)])).await;
    assert_eq!(a.header("x-correlation-id"), Some(id));
    assert_eq!(a.body["response"]["correlation_id"], id);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let a =
        call(&router, post("/commands/Whoami", "{}", &[("traceparent", traceparent), ("x-correlation-id", id)])).await;
    assert_eq!(a.header("x-correlation-id"), Some("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"), "the trace id wins: {a:?}");
    let a = call(&router, post("/commands/Whoami", "{}", &[("x-correlation-id", "not-a-uuid")])).await;
    a.assert_problem(400, "bad-request");
    let a = call(&router, post("/commands/Nope", "{}", &[("x-correlation-id", id)])).await;
    assert_eq!(a.header("x-correlation-id"), Some(id), "errors echo it too");
}

#[derive(serde::Deserialize)]
struct DepositBody {
    amount: u64,
}

async fn deposit(
    Application(app): Application,
    Path(account): Path<String>,
    Cmd(body): Cmd<DepositBody>,
) -> Result<StatusCode, Problem> {
    app.send(Deposit { account, amount: body.amount }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tokio::test]
async fn typed_routes_call_the_application_with_the_same_problems() {
    let router = Api::new(app()).queries().route("/accounts/{id}/deposits", routing::post(deposit)).router();
    let a = call(&router, post("/accounts/t-1/deposits", r#"{"amount": 12}"#, &[])).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    assert!(a.header("x-correlation-id").is_some());
    assert_eq!(call(&router, get("/queries/GetBalance?account=t-1", &[])).await.body, json!(12));
    let a = call(&router, post("/accounts/t-1/deposits", r#"{"amount": -1}"#, &[])).await;
    a.assert_problem(400, "invalid-body");
    assert_eq!(a.body["path"], "amount");
    let a = call(&router, post("/accounts/t-1/deposits", r#"{"amount": 0}"#, &[])).await;
    a.assert_problem(400, "validation");
}
