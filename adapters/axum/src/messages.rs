//! Commands and queries by name: `POST /commands/{name}`, `GET` and `POST /queries/{name}`.
//!
//! - `POST /commands/{name}` decodes the JSON body into the command registered under
//!   `name` and sends it ([`Mediator::send_json`]); the answer is
//!   `{"position": <position or null>, "response": <json>}`, with the header
//!   `x-cqrs-position` when the command committed events. A position is a
//!   [`Cursor`]'s text form, `42` or `7301.42` (commit key and position, on PostgreSQL):
//!   pass it back as it is. An `Idempotency-Key` header (a
//!   UUID) sends the command at most once per key; a repeat is a 409
//!   ([`crate::problem::ALREADY_PROCESSED`]).
//! - `GET /queries/{name}?field=value&..` decodes the query string into the query,
//!   `POST /queries/{name}` the JSON body; the answer is the query's response.
//! - Read your own writes: a query with `x-cqrs-min-position: N` waits until the read
//!   models it reads have reached position `N` (the `x-cqrs-position` of the command
//!   just sent), for `x-cqrs-wait-ms` milliseconds at most (5000 by default, capped at
//!   30000), then answers; a wait that runs out is a 503 ([`crate::problem::TIMEOUT`])
//!   with `Retry-After`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use cqrs_ddd::Mediator;
use cqrs_ddd::cqrs::{Payload, SendOptions};
use cqrs_ddd::domain::Cursor;
use uuid::Uuid;

use crate::extract::{Application, json_text, require_json};
use crate::problem::Problem;

/// The response header with the position a command committed.
pub const POSITION: &str = "x-cqrs-position";
/// The request header asking a query to wait until its read models reach a position.
pub const MIN_POSITION: &str = "x-cqrs-min-position";
/// The request header bounding that wait, in milliseconds.
pub const WAIT_MS: &str = "x-cqrs-wait-ms";
/// The request header that sends a command at most once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long a query waits for its read models when `x-cqrs-wait-ms` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// The longest wait a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Problem> {
    headers
        .get(name)
        .map(|v| v.to_str().map(str::trim).map_err(|_| Problem::bad_request(format!("`{name}` is not text"))))
        .transpose()
}

/// The `Idempotency-Key` of a request, if any.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<Uuid>, Problem> {
    header_text(headers, IDEMPOTENCY_KEY)?
        .map(|v| Uuid::try_parse(v).map_err(|_| Problem::bad_request("`Idempotency-Key` must be a UUID")))
        .transpose()
}

/// The position and the wait a query asks for, if any.
pub(crate) fn min_position(headers: &HeaderMap) -> Result<Option<(Cursor, Duration)>, Problem> {
    let Some(position) = header_text(headers, MIN_POSITION)? else { return Ok(None) };
    let position = position
        .parse::<Cursor>()
        .map_err(|e| Problem::bad_request(format!("`{MIN_POSITION}` takes the `{POSITION}` of a command: {e}")))?;
    let wait = match header_text(headers, WAIT_MS)? {
        Some(ms) => Duration::from_millis(
            ms.parse::<u64>()
                .map_err(|_| Problem::bad_request(format!("`{WAIT_MS}` takes milliseconds (a whole number)")))?,
        )
        .min(MAX_WAIT),
        None => DEFAULT_WAIT,
    };
    Ok(Some((position, wait)))
}

/// What `POST /commands/{name}` answers.
#[derive(serde::Serialize)]
struct Answer<'a> {
    position: Option<&'a str>,
    response: &'a serde_json::Value,
}

/// `POST /commands/{name}`.
pub(crate) async fn send_command(
    Application(app): Application,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_json(&headers)?;
    let idempotency_key = idempotency_key(&headers)?;
    let json = json_text(&body)?;
    let receipt = app.send_json(&name, Payload::Json(json), SendOptions { metadata: None, idempotency_key }).await?;
    let position = receipt.position.map(|p| p.to_string());
    let mut response = Json(Answer { position: position.as_deref(), response: &receipt.response }).into_response();
    if let Some(value) = position.and_then(|p| HeaderValue::from_str(&p).ok()) {
        response.headers_mut().insert(POSITION, value);
    }
    Ok(response)
}

async fn answer(app: &Mediator, name: &str, headers: &HeaderMap, payload: Payload<'_>) -> Result<Response, Problem> {
    if let Some((position, wait)) = min_position(headers)? {
        app.wait_for_position(name, position, wait).await?;
    }
    let answer = app.query_json(name, payload, None).await?;
    Ok(Json(answer).into_response())
}

/// `GET /queries/{name}?..`.
pub(crate) async fn get_query(
    Application(app): Application,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    answer(&app, &name, &headers, Payload::Form(query.as_deref().unwrap_or_default())).await
}

/// `POST /queries/{name}`.
pub(crate) async fn post_query(
    Application(app): Application,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_json(&headers)?;
    let json = json_text(&body)?;
    answer(&app, &name, &headers, Payload::Json(json)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn waits_are_read_bounded_and_refused_when_malformed() {
        assert_eq!(min_position(&headers(&[])).unwrap(), None);
        let seven = Cursor { commit: 7, position: 7 };
        assert_eq!(min_position(&headers(&[(MIN_POSITION, "7")])).unwrap(), Some((seven, DEFAULT_WAIT)));
        assert_eq!(
            min_position(&headers(&[(MIN_POSITION, "9.7"), (WAIT_MS, "99999999")])).unwrap(),
            Some((Cursor { commit: 9, position: 7 }, MAX_WAIT))
        );
        assert_eq!(min_position(&headers(&[(MIN_POSITION, "x")])).unwrap_err().status(), 400);
        assert_eq!(min_position(&headers(&[(MIN_POSITION, "1"), (WAIT_MS, "-1")])).unwrap_err().status(), 400);
        assert_eq!(idempotency_key(&headers(&[(IDEMPOTENCY_KEY, "nope")])).unwrap_err().status(), 400);
    }
}
