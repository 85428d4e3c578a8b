//! The context layer: every request runs in a [`RequestContext`] made from its headers.
//!
//! For each request, [`ContextLayer`]:
//!
//! 1. opens a `tracing` span `http.request` and, when a W3C `traceparent` header is
//!    present, makes it the span's remote parent ([`cqrs_ddd::telemetry::set_parent`]);
//! 2. takes the correlation id from the `traceparent`'s trace id, else from
//!    `x-correlation-id` (a UUID; anything else is a 400 problem), else a new one, and
//!    echoes it as `x-correlation-id` on every response, errors included;
//! 3. verifies the bearer token when a [`JwtConfig`] is set: its `sub` becomes the
//!    principal; a token that is missing (when [`AuthConfig::Required`]), expired, not
//!    yet valid, or does not verify is a 401 problem with `WWW-Authenticate: Bearer`. A
//!    token that is present is always verified, even when it is optional;
//! 4. finds the tenant in the tenant header (`x-tenant-id` by default), the token's
//!    tenant claim (`tenant` by default) and the resolver, if set: where several name a
//!    tenant they must agree, else 403; an empty tenant is refused (403);
//! 5. runs the rest of the stack inside [`RequestContext::scope`], so `app.send` and
//!    `app.query` in a handler run for that tenant, principal and correlation id, and
//!    puts the context and the verified claims ([`Claims`]) in the request's extensions.
//!
//! The tenant header is trusted as given: when tenants come from tokens only, turn it off
//! with [`ContextLayer::no_tenant_header`].

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cqrs_ddd::RequestContext;
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

use crate::jwt::{JwtConfig, TokenError};
use crate::problem::Problem;

/// The header that carries the correlation id, in and out.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// The default tenant header.
pub const TENANT_ID: &str = "x-tenant-id";

/// Whether requests must carry a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthConfig {
    /// Every request needs a valid token (the default once a [`JwtConfig`] is set).
    #[default]
    Required,
    /// A request may come without a token (it then has no principal); a token that is
    /// present must still be valid.
    Optional,
}

/// The claims of the request's verified bearer token, in the request's extensions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

type Resolver = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Sets each request's [`RequestContext`]; see the module docs.
///
/// ```
/// use cqrs_ddd_axum::{AuthConfig, ContextLayer, JwtConfig};
///
/// let layer = ContextLayer::new()
///     .tenant_header("x-org")
///     .jwt(JwtConfig::hs256(b"a secret of at least 32 bytes...."))
///     .tenant_claim("org")
///     .auth(AuthConfig::Optional);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct ContextLayer {
    inner: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    tenant_header: Option<HeaderName>,
    tenant_claim: String,
    resolver: Option<Resolver>,
    jwt: Option<JwtConfig>,
    auth: Option<AuthConfig>,
}

impl Default for ContextLayer {
    fn default() -> Self {
        ContextLayer::new()
    }
}

impl fmt::Debug for ContextLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextLayer")
            .field("tenant_header", &self.inner.tenant_header)
            .field("tenant_claim", &self.inner.tenant_claim)
            .field("resolver", &self.inner.resolver.is_some())
            .field("jwt", &self.inner.jwt.is_some())
            .field("auth", &self.auth_config())
            .finish()
    }
}

impl ContextLayer {
    /// Tenant from `x-tenant-id`, no token verification.
    pub fn new() -> Self {
        ContextLayer {
            inner: Arc::new(Config {
                tenant_header: Some(HeaderName::from_static(TENANT_ID)),
                tenant_claim: "tenant".to_owned(),
                resolver: None,
                jwt: None,
                auth: None,
            }),
        }
    }

    fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// Reads the tenant from the header `name`.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name.
    #[must_use]
    pub fn tenant_header(self, name: &str) -> Self {
        let name = HeaderName::try_from(name.to_ascii_lowercase()).expect("a valid HTTP header name");
        self.config(|c| c.tenant_header = Some(name))
    }

    /// Reads no tenant from headers (only from the token and the resolver).
    #[must_use]
    pub fn no_tenant_header(self) -> Self {
        self.config(|c| c.tenant_header = None)
    }

    /// The claim of the token that names the tenant (`tenant` by default).
    #[must_use]
    pub fn tenant_claim(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.config(|c| c.tenant_claim = name)
    }

    /// Finds the tenant with `resolver` too (from the host name, the path, ...); when it
    /// names one and the header or token another, the request is refused.
    #[must_use]
    pub fn tenant_resolver(self, resolver: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.config(|c| c.resolver = Some(Arc::new(resolver)))
    }

    /// Verifies bearer tokens with `jwt` (and requires one, unless [`ContextLayer::auth`]
    /// says [`AuthConfig::Optional`]).
    #[must_use]
    pub fn jwt(self, jwt: JwtConfig) -> Self {
        crate::jwt::install_crypto();
        self.config(|c| c.jwt = Some(jwt))
    }

    /// Whether a token is required ([`AuthConfig::Required`] by default once a
    /// [`JwtConfig`] is set; without one no token is read).
    #[must_use]
    pub fn auth(self, auth: AuthConfig) -> Self {
        self.config(|c| c.auth = Some(auth))
    }

    /// Whether bearer tokens are verified (a [`JwtConfig`] is set).
    pub fn verifies_tokens(&self) -> bool {
        self.inner.jwt.is_some()
    }

    /// Whether every request needs a token (`None` when no token is read).
    pub fn auth_config(&self) -> Option<AuthConfig> {
        self.inner.jwt.as_ref().map(|_| self.inner.auth.unwrap_or_default())
    }

    /// The tenant header, if one is read.
    pub fn tenant_header_name(&self) -> Option<&str> {
        self.inner.tenant_header.as_ref().map(HeaderName::as_str)
    }

    /// The context of a request, or the problem that refuses it.
    pub fn resolve(&self, parts: &Parts) -> Result<(RequestContext, Option<Claims>), Problem> {
        self.inner.resolve(parts)
    }
}

impl Config {
    fn resolve(&self, parts: &Parts) -> Result<(RequestContext, Option<Claims>), Problem> {
        let headers = &parts.headers;
        let mut request = RequestContext::new();
        if let Some(id) = correlation_id(headers)? {
            request.correlation_id = id;
        }
        let claims = self.claims(headers)?;
        request.principal = claims.as_ref().and_then(|c| c.get("sub")).and_then(Value::as_str).map(ToOwned::to_owned);
        request.tenant_id = self.tenant(parts, claims.as_ref())?;
        Ok((request, claims))
    }

    fn claims(&self, headers: &HeaderMap) -> Result<Option<Claims>, Problem> {
        let Some(jwt) = &self.jwt else { return Ok(None) };
        let required = self.auth.unwrap_or_default() == AuthConfig::Required;
        let token = match bearer(headers) {
            Ok(token) => token,
            Err(TokenError::Missing) if !required => return Ok(None),
            Err(e) => return Err(token_problem(&e)),
        };
        match jwt.verify(token) {
            Ok(claims) => Ok(Some(Claims(claims))),
            Err(e) => Err(token_problem(&e)),
        }
    }

    fn tenant(&self, parts: &Parts, claims: Option<&Claims>) -> Result<Option<String>, Problem> {
        let mut named: Vec<(&str, String)> = Vec::new();
        if let Some(name) = &self.tenant_header {
            let mut values = parts.headers.get_all(name).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(Problem::bad_request(format!("`{name}` is given more than once")));
                }
                let value = value.to_str().map_err(|_| Problem::bad_request(format!("`{name}` is not text")))?;
                named.push(("the tenant header", value.trim().to_owned()));
            }
        }
        if let Some(claim) = claims.and_then(|c| c.get(&self.tenant_claim)) {
            let Some(text) = claim.as_str() else {
                return Err(Problem::forbidden_tenant(format!(
                    "the token's `{}` claim is not a string",
                    self.tenant_claim
                )));
            };
            named.push(("the token", text.to_owned()));
        }
        if let Some(resolved) = self.resolver.as_ref().and_then(|r| r(parts)) {
            named.push(("the resolver", resolved));
        }
        if let Some((source, _)) = named.iter().find(|(_, t)| t.is_empty()) {
            return Err(Problem::forbidden_tenant(format!(
                "{source} names an empty tenant; an empty tenant id is not allowed"
            )));
        }
        let mut tenant: Option<(&str, String)> = None;
        for (source, t) in named {
            match &tenant {
                Some((first, chosen)) if *chosen != t => {
                    return Err(Problem::forbidden_tenant(format!(
                        "{first} names tenant `{chosen}` and {source} names tenant `{t}`"
                    )));
                }
                Some(_) => {}
                None => tenant = Some((source, t)),
            }
        }
        Ok(tenant.map(|(_, t)| t))
    }
}

/// The correlation id a request names: the trace id of its `traceparent`, else its
/// `x-correlation-id`; `None` when it names none.
fn correlation_id(headers: &HeaderMap) -> Result<Option<Uuid>, Problem> {
    if let Some(id) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(cqrs_ddd::broker::trace_id) {
        return Ok(Some(id));
    }
    let Some(value) = headers.get(CORRELATION_ID) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .and_then(|v| Uuid::try_parse(v.trim()).ok())
        .map(Some)
        .ok_or_else(|| Problem::bad_request(format!("`{CORRELATION_ID}` must be a UUID")))
}

fn bearer(headers: &HeaderMap) -> Result<&str, TokenError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(TokenError::Missing)?;
    let value = value.to_str().map_err(|_| TokenError::NotBearer)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::NotBearer);
    }
    Ok(token.trim())
}

fn token_problem(e: &TokenError) -> Problem {
    match e {
        TokenError::Missing => Problem::unauthorized(e.to_string(), None),
        TokenError::NotBearer => Problem::unauthorized(e.to_string(), Some("invalid_request")),
        _ => Problem::unauthorized(e.to_string(), Some("invalid_token")),
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService { inner, layer: self.clone() }
    }
}

/// The service [`ContextLayer`] wraps around the routes.
#[derive(Clone)]
pub struct ContextService<S> {
    inner: S,
    layer: ContextLayer,
}

impl<S> fmt::Debug for ContextService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextService").field("layer", &self.layer).finish_non_exhaustive()
    }
}

impl<S> Service<Request> for ContextService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = request.into_parts();
        let span = tracing::info_span!(
            "http.request",
            http.request.method = %parts.method,
            url.path = %parts.uri.path(),
            correlation_id = tracing::field::Empty,
            tenant = tracing::field::Empty,
            principal = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        if let Some(traceparent) = parts.headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
            cqrs_ddd::telemetry::set_parent(&span, traceparent);
        }
        let resolved = self.layer.resolve(&parts);
        Box::pin(
            async move {
                let span = tracing::Span::current();
                let (response, correlation) = match resolved {
                    Ok((context, claims)) => {
                        span.record("correlation_id", tracing::field::display(context.correlation_id));
                        if let Some(tenant) = &context.tenant_id {
                            span.record("tenant", tenant.as_str());
                        }
                        if let Some(principal) = &context.principal {
                            span.record("principal", principal.as_str());
                        }
                        let correlation = context.correlation_id;
                        parts.extensions.insert(context.clone());
                        if let Some(claims) = claims {
                            parts.extensions.insert(claims);
                        }
                        let request = Request::from_parts(parts, body);
                        let response = match context.scope(inner.call(request)).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        };
                        (response, correlation)
                    }
                    Err(problem) => {
                        let correlation = correlation_id(&parts.headers)
                            .ok()
                            .flatten()
                            .unwrap_or_else(cqrs_ddd::new_correlation_id);
                        span.record("correlation_id", tracing::field::display(correlation));
                        tracing::info!(status = problem.status().as_u16(), detail = ?problem.detail_text(), "request refused");
                        (problem.into_response(), correlation)
                    }
                };
                let mut response = response;
                span.record("http.response.status_code", response.status().as_u16());
                if let Ok(value) = HeaderValue::from_str(&correlation.to_string()) {
                    response.headers_mut().insert(CORRELATION_ID, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
