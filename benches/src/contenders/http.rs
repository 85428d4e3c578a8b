//! Scenario 18: commands over HTTP, on loopback, driven by `wrk` (Debian's `wrk`).
//!
//! Both contenders serve the in-memory application of the other scenarios with axum 0.8
//! on 127.0.0.1 and answer `POST` of a JSON `Deposit` (a random account of 100,000 per
//! request, so commands rarely meet on one aggregate):
//!
//! - cqrs-ddd: `cqrs-ddd-axum`'s router, `POST /commands/Deposit`: the context layer
//!   (correlation id, tenant header, a `tracing` span), the command decoded by name, the
//!   answer with the position it committed, errors as problem+json;
//! - axum by hand: one route decoding `Json<Deposit>` and calling `app.send`.
//!
//! Both retry a command that meets a version conflict (two requests on one account).
//! `wrk` runs 2 threads and 32 connections for the cell's duration; its requests per
//! second are the figure. `wrk` shares the 2 cores with the server, the same for both.

use std::process::Stdio;
use std::time::Duration;

use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::routing::post;
use cqrs_ddd::RetryPolicy;
use cqrs_ddd::prelude::*;
use cqrs_ddd_axum::Api;

use crate::domain::ours::Deposit;
use crate::error::BenchError;
use crate::measure::Outcome;
use crate::scenarios::{HTTP_COMMANDS, Workload};

const ME: &str = "cqrs-ddd";
const BY_HAND: &str = "axum";

/// The request `wrk` sends: a deposit to one of 100,000 accounts.
const SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, string.format('{"account":"acc-%d","amount":1}', math.random(1, 100000)))
end
"#;

/// The adapter's router.
pub(crate) async fn ours(w: &Workload) -> Result<Outcome, BenchError> {
    let app = App::builder()
        .retry_on_conflict(RetryPolicy::retries(5))
        .build()
        .map_err(|e| BenchError::framework(ME, "build", e))?;
    let router = Api::new(app).commands().router();
    serve_and_load(router, "/commands/Deposit", w).await
}

/// A route written by hand.
pub(crate) async fn by_hand(w: &Workload) -> Result<Outcome, BenchError> {
    let app = App::builder()
        .retry_on_conflict(RetryPolicy::retries(5))
        .build()
        .map_err(|e| BenchError::framework(BY_HAND, "build", e))?;
    let router = axum::Router::new().route("/deposit", post(deposit)).with_state(app);
    serve_and_load(router, "/deposit", w).await
}

async fn deposit(State(app): State<Mediator>, Json(cmd): Json<Deposit>) -> Result<StatusCode, (StatusCode, String)> {
    app.send(cmd).await.map(|()| StatusCode::OK).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn serve_and_load(router: axum::Router, path: &str, w: &Workload) -> Result<Outcome, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| BenchError::io("bind", e))?;
    let addr = listener.local_addr().map_err(|e| BenchError::io("local address", e))?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let script = std::env::temp_dir().join(format!("cqrs_ddd_bench_wrk_{}.lua", std::process::id()));
    std::fs::write(&script, SCRIPT).map_err(|e| BenchError::io("the wrk script", e))?;
    let secs = if w.quick { 3 } else { 8 };
    // A short warm-up, then the timed run.
    wrk(&script, &format!("http://{addr}{path}"), 1).await?;
    let rate = wrk(&script, &format!("http://{addr}{path}"), secs).await;
    let _ = std::fs::remove_file(&script);
    server.abort();
    let rate = rate?;
    let mut outcome = Outcome::default();
    outcome.figure(HTTP_COMMANDS, rate);
    Ok(outcome)
}

/// Runs `wrk` against `url` for `secs` seconds; its requests per second.
async fn wrk(script: &std::path::Path, url: &str, secs: u64) -> Result<f64, BenchError> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(secs + 30), out)
        .await
        .map_err(|_| BenchError::Usage("wrk did not finish".to_owned()))?
        .map_err(|e| BenchError::Usage(format!("cannot run `wrk` ({e}); install it: apt-get install wrk")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Usage(format!("wrk failed: {text} {}", String::from_utf8_lossy(&out.stderr))));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        return Err(BenchError::Usage(format!("the server refused requests: {line}")));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| BenchError::Usage(format!("no `Requests/sec` in wrk's output: {text}")))
}
