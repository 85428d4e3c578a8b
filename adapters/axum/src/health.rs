//! Health endpoints: `GET /health/live` and `GET /health/ready`.
//!
//! Both answer the runtime's [`HealthReport`] as JSON (`{"status": "up", "checks": [..]}`),
//! with 200 when it is ready ([`HealthReport::is_ready`]: no check is down) and 503
//! otherwise, never cached. Liveness reads the workers' states only (no I/O), so an
//! orchestrator restarts the process only when a worker has stopped; readiness runs every
//! check (stores, brokers, workers), each bounded in time by the runtime
//! ([`cqrs_ddd::health::HealthThresholds`]), so a load balancer stops sending traffic
//! while the database is unreachable.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_ddd::health::HealthReport;

use crate::extract::Application;

/// The report as a response: 200 when ready, else 503.
pub fn report_response(report: &HealthReport) -> Response {
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, Json(report)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /health/live`.
pub(crate) async fn live(Application(app): Application) -> Response {
    report_response(&app.liveness())
}

/// `GET /health/ready`.
pub(crate) async fn ready(Application(app): Application) -> Response {
    report_response(&app.health().await)
}
