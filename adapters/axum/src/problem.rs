//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error this crate answers is a [`Problem`]: a JSON object with a stable `type`
//! URI (one of the constants below), a `title` that names the kind of problem, the
//! `status`, a `detail` that says what went wrong with this request, and extension
//! members where they help (`path` of a field that did not decode, `fields` of a domain
//! error, `stream` of a conflict). `impl From<cqrs_ddd::Error> for Problem` maps the
//! framework's errors:
//!
//! | type | status | for |
//! | --- | --- | --- |
//! | [`DOMAIN`] | 422 | [`Error::Domain`]: a domain rule refused the command (`error`: the error type, `fields` when it has some) |
//! | [`CONFLICT`] | 409 | [`Error::Conflict`]: a concurrent writer moved the stream; an action already under way (a rebuild of the same projection) |
//! | [`AMBIGUOUS`] | 409 | [`Error::Ambiguous`]: an operator named something several things answer to (`what`, `candidates`); the request is sound but the data holds several matches, so name one of the `candidates` and ask again |
//! | [`ALREADY_EXISTS`] | 409 | [`Error::AlreadyExists`]: a creating command met an existing aggregate |
//! | [`ALREADY_PROCESSED`] | 409 | [`Error::AlreadyProcessed`]: the `Idempotency-Key` was used before |
//! | [`UNDO_REFUSED`] | 409 | [`Error::Undo`]: an undo or redo the event's undo log or type refuses (already undone, too old, not undoable) |
//! | [`NOT_FOUND`] | 404 | [`Error::NotFound`]: no such aggregate (`stream`); [`Error::Missing`]: no such thing as an operator named (a saga, a scheduled command, a dead outbox row; `what`) |
//! | [`UNKNOWN_MESSAGE`] | 404 | [`Error::UnknownMessage`]: no command or query has that name |
//! | [`INVALID_BODY`] | 400 | a body that is not JSON, or does not decode into the message ([`Error::Decode`]; `path` of the field) |
//! | [`VALIDATION`] | 400 | [`Error::Validation`]: a message refused before its handler; `fields` lists each failing field's `path` and `message` (`#[command(validate)]`) |
//! | [`INVALID_FILTER`] | 400 | a read-model filter, sort, page or selection that cannot be answered ([`FilterError`]) |
//! | [`BAD_REQUEST`] | 400 | a malformed header (`x-correlation-id`, `Idempotency-Key`, `x-cqrs-min-position`) |
//! | [`UNSUPPORTED_MEDIA_TYPE`] | 415 | a body that is neither JSON nor a form |
//! | [`UNAUTHORIZED`] | 401 | a missing, expired or unverifiable bearer token (with `WWW-Authenticate: Bearer`) |
//! | [`FORBIDDEN_TENANT`] | 403 | a tenant the request may not use: the header and the token disagree, an empty tenant, a command naming another tenant ([`Error::Tenant`]) |
//! | [`FORBIDDEN`] | 403 | a verified principal without the right to the route (the admin API without its role) |
//! | [`NOT_WIRED`] | 501 | [`Error::NotWired`]: the application was built without a part the request needs (`part`, and a `detail` saying how to give it); not transient, so no `Retry-After` |
//! | [`UNAVAILABLE`] | 503 | a transient failure ([`Error::is_transient`]: the store or a lock backend is unreachable), with `Retry-After` |
//! | [`TIMEOUT`] | 503 | a wait that ran out, such as a read model that did not reach `x-cqrs-min-position` in time, with `Retry-After` |
//! | [`INTERNAL`] | 500 | anything else; the cause is logged, never sent |
//!
//! Every problem a request gets also carries its correlation id in the
//! `x-correlation-id` response header (set by [`crate::ContextLayer`]).

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_ddd::Error;
use cqrs_ddd::lock::LockError;
use cqrs_ddd::spec::FilterError;
use serde_json::{Map, Value, json};

/// The media type of a problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem type URI of this crate.
pub const PROBLEM_BASE: &str = "https://cqrs-ddd.dev/problems/";

/// A domain rule refused the command (422).
pub const DOMAIN: &str = "https://cqrs-ddd.dev/problems/domain";
/// A concurrent writer moved the stream past the version the command read (409).
pub const CONFLICT: &str = "https://cqrs-ddd.dev/problems/conflict";
/// A creating command targeted an aggregate that already exists (409).
pub const ALREADY_EXISTS: &str = "https://cqrs-ddd.dev/problems/already-exists";
/// A command with this idempotency key was already processed (409).
pub const ALREADY_PROCESSED: &str = "https://cqrs-ddd.dev/problems/already-processed";
/// The aggregate, or what an operator named, does not exist (404).
pub const NOT_FOUND: &str = "https://cqrs-ddd.dev/problems/not-found";
/// No command or query of this program has that name (404).
pub const UNKNOWN_MESSAGE: &str = "https://cqrs-ddd.dev/problems/unknown-message";
/// The body is not JSON, or does not decode into the message (400).
pub const INVALID_BODY: &str = "https://cqrs-ddd.dev/problems/invalid-body";
/// The message was refused before it reached its handler (400).
pub const VALIDATION: &str = "https://cqrs-ddd.dev/problems/validation";
/// A read-model filter, sort, page or selection that cannot be answered (400).
pub const INVALID_FILTER: &str = "https://cqrs-ddd.dev/problems/invalid-filter";
/// A malformed request header or parameter (400).
pub const BAD_REQUEST: &str = "https://cqrs-ddd.dev/problems/bad-request";
/// A body of a media type the endpoint does not read (415).
pub const UNSUPPORTED_MEDIA_TYPE: &str = "https://cqrs-ddd.dev/problems/unsupported-media-type";
/// A missing, expired or unverifiable bearer token (401).
pub const UNAUTHORIZED: &str = "https://cqrs-ddd.dev/problems/unauthorized";
/// A tenant the request may not use (403).
pub const FORBIDDEN_TENANT: &str = "https://cqrs-ddd.dev/problems/tenant";
/// A principal without the right to the route (403).
pub const FORBIDDEN: &str = "https://cqrs-ddd.dev/problems/forbidden";
/// What an operator named could be several things: name one of the candidates (409).
pub const AMBIGUOUS: &str = "https://cqrs-ddd.dev/problems/ambiguous";
/// An undo or redo was refused: already undone, too old, not undoable (409).
pub const UNDO_REFUSED: &str = "https://cqrs-ddd.dev/problems/undo-refused";
/// The application was built without a part the request needs (501).
pub const NOT_WIRED: &str = "https://cqrs-ddd.dev/problems/not-wired";
/// A transient failure: retry after `Retry-After` seconds (503).
pub const UNAVAILABLE: &str = "https://cqrs-ddd.dev/problems/unavailable";
/// A wait that ran out: retry after `Retry-After` seconds (503).
pub const TIMEOUT: &str = "https://cqrs-ddd.dev/problems/timeout";
/// No route has the request's path (404).
pub const NO_ROUTE: &str = "https://cqrs-ddd.dev/problems/no-route";
/// The path takes other methods (405).
pub const METHOD_NOT_ALLOWED: &str = "https://cqrs-ddd.dev/problems/method-not-allowed";
/// An unexpected failure, logged on the server (500).
pub const INTERNAL: &str = "https://cqrs-ddd.dev/problems/internal";

/// Every problem type of this crate with its status and title, for documentation (the
/// OpenAPI document lists them).
pub const PROBLEM_TYPES: &[(&str, u16, &str)] = &[
    (DOMAIN, 422, "Refused by a domain rule"),
    (CONFLICT, 409, "Concurrent modification"),
    (ALREADY_EXISTS, 409, "Already exists"),
    (ALREADY_PROCESSED, 409, "Already processed"),
    (NOT_FOUND, 404, "Not found"),
    (UNKNOWN_MESSAGE, 404, "Unknown message"),
    (INVALID_BODY, 400, "Invalid body"),
    (VALIDATION, 400, "Validation failed"),
    (INVALID_FILTER, 400, "Invalid filter"),
    (BAD_REQUEST, 400, "Bad request"),
    (UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported media type"),
    (UNAUTHORIZED, 401, "Unauthorized"),
    (FORBIDDEN_TENANT, 403, "Tenant not allowed"),
    (FORBIDDEN, 403, "Forbidden"),
    (AMBIGUOUS, 409, "Ambiguous"),
    (UNDO_REFUSED, 409, "Undo refused"),
    (NOT_WIRED, 501, "Not wired"),
    (UNAVAILABLE, 503, "Service unavailable"),
    (TIMEOUT, 503, "Timed out"),
    (NO_ROUTE, 404, "No such route"),
    (METHOD_NOT_ALLOWED, 405, "Method not allowed"),
    (INTERNAL, 500, "Internal error"),
];

/// How long a client should wait before retrying a transient failure, in seconds.
pub const RETRY_AFTER_SECS: u64 = 2;

/// An RFC 9457 problem: the body and headers of an error response.
///
/// ```
/// use axum::http::StatusCode;
/// use cqrs_ddd_axum::{Problem, problem};
///
/// let p = Problem::new(StatusCode::BAD_REQUEST, problem::BAD_REQUEST, "Bad request")
///     .detail("`limit` takes a whole number")
///     .with("param", "limit");
/// assert_eq!(p.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(p.body()["param"], "limit");
/// ```
#[derive(Clone)]
pub struct Problem {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    status: StatusCode,
    type_uri: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<String>,
    extensions: Map<String, Value>,
    retry_after: Option<u64>,
    www_authenticate: Option<String>,
}

impl Problem {
    /// A problem of type `type_uri` with `status` and `title`.
    pub fn new(
        status: StatusCode,
        type_uri: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        Problem {
            inner: Box::new(Inner {
                status,
                type_uri: type_uri.into(),
                title: title.into(),
                detail: None,
                extensions: Map::new(),
                retry_after: None,
                www_authenticate: None,
            }),
        }
    }

    /// Sets what went wrong with this request.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    /// Adds an extension member (`key` must not be one of `type`, `title`, `status`,
    /// `detail`; those are ignored).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        if !matches!(key.as_str(), "type" | "title" | "status" | "detail") {
            self.inner.extensions.insert(key, value.into());
        }
        self
    }

    /// Asks the client to retry after `secs` seconds (`Retry-After`).
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.inner.retry_after = Some(secs);
        self
    }

    /// The `WWW-Authenticate` challenge sent with the problem.
    #[must_use]
    pub fn www_authenticate(mut self, challenge: impl Into<String>) -> Self {
        self.inner.www_authenticate = Some(challenge.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The problem type URI.
    pub fn type_uri(&self) -> &str {
        &self.inner.type_uri
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.inner.title
    }

    /// The detail, if any.
    pub fn detail_text(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(self.inner.type_uri.to_string()));
        body.insert("title".into(), Value::String(self.inner.title.to_string()));
        body.insert("status".into(), json!(self.inner.status.as_u16()));
        if let Some(detail) = &self.inner.detail {
            body.insert("detail".into(), Value::String(detail.clone()));
        }
        for (k, v) in &self.inner.extensions {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    /// 400 [`BAD_REQUEST`]: a malformed header or parameter.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, BAD_REQUEST, "Bad request").detail(detail)
    }

    /// 400 [`INVALID_BODY`]: the body does not decode; `path` is where (`.` for the
    /// whole body).
    pub fn invalid_body(detail: impl Into<String>, path: Option<String>) -> Self {
        let p = Problem::new(StatusCode::BAD_REQUEST, INVALID_BODY, "Invalid body").detail(detail);
        match path {
            Some(path) => p.with("path", path),
            None => p,
        }
    }

    /// 401 [`UNAUTHORIZED`] with a `WWW-Authenticate: Bearer` challenge; `error` is the
    /// RFC 6750 error code (`invalid_token`) when a token was given.
    pub fn unauthorized(detail: impl Into<String>, error: Option<&str>) -> Self {
        let detail = detail.into();
        let challenge = match error {
            Some(code) => format!("Bearer error=\"{code}\", error_description=\"{}\"", detail.replace('"', "'")),
            None => "Bearer".to_owned(),
        };
        Problem::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED, "Unauthorized").detail(detail).www_authenticate(challenge)
    }

    /// 403 [`FORBIDDEN_TENANT`].
    pub fn forbidden_tenant(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, FORBIDDEN_TENANT, "Tenant not allowed").detail(detail)
    }

    /// 403 [`FORBIDDEN`]: the principal may not use the route.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, FORBIDDEN, "Forbidden").detail(detail)
    }

    /// 409 [`CONFLICT`]: an action is already under way.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, CONFLICT, "Concurrent modification").detail(detail)
    }

    /// 503 [`UNAVAILABLE`] with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "Service unavailable")
            .detail(detail)
            .retry_after(RETRY_AFTER_SECS)
    }

    /// 503 [`TIMEOUT`] with `Retry-After`.
    pub fn timeout(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, TIMEOUT, "Timed out").detail(detail).retry_after(RETRY_AFTER_SECS)
    }

    /// 404 [`NO_ROUTE`]: nothing is served at `path`.
    pub fn no_route(path: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, NO_ROUTE, "No such route").detail(format!("nothing is served at `{path}`"))
    }

    /// 405 [`METHOD_NOT_ALLOWED`]: `path` is served, not with `method`.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED, "Method not allowed")
            .detail(format!("`{path}` does not take {method}"))
    }

    /// 500 [`INTERNAL`]; the cause stays on the server (log it before).
    pub fn internal() -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, "Internal error")
            .detail("the server failed to answer; the cause is in its log under this request's correlation id")
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Problem")
            .field("status", &self.inner.status.as_u16())
            .field("type", &self.inner.type_uri)
            .field("detail", &self.inner.detail)
            .field("extensions", &self.inner.extensions)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.inner.status.as_u16(), self.inner.title)?;
        if let Some(detail) = &self.inner.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.inner.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.inner.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.inner.www_authenticate.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// The last segment of a Rust type path, without generic arguments.
fn short_type_name(type_name: &str) -> &str {
    let plain = type_name.split('<').next().unwrap_or(type_name);
    plain.rsplit("::").next().unwrap_or(plain)
}

fn lock_problem(e: &LockError) -> Problem {
    match e {
        LockError::Upgrade { .. } => {
            tracing::error!(error = %e, "lock used in a way that cannot work");
            Problem::internal()
        }
        _ => Problem::unavailable(format!("a resource the command needs is busy: {e}")),
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::from(&e)
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Self {
        match e {
            Error::Domain(d) => {
                let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, DOMAIN, "Refused by a domain rule")
                    .detail(d.to_string())
                    .with("error", short_type_name(d.type_name()));
                domain_fields(p, d)
            }
            Error::Conflict { stream, expected, actual } => {
                Problem::new(StatusCode::CONFLICT, CONFLICT, "Concurrent modification")
                    .detail(e.to_string())
                    .with("stream", stream.as_str())
                    .with("expected", *expected)
                    .with("actual", *actual)
            }
            Error::AlreadyExists { stream, version } => {
                Problem::new(StatusCode::CONFLICT, ALREADY_EXISTS, "Already exists")
                    .detail(e.to_string())
                    .with("stream", stream.as_str())
                    .with("version", *version)
            }
            Error::AlreadyProcessed { key } => {
                Problem::new(StatusCode::CONFLICT, ALREADY_PROCESSED, "Already processed")
                    .detail(e.to_string())
                    .with("idempotency_key", key.to_string())
            }
            Error::NotFound { stream } => Problem::new(StatusCode::NOT_FOUND, NOT_FOUND, "Not found")
                .detail(e.to_string())
                .with("stream", stream.as_str()),
            Error::UnknownMessage { kind, name } => {
                Problem::new(StatusCode::NOT_FOUND, UNKNOWN_MESSAGE, "Unknown message")
                    .detail(format!("no {kind} is named `{name}`"))
                    .with("kind", *kind)
                    .with("name", name.as_str())
            }
            Error::Missing { what } => Problem::new(StatusCode::NOT_FOUND, NOT_FOUND, "Not found")
                .detail(e.to_string())
                .with("what", what.as_str()),
            Error::Ambiguous { what, candidates } => Problem::new(StatusCode::CONFLICT, AMBIGUOUS, "Ambiguous")
                .detail(e.to_string())
                .with("what", what.as_str())
                .with("candidates", candidates.clone()),
            Error::Undo(_) => Problem::new(StatusCode::CONFLICT, UNDO_REFUSED, "Undo refused").detail(e.to_string()),
            Error::NotWired { part, .. } => Problem::new(StatusCode::NOT_IMPLEMENTED, NOT_WIRED, "Not wired")
                .detail(e.to_string())
                .with("part", *part),
            Error::Decode { kind, name, reason, path } => {
                Problem::invalid_body(format!("the body does not decode into {kind} `{name}`: {reason}"), path.clone())
            }
            Error::Validation { message: "filter", reason, .. } => {
                Problem::new(StatusCode::BAD_REQUEST, INVALID_FILTER, "Invalid filter").detail(reason.clone())
            }
            Error::Validation { message, reason, fields } => {
                Problem::new(StatusCode::BAD_REQUEST, VALIDATION, "Validation failed")
                    .detail(e.to_string())
                    .with("message", *message)
                    .with("reason", reason.as_str())
                    .with("fields", serde_json::to_value(fields).unwrap_or_default())
            }
            Error::Spec(spec) => {
                Problem::new(StatusCode::BAD_REQUEST, INVALID_FILTER, "Invalid filter").detail(spec.to_string())
            }
            Error::Tenant(t) => Problem::forbidden_tenant(t.to_string()),
            Error::Lock(lock) => lock_problem(lock),
            Error::Timeout { .. } => Problem::timeout(e.to_string()),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "transient failure answered with 503");
                Problem::unavailable("a backend the service needs is unavailable; retry later")
            }
            e => {
                tracing::error!(error = %e, "request failed");
                Problem::internal()
            }
        }
    }
}

/// Adds the domain error's `fields` member when it has one.
fn domain_fields(problem: Problem, error: &cqrs_ddd::DomainError) -> Problem {
    match error.fields() {
        Some(fields) => problem.with("fields", fields.clone()),
        None => problem,
    }
}

/// A filter request that cannot be answered: 400 [`INVALID_FILTER`]; one that needs a
/// tenant is 403 [`FORBIDDEN_TENANT`], one that needs a principal 401.
impl From<FilterError> for Problem {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::NoTenant => Problem::forbidden_tenant(e.to_string()),
            FilterError::NoPrincipal => Problem::unauthorized(e.to_string(), None),
            e => Problem::new(StatusCode::BAD_REQUEST, INVALID_FILTER, "Invalid filter").detail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_shortened() {
        assert_eq!(short_type_name("bank::domain::AccountError"), "AccountError");
        assert_eq!(short_type_name("a::Wrap<b::C>"), "Wrap");
    }

    #[test]
    fn every_type_is_under_the_base() {
        for (uri, status, _) in PROBLEM_TYPES {
            assert!(uri.starts_with(PROBLEM_BASE), "{uri}");
            assert!(StatusCode::from_u16(*status).is_ok());
        }
    }

    #[test]
    fn what_an_operator_names_is_missing_ambiguous_or_not_wired() {
        let missing = Problem::from(Error::Missing { what: "saga `payout/p-9`".into() });
        assert_eq!((missing.status(), missing.type_uri()), (StatusCode::NOT_FOUND, NOT_FOUND));
        assert_eq!(missing.body()["what"], "saga `payout/p-9`");

        let ambiguous = Problem::from(Error::Ambiguous {
            what: "saga `p-1`".into(),
            candidates: vec!["a/p-1".into(), "b/p-1".into()],
        });
        assert_eq!((ambiguous.status(), ambiguous.type_uri()), (StatusCode::CONFLICT, AMBIGUOUS));
        assert_eq!(ambiguous.body()["candidates"], json!(["a/p-1", "b/p-1"]));

        let not_wired = Problem::from(Error::NotWired { part: "outbox", hint: "give it one" });
        assert_eq!((not_wired.status(), not_wired.type_uri()), (StatusCode::NOT_IMPLEMENTED, NOT_WIRED));
        assert_eq!(not_wired.body()["part"], "outbox");
        assert!(not_wired.detail_text().unwrap().contains("give it one"), "{not_wired:?}");
        assert!(not_wired.inner.retry_after.is_none(), "not transient");
    }

    #[test]
    fn a_refused_undo_is_a_conflict() {
        let refused = Problem::from(Error::Undo(cqrs_ddd::undo::UndoError::NotUndone { event_id: uuid::Uuid::nil() }));
        assert_eq!((refused.status(), refused.type_uri()), (StatusCode::CONFLICT, UNDO_REFUSED));
        assert!(refused.detail_text().unwrap().contains("not undone"), "{refused:?}");
    }

    #[test]
    fn reserved_members_cannot_be_overwritten() {
        let p = Problem::bad_request("x").with("status", 200).with("type", "other");
        assert_eq!(p.body()["status"], 400);
        assert_eq!(p.body()["type"], BAD_REQUEST);
    }
}
