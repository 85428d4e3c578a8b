//! Extractors: the application, the request's context, and a command decoded from a JSON
//! body with problem details when it does not decode.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use cqrs_ddd::{Mediator, RequestContext};
use serde::de::DeserializeOwned;

use crate::problem::{Problem, UNSUPPORTED_MEDIA_TYPE};

/// The application ([`Mediator`]) a route sends to, from the request's extensions
/// ([`crate::Api`] puts it there for every route it serves; elsewhere add
/// `.layer(Extension(app))`). A router with the mediator as its state can use
/// `State<Mediator>` instead.
#[derive(Clone)]
pub struct Application(pub Mediator);

impl std::ops::Deref for Application {
    type Target = Mediator;

    fn deref(&self) -> &Mediator {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Application {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts.extensions.get::<Mediator>().cloned().map(Application).ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "no application in the request's extensions; serve the route through `Api` or add `.layer(Extension(app))`"
            );
            Problem::internal()
        })
    }
}

/// The request's [`RequestContext`] as [`crate::ContextLayer`] set it (correlation id,
/// tenant, principal).
#[derive(Debug, Clone)]
pub struct Context(pub RequestContext);

impl std::ops::Deref for Context {
    type Target = RequestContext;

    fn deref(&self) -> &RequestContext {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts.extensions.get::<RequestContext>().cloned().map(Context).ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "no request context; install `ContextLayer` (`Api` does) around the route"
            );
            Problem::internal()
        })
    }
}

/// A value decoded from the request's JSON body, like `axum::Json`, but a body that
/// does not decode is a 400 problem ([`crate::problem::INVALID_BODY`]) naming the path
/// of the offending field (`lines[2].quantity`), and a body that is not JSON a 415.
///
/// ```rust,standalone_crate
/// use axum::extract::Path;
/// use cqrs_ddd_axum::{Application, Cmd, Problem};
/// # use cqrs_ddd::prelude::*;
/// # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
/// # #[event] #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Deposited { pub amount: u64 }
/// # #[aggregate(id = String, events(Deposited), error = Never)]
/// # #[derive(Debug, Default, Serialize, Deserialize)] pub struct Account { balance: u64 }
/// # #[aggregate] impl Account {
/// #     #[handle(create_if_missing)]
/// #     fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, Never> { Ok(vec![Deposited { amount: c.amount }.into()]) }
/// #     #[apply] fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
/// # }
/// # #[command(aggregate = Account)] pub struct Deposit { #[id] pub account: String, pub amount: u64 }
///
/// #[derive(serde::Deserialize)]
/// struct DepositBody { amount: u64 }
///
/// // POST /accounts/{id}/deposits
/// async fn deposit(
///     Application(app): Application,
///     Path(account): Path<String>,
///     Cmd(body): Cmd<DepositBody>,
/// ) -> Result<axum::http::StatusCode, Problem> {
///     app.send(Deposit { account, amount: body.amount }).await?;
///     Ok(axum::http::StatusCode::NO_CONTENT)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Cmd<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Cmd<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        require_json(request.headers())?;
        let bytes = Bytes::from_request(request, state).await.map_err(body_problem)?;
        decode_json(&bytes).map(Cmd)
    }
}

/// The problem for a body that could not be read (too large, cut off).
pub(crate) fn body_problem(rejection: axum::extract::rejection::BytesRejection) -> Problem {
    let status = rejection.status();
    Problem::new(status, crate::problem::BAD_REQUEST, status.canonical_reason().unwrap_or("Bad request"))
        .detail(rejection.body_text())
}

/// Refuses a body whose `Content-Type` is given and is not JSON (415).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let media = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
        return Ok(());
    }
    Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
        .detail(format!("the body must be `application/json`, not `{media}`")))
}

/// Decodes a JSON body into `T`, with the path of the field that does not decode.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            Problem::invalid_body(format!("the body is not JSON: {inner}"), None)
        } else if path == "." {
            Problem::invalid_body(format!("the body does not decode: {inner}"), Some(path))
        } else {
            Problem::invalid_body(format!("the body does not decode at `{path}`: {inner}"), Some(path))
        }
    })
}

/// The body as text for a message decoded by name (an empty body is `{}`); whether it is
/// JSON is found by that decoding, once.
pub(crate) fn json_text(bytes: &[u8]) -> Result<&str, Problem> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| Problem::invalid_body(format!("the body is not UTF-8: {e}"), None))?;
    Ok(if text.trim().is_empty() { "{}" } else { text })
}
