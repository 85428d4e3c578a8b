//! The operators' admin page: `GET /admin` and its JSON API under `/admin/api`.
//!
//! [`Api::admin`](crate::Api::admin) serves a single HTML document (inline CSS and
//! script, nothing fetched from elsewhere, no data in it) that calls the JSON API below
//! with the operator's bearer token, taken from the URL fragment (`/admin#token=..`) or
//! pasted into the page, and kept in the tab's `sessionStorage`. The page shows the
//! projections (lag, checkpoints, dead letters; a rebuild with a live progress bar), each
//! projection's dead letters with their payloads (retry, skip), saga instances by status
//! with their commands and undo stack (retry, compensate), the outbox's counts and dead
//! rows (retry), scheduled commands, pending and dead (cancel), the newest events (and
//! newer ones as they come), a stream by type and id, and the tenants. Everything is
//! read through [`cqrs_ddd::admin`].
//!
//! ```rust,standalone_crate
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use cqrs_ddd::App;
//! use cqrs_ddd_axum::admin::AdminPage;
//! use cqrs_ddd_axum::{Api, ContextLayer, JwtConfig};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const SECRET: &[u8] = b"a secret of at least 32 bytes....";
//! let router = Api::new(App::builder().build()?)
//!     .context(ContextLayer::new().jwt(JwtConfig::hs256(SECRET)))
//!     .admin(AdminPage::new().role("ops"))              // the `roles` claim must name `ops`
//!     .router();
//!
//! // The page needs no token; it holds no data.
//! let page = router.clone().oneshot(Request::get("/admin").body(Body::empty())?).await?;
//! assert_eq!(page.status(), StatusCode::OK);
//!
//! // Its API does.
//! let anonymous = Request::get("/admin/api/projections").body(Body::empty())?;
//! assert_eq!(router.clone().oneshot(anonymous).await?.status(), StatusCode::UNAUTHORIZED);
//!
//! let claims = serde_json::json!({"sub": "ada", "roles": ["ops"], "exp": 4_102_444_800u64});
//! let token = jsonwebtoken::encode(
//!     &jsonwebtoken::Header::default(),
//!     &claims,
//!     &jsonwebtoken::EncodingKey::from_secret(SECRET),
//! )?;
//! let listing = Request::get("/admin/api/projections")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Body::empty())?;
//! assert_eq!(router.oneshot(listing).await?.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # Who may use it
//!
//! Every call of the API needs a principal from a verified bearer token (the
//! [`ContextLayer`](crate::ContextLayer) must have a [`JwtConfig`](crate::JwtConfig)):
//! without one it is a 401 problem. The token's `roles` claim ([`AdminPage::role_claim`])
//! must name the role ([`AdminPage::role`], `admin` by default), as an array of strings
//! or a space-separated string (OAuth's `scope` style), else 403
//! ([`FORBIDDEN`](crate::problem::FORBIDDEN)); [`AdminPage::authorize`] puts a check of
//! your own in its place. The page itself, `GET /admin`, is served outside the context
//! layer, so it loads before the operator has given a token, whatever
//! [`AuthConfig`](crate::AuthConfig) says.
//!
//! A request whose context has a tenant (from the token's tenant claim, the tenant
//! header or the resolver) sees and acts on that tenant only
//! ([`Admin::for_tenant`](cqrs_ddd::admin::Admin::for_tenant)): its events, streams,
//! sagas, scheduled commands and dead outbox rows, and the projections whose workers read
//! only that tenant. The page's tenant selector sends the tenant header, so an operator
//! whose token names no tenant can look at one tenant at a time.
//!
//! # The API
//!
//! Listings answer the views of [`cqrs_ddd::admin`] as JSON; errors are
//! [`Problem`]s. `{name}` is a projection's name or its checkpoint scope
//! (`name@tenant`); `limit` is 50 unless given, 1000 at most.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /admin/api/me` | `{"principal", "tenant"}` of the request |
//! | `GET /admin/api/projections` | the projections ([`ProjectionView`](cqrs_ddd::admin::ProjectionView)) |
//! | `GET /admin/api/projections/{name}` | one projection; 404 for an unknown name |
//! | `POST /admin/api/projections/{name}/rebuild` | starts a rebuild in the background: 202 with its progress; 409 while one of the same projection runs |
//! | `GET /admin/api/projections/{name}/rebuild` | the last rebuild's `{"projection", "running", "read", "applied", "total", "percent", "stopped", "error"}` |
//! | `GET /admin/api/projections/{name}/dead-letters` | its dead letters, with payloads |
//! | `POST /admin/api/projections/{name}/dead-letters/{event_id}/retry` | applies the event again and drops the letter: 204 |
//! | `POST /admin/api/projections/{name}/dead-letters/{event_id}/skip` | drops the letter: 204 |
//! | `GET /admin/api/outbox` | `{"pending", "dead"}` counts (of every tenant: the store counts them) |
//! | `GET /admin/api/outbox/pending?limit=` | pending rows |
//! | `GET /admin/api/outbox/dead` | dead rows |
//! | `POST /admin/api/outbox/retry` | `{"ids": [..]}` (none: every dead row) back to pending: `{"retried": n}` |
//! | `GET /admin/api/sagas?type=&status=failed,compensating&limit=` | saga instances with their commands and undo stack |
//! | `GET /admin/api/sagas/{id}?type=` | one instance (its type may be left out when only one type has the id); 409 [`AMBIGUOUS`](crate::problem::AMBIGUOUS) when several do |
//! | `POST /admin/api/sagas/{id}/retry?type=` | sends its unsent commands again: the instance after |
//! | `POST /admin/api/sagas/{id}/compensate?type=` | `{"reason"}` (optional): fails it and runs its compensations: the instance after |
//! | `GET /admin/api/schedules?dead=false&limit=` | scheduled commands, pending or dead |
//! | `POST /admin/api/schedules/{id}/cancel` | cancels one: 204 |
//! | `GET /admin/api/jobs?status=failed,pending&limit=&offset=` | background jobs, most recently changed first |
//! | `GET /admin/api/jobs/stats` | how many jobs are in each status |
//! | `POST /admin/api/jobs/cancel`, `POST /admin/api/jobs/retry` | `{"ids": [..]}`: `{"done": n, "skipped": m}` |
//! | `POST /admin/api/jobs/purge` | `{"before": "2026-01-31T00:00:00Z"}`: completed and cancelled jobs changed before it, `{"purged": n}` |
//! | `GET /admin/api/events?after=&limit=` | the newest events, or those after the cursor `after` |
//! | `GET /admin/api/streams/{type}/{id}` | one stream's events |
//! | `GET /admin/api/tenants` | the tenants that have events |
//!
//! A path parameter that is not what it should be (an event id that is not a UUID) is
//! a 400 problem, as is a query string that does not decode.
//!
//! # Caveats
//!
//! - The admin API is not in the OpenAPI document ([`Api::openapi`](crate::Api::openapi)):
//!   it is the page's, not a client's contract.
//! - A rebuild runs in this process, in a task of its own; its progress is kept in the
//!   [`AdminPage`] (one map for the router), so a rebuild started through another
//!   process, or before a restart, shows as not running. A rebuild is not stopped when
//!   the page is closed.
//! - The page is sent with a `Content-Security-Policy` that lets only its own inline
//!   script and style run, and no request leave for another origin; the script builds the
//!   page from data with `textContent`, never with markup, so payloads cannot inject any.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use cqrs_ddd::admin::Admin;
use cqrs_ddd::host::ProjectionControl;
use cqrs_ddd::ports::{Cursor, JobStatus, SagaStatus};
use cqrs_ddd::projection::Progress;
use cqrs_ddd::{Error, RequestContext};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::context::Claims;
use crate::extract::{Application, Cmd};
use crate::problem::Problem;

/// Where the page is served.
pub(crate) const PAGE_PATH: &str = "/admin";

/// Rows a listing answers unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// The most rows a listing answers.
const MAX_LIMIT: usize = 1000;

type Authorize = Arc<dyn Fn(&Claims) -> bool + Send + Sync>;

/// The admin page and its API, for [`Api::admin`](crate::Api::admin); see the
/// [module docs](self).
///
/// ```
/// use cqrs_ddd_axum::admin::AdminPage;
///
/// // The `groups` claim must name `operators` (`["operators"]` or `"operators dev"`).
/// let page = AdminPage::new().role("operators").role_claim("groups");
/// // Or decide yourself from the verified claims.
/// let page = AdminPage::new().authorize(|claims| claims.get("sub").is_some_and(|s| s == "ada"));
/// # let _ = page;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AdminPage {
    access: Access,
    rebuilds: Rebuilds,
}

/// Who may use the API.
#[derive(Clone)]
struct Access {
    role: String,
    claim: String,
    authorize: Option<Authorize>,
}

impl Default for Access {
    fn default() -> Self {
        Access { role: "admin".to_owned(), claim: "roles".to_owned(), authorize: None }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.authorize {
            Some(_) => f.write_str("Access(a check of its own)"),
            None => write!(f, "Access(the `{}` claim names `{}`)", self.claim, self.role),
        }
    }
}

impl AdminPage {
    /// The page, for principals whose `roles` claim names `admin`.
    pub fn new() -> Self {
        AdminPage::default()
    }

    /// The role the token must name (`admin` by default).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.access.role = role.into();
        self
    }

    /// The claim that holds the token's roles (`roles` by default): an array of strings,
    /// or a string of roles separated by spaces.
    pub fn role_claim(mut self, claim: impl Into<String>) -> Self {
        self.access.claim = claim.into();
        self
    }

    /// Decides who may use the API from the verified claims, in place of the role.
    pub fn authorize(mut self, allow: impl Fn(&Claims) -> bool + Send + Sync + 'static) -> Self {
        self.access.authorize = Some(Arc::new(allow));
        self
    }

    /// The routes of the API, to run behind the context layer; `verifies_tokens` says
    /// whether that layer can give them a principal at all.
    pub(crate) fn api_routes(self, verifies_tokens: bool) -> Router {
        if !verifies_tokens {
            tracing::warn!(
                "the admin page is served but the context layer verifies no bearer token: every call of its API \
                 will be refused; give `ContextLayer::jwt` a `JwtConfig`"
            );
        }
        let shared = Shared { access: Arc::new(self.access), rebuilds: self.rebuilds };
        Router::new()
            .route("/admin/api/me", get(me))
            .route("/admin/api/projections", get(projections))
            .route("/admin/api/projections/{name}", get(projection))
            .route("/admin/api/projections/{name}/rebuild", get(rebuild_progress).post(start_rebuild))
            .route("/admin/api/projections/{name}/dead-letters", get(dead_letters))
            .route("/admin/api/projections/{name}/dead-letters/{event_id}/{action}", post(resolve_dead_letter))
            .route("/admin/api/outbox", get(outbox_counts))
            .route("/admin/api/outbox/pending", get(outbox_pending))
            .route("/admin/api/outbox/dead", get(outbox_dead))
            .route("/admin/api/outbox/retry", post(retry_outbox))
            .route("/admin/api/sagas", get(sagas))
            .route("/admin/api/sagas/{id}", get(saga))
            .route("/admin/api/sagas/{id}/retry", post(retry_saga))
            .route("/admin/api/sagas/{id}/compensate", post(compensate_saga))
            .route("/admin/api/schedules", get(schedules))
            .route("/admin/api/schedules/{id}/cancel", post(cancel_schedule))
            .route("/admin/api/jobs", get(jobs))
            .route("/admin/api/jobs/stats", get(job_stats))
            .route("/admin/api/jobs/cancel", post(cancel_jobs))
            .route("/admin/api/jobs/retry", post(retry_jobs))
            .route("/admin/api/jobs/purge", post(purge_jobs))
            .route("/admin/api/events", get(events))
            .route("/admin/api/streams/{stream_type}/{stream_id}", get(stream))
            .route("/admin/api/tenants", get(tenants))
            .layer(axum::middleware::map_response(not_stored))
            .with_state(shared)
    }
}

/// What operators read is not kept by browsers or proxies.
async fn not_stored(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /admin`: the page, outside the context layer.
pub(crate) async fn page() -> Response {
    let mut response = axum::response::Html(PAGE.html).into_response();
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&PAGE.policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page, and the policy that lets its own script and style run and nothing else.
struct Page {
    html: &'static str,
    policy: String,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let html = include_str!("admin/page.html");
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        inline_hash(html, "script"),
        inline_hash(html, "style"),
    );
    Page { html, policy }
});

/// The CSP source (`'sha256-..'`) of the one inline `<tag>` element of `html`.
fn inline_hash(html: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let body = html.split_once(&open).and_then(|(_, rest)| rest.split_once(&close)).map_or("", |(body, _)| body);
    let digest = Sha256::digest(body.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

// ---- who asks --------------------------------------------------------------------------

#[derive(Clone)]
struct Shared {
    access: Arc<Access>,
    rebuilds: Rebuilds,
}

impl Access {
    /// Whether the verified claims may use the API.
    fn allows(&self, claims: &Claims) -> bool {
        match &self.authorize {
            Some(allow) => allow(claims),
            None => names_role(claims.get(&self.claim), &self.role),
        }
    }

    fn refusal(&self, principal: &str) -> Problem {
        Problem::forbidden(match &self.authorize {
            Some(_) => format!("`{principal}` may not use the admin API"),
            None => format!(
                "`{principal}` may not use the admin API: the token's `{}` claim does not name the role `{}`",
                self.claim, self.role
            ),
        })
    }
}

/// Whether a roles claim (an array of strings, or roles separated by spaces) names `role`.
fn names_role(claim: Option<&Value>, role: &str) -> bool {
    match claim {
        Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(role)),
        Some(Value::String(roles)) => roles.split_whitespace().any(|r| r == role),
        _ => false,
    }
}

/// An operator allowed to use the API, with the [`Admin`] of the request's tenant.
struct Operator {
    admin: Admin,
    principal: String,
}

impl FromRequestParts<Shared> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, shared: &Shared) -> Result<Self, Problem> {
        let context = parts.extensions.get::<RequestContext>().cloned().unwrap_or_default();
        let claims = parts.extensions.get::<Claims>();
        let (Some(claims), Some(principal)) = (claims, context.principal) else {
            return Err(Problem::unauthorized("the admin API needs a verified bearer token with a `sub`", None));
        };
        if !shared.access.allows(claims) {
            return Err(shared.access.refusal(&principal));
        }
        let Application(app) = Application::from_request_parts(parts, shared).await?;
        Ok(Operator { admin: app.admin().for_tenant(context.tenant_id), principal })
    }
}

/// Path parameters; one that does not decode is a 400 problem.
struct PathParams<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(PathParams(params)),
            Err(rejection) => Err(Problem::bad_request(rejection.body_text())),
        }
    }
}

/// The query string; one that does not decode is a 400 problem.
struct Query<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(Query)
            .map_err(|e| Problem::bad_request(format!("the query string does not decode: {e}")))
    }
}

fn uuid(what: &str, text: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(text).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        Problem::bad_request(format!("{what} must be a UUID, not `{shown}`"))
    })
}

/// `limit`, defaulted and bounded.
fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

type Answer<T> = Result<Json<T>, Problem>;

async fn me(operator: Operator) -> Json<Value> {
    Json(json!({"principal": operator.principal, "tenant": operator.admin.tenant()}))
}

// ---- projections -----------------------------------------------------------------------

async fn projections(Operator { admin, .. }: Operator) -> Answer<Vec<cqrs_ddd::admin::ProjectionView>> {
    Ok(Json(admin.projections().await?))
}

async fn projection(
    Operator { admin, .. }: Operator,
    PathParams(name): PathParams<String>,
) -> Answer<cqrs_ddd::admin::ProjectionView> {
    Ok(Json(admin.projection_status(&name).await?))
}

async fn dead_letters(
    Operator { admin, .. }: Operator,
    PathParams(name): PathParams<String>,
) -> Answer<Vec<cqrs_ddd::admin::DeadLetterView>> {
    Ok(Json(admin.dead_letters(&name).await?))
}

/// What becomes of a dead letter.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LetterAction {
    /// Applied again, then dropped.
    Retry,
    /// Dropped without being applied.
    Skip,
}

/// `POST /admin/api/projections/{name}/dead-letters/{event_id}/{retry|skip}`; 404 when
/// the projection has no such letter.
async fn resolve_dead_letter(
    Operator { admin, .. }: Operator,
    PathParams((name, event_id, action)): PathParams<(String, String, LetterAction)>,
) -> Result<StatusCode, Problem> {
    let event_id = uuid("the event id", &event_id)?;
    let control = admin.projection(&name)?;
    if !control.dead_letters().await?.iter().any(|l| l.event_id == event_id) {
        let what = format!("dead letter of event {event_id} in projection `{}`", control.scope());
        return Err(Error::Missing { what }.into());
    }
    match action {
        LetterAction::Retry => control.retry_dead_letter(event_id).await?,
        LetterAction::Skip => control.skip_dead_letter(event_id).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- rebuilds --------------------------------------------------------------------------

/// The rebuilds started through the page, by checkpoint scope.
#[derive(Debug, Clone, Default)]
struct Rebuilds(Arc<Mutex<HashMap<String, Rebuild>>>);

/// Where a rebuild stands.
#[derive(Debug, Clone, Default)]
struct Rebuild {
    running: bool,
    /// The progress last heard (`None`: none yet).
    progress: Option<Progress>,
    error: Option<String>,
}

/// A rebuild as the API answers it.
#[derive(Debug, Serialize)]
struct RebuildView {
    projection: String,
    running: bool,
    read: u64,
    applied: u64,
    total: u64,
    percent: f64,
    stopped: bool,
    error: Option<String>,
}

impl Rebuilds {
    fn change<T>(&self, change: impl FnOnce(&mut HashMap<String, Rebuild>) -> T) -> T {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn view(&self, scope: &str) -> RebuildView {
        let rebuild = self.change(|all| all.get(scope).cloned()).unwrap_or_default();
        let progress = rebuild.progress.unwrap_or_default();
        RebuildView {
            projection: scope.to_owned(),
            running: rebuild.running,
            read: progress.read,
            applied: progress.applied,
            total: progress.total,
            // Nothing heard yet is nothing done, though nothing to read would be 100 %.
            percent: rebuild.progress.map_or(0.0, |p| p.percent()),
            stopped: progress.stopped,
            error: rebuild.error,
        }
    }

    /// Marks the rebuild of `scope` started; `false` when one is running already.
    fn start(&self, scope: &str) -> bool {
        self.change(|all| {
            let rebuild = all.entry(scope.to_owned()).or_default();
            if rebuild.running {
                return false;
            }
            *rebuild = Rebuild { running: true, ..Rebuild::default() };
            true
        })
    }

    fn heard(&self, scope: &str, progress: Progress) {
        self.change(|all| all.entry(scope.to_owned()).or_default().progress = Some(progress));
    }

    fn finished(&self, scope: &str, outcome: Result<Progress, String>) {
        self.change(|all| {
            let rebuild = all.entry(scope.to_owned()).or_default();
            rebuild.running = false;
            match outcome {
                Ok(progress) => rebuild.progress = Some(progress),
                Err(error) => rebuild.error = Some(error),
            }
        });
    }

    /// Rebuilds the projection in a task of its own, recording its progress.
    fn run(&self, control: ProjectionControl) {
        let rebuilds = self.clone();
        let scope = control.scope();
        tokio::spawn(async move {
            let reporter = rebuilds.clone();
            let name = scope.clone();
            // A task of its own, so that a panic is reported as a failed rebuild.
            let rebuild = tokio::spawn(async move {
                control
                    .rebuild(|progress| {
                        reporter.heard(&name, *progress);
                        ControlFlow::Continue(())
                    })
                    .await
            });
            let outcome = match rebuild.await {
                Ok(Ok(progress)) => Ok(progress),
                Ok(Err(e)) => {
                    tracing::warn!(projection = %scope, error = %e, "rebuild failed");
                    Err(e.to_string())
                }
                Err(e) => {
                    tracing::error!(projection = %scope, error = %e, "rebuild task failed");
                    Err(format!("the rebuild stopped: {e}"))
                }
            };
            rebuilds.finished(&scope, outcome);
        });
    }
}

async fn start_rebuild(
    Operator { admin, principal }: Operator,
    State(shared): State<Shared>,
    PathParams(name): PathParams<String>,
) -> Result<(StatusCode, Json<RebuildView>), Problem> {
    let control = admin.projection(&name)?;
    let scope = control.scope();
    if !shared.rebuilds.start(&scope) {
        return Err(Problem::conflict(format!("projection `{scope}` is being rebuilt already")));
    }
    tracing::info!(projection = %scope, principal = %principal, "rebuild started from the admin page");
    shared.rebuilds.run(control);
    Ok((StatusCode::ACCEPTED, Json(shared.rebuilds.view(&scope))))
}

async fn rebuild_progress(
    Operator { admin, .. }: Operator,
    State(shared): State<Shared>,
    PathParams(name): PathParams<String>,
) -> Answer<RebuildView> {
    let scope = admin.projection(&name)?.scope();
    Ok(Json(shared.rebuilds.view(&scope)))
}

// ---- outbox ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn outbox_counts(Operator { admin, .. }: Operator) -> Answer<Value> {
    let counts = admin.outbox_counts().await?;
    Ok(Json(json!({"pending": counts.pending, "dead": counts.dead})))
}

async fn outbox_pending(
    Operator { admin, .. }: Operator,
    Query(query): Query<Limit>,
) -> Answer<Vec<cqrs_ddd::admin::OutboxView>> {
    Ok(Json(admin.outbox_pending(limit(query.limit)).await?))
}

async fn outbox_dead(Operator { admin, .. }: Operator) -> Answer<Vec<cqrs_ddd::admin::OutboxView>> {
    Ok(Json(admin.outbox_dead().await?))
}

#[derive(Deserialize)]
struct RetryOutbox {
    #[serde(default)]
    ids: Vec<Uuid>,
}

async fn retry_outbox(Operator { admin, .. }: Operator, Cmd(body): Cmd<RetryOutbox>) -> Answer<Value> {
    Ok(Json(json!({"retried": admin.retry_outbox(&body.ids).await?})))
}

// ---- sagas -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct SagaListing {
    #[serde(rename = "type")]
    saga_type: Option<String>,
    /// Statuses separated by commas.
    status: Option<String>,
    limit: Option<usize>,
}

/// A saga instance named by the path's id and, optionally, the query's `type`.
struct SagaRef {
    id: String,
    saga_type: Option<String>,
}

impl SagaRef {
    fn saga_type(&self) -> Option<&str> {
        self.saga_type.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SagaRef {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        #[derive(Deserialize)]
        struct SagaType {
            #[serde(rename = "type")]
            saga_type: Option<String>,
        }
        let PathParams(id) = PathParams::<String>::from_request_parts(parts, state).await?;
        let Query(query) = Query::<SagaType>::from_request_parts(parts, state).await?;
        Ok(SagaRef { id, saga_type: query.saga_type })
    }
}

#[derive(Deserialize)]
struct Compensation {
    reason: Option<String>,
}

fn statuses(text: Option<&str>) -> Result<Vec<SagaStatus>, Problem> {
    let names = text.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty());
    names
        .map(|name| {
            serde_json::from_value(Value::String(name.to_owned())).map_err(|_| {
                let known: Vec<String> = SagaStatus::ALL.iter().map(|s| json!(s).to_string()).collect();
                Problem::bad_request(format!("`{name}` is not a saga status; write one of {}", known.join(", ")))
            })
        })
        .collect()
}

async fn sagas(
    Operator { admin, .. }: Operator,
    Query(query): Query<SagaListing>,
) -> Answer<Vec<cqrs_ddd::admin::SagaView>> {
    let statuses = statuses(query.status.as_deref())?;
    Ok(Json(admin.sagas(query.saga_type.as_deref(), &statuses, limit(query.limit)).await?))
}

async fn saga(Operator { admin, .. }: Operator, saga: SagaRef) -> Answer<cqrs_ddd::admin::SagaView> {
    Ok(Json(admin.saga(saga.saga_type(), &saga.id).await?))
}

async fn retry_saga(Operator { admin, .. }: Operator, saga: SagaRef) -> Answer<cqrs_ddd::admin::SagaView> {
    Ok(Json(admin.retry_saga(saga.saga_type(), &saga.id).await?))
}

async fn compensate_saga(
    Operator { admin, principal }: Operator,
    saga: SagaRef,
    Cmd(body): Cmd<Compensation>,
) -> Answer<cqrs_ddd::admin::SagaView> {
    let reason = body.reason.unwrap_or_else(|| format!("compensated by `{principal}` from the admin page"));
    Ok(Json(admin.compensate_saga(saga.saga_type(), &saga.id, &reason).await?))
}

// ---- scheduled commands ----------------------------------------------------------------

#[derive(Deserialize)]
struct ScheduleListing {
    #[serde(default)]
    dead: bool,
    limit: Option<usize>,
}

async fn schedules(
    Operator { admin, .. }: Operator,
    Query(query): Query<ScheduleListing>,
) -> Answer<Vec<cqrs_ddd::admin::ScheduleView>> {
    Ok(Json(admin.schedules(query.dead, limit(query.limit)).await?))
}

async fn cancel_schedule(
    Operator { admin, .. }: Operator,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    admin.cancel_schedule(uuid("the scheduled command's id", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- background jobs -------------------------------------------------------------------

#[derive(Deserialize)]
struct JobListing {
    /// Statuses separated by commas.
    status: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn jobs(
    Operator { admin, .. }: Operator,
    Query(query): Query<JobListing>,
) -> Answer<Vec<cqrs_ddd::admin::JobView>> {
    let names = query.status.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty());
    let statuses = names
        .map(|name| name.parse::<JobStatus>().map_err(|e| Problem::bad_request(format!("`status`: {e}"))))
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok(Json(admin.jobs(&statuses, limit(query.limit), query.offset.unwrap_or(0)).await?))
}

async fn job_stats(Operator { admin, .. }: Operator) -> Answer<cqrs_ddd::ports::JobStats> {
    Ok(Json(admin.job_stats().await?))
}

#[derive(Deserialize)]
struct JobIds {
    ids: Vec<Uuid>,
}

async fn cancel_jobs(Operator { admin, .. }: Operator, Cmd(body): Cmd<JobIds>) -> Answer<cqrs_ddd::admin::BulkOutcome> {
    Ok(Json(admin.cancel_jobs(&body.ids).await?))
}

async fn retry_jobs(Operator { admin, .. }: Operator, Cmd(body): Cmd<JobIds>) -> Answer<cqrs_ddd::admin::BulkOutcome> {
    Ok(Json(admin.retry_jobs(&body.ids).await?))
}

#[derive(Deserialize)]
struct Purge {
    /// An RFC 3339 time.
    before: chrono::DateTime<chrono::Utc>,
}

async fn purge_jobs(Operator { admin, .. }: Operator, Cmd(body): Cmd<Purge>) -> Answer<Value> {
    Ok(Json(json!({"purged": admin.purge_jobs(body.before).await?})))
}

// ---- events ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct EventListing {
    after: Option<String>,
    limit: Option<usize>,
}

async fn events(
    Operator { admin, .. }: Operator,
    Query(query): Query<EventListing>,
) -> Answer<Vec<cqrs_ddd::admin::EventView>> {
    let limit = limit(query.limit);
    let events = match query.after {
        Some(after) => {
            let after: Cursor = after
                .parse()
                .map_err(|e: cqrs_ddd::domain::BadCursor| Problem::bad_request(format!("`after`: {e}")))?;
            admin.events_after(after, limit).await?
        }
        None => admin.latest(limit).await?,
    };
    Ok(Json(events))
}

async fn stream(
    Operator { admin, .. }: Operator,
    PathParams((stream_type, stream_id)): PathParams<(String, String)>,
) -> Answer<Vec<cqrs_ddd::admin::StreamEventView>> {
    Ok(Json(admin.stream(&stream_type, &stream_id).await?))
}

async fn tenants(Operator { admin, .. }: Operator) -> Answer<Vec<String>> {
    Ok(Json(admin.tenants().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_an_array_or_a_spaced_string() {
        assert!(names_role(Some(&json!(["dev", "admin"])), "admin"));
        assert!(names_role(Some(&json!("dev admin")), "admin"));
        assert!(!names_role(Some(&json!("administrator")), "admin"));
        assert!(!names_role(Some(&json!(["dev", 7])), "admin"));
        assert!(!names_role(Some(&json!({"admin": true})), "admin"));
        assert!(!names_role(None, "admin"));
    }

    #[test]
    fn statuses_are_read_from_a_list() {
        assert_eq!(statuses(Some("failed, compensating")).unwrap(), [SagaStatus::Failed, SagaStatus::Compensating]);
        assert!(statuses(None).unwrap().is_empty());
        let refused = statuses(Some("failed,lost")).unwrap_err();
        assert!(refused.detail_text().unwrap().contains("`lost`"), "{refused:?}");
    }

    #[test]
    fn the_policy_admits_the_page_s_own_script_and_style_only() {
        let policy = &PAGE.policy;
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(
            !inline_hash(PAGE.html, "script").contains("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
            "not empty"
        );
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None), DEFAULT_LIMIT);
        assert_eq!(limit(Some(0)), 1);
        assert_eq!(limit(Some(1_000_000)), MAX_LIMIT);
    }
}
