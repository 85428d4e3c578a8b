//! HTTP for cqrs-ddd applications on axum: commands and queries by name, read models with
//! filters, health and an OpenAPI document, every request in its own context (correlation
//! id, tenant, principal from a verified bearer token) and every error an RFC 9457 problem.
//!
//! ```rust,standalone_crate
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd_axum::{Api, ContextLayer};
//! use tower::ServiceExt;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Debug, thiserror::Error, Serialize)]
//! pub enum AccountError { #[error("amounts must be positive")] ZeroAmount }
//!
//! #[aggregate(id = String, events(Deposited), error = AccountError)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Account { balance: u64 }
//!
//! #[aggregate]
//! impl Account {
//!     #[handle(create_if_missing)]
//!     fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
//!         if cmd.amount == 0 { return Err(AccountError::ZeroAmount) }
//!         Ok(vec![Deposited { amount: cmd.amount }.into()])
//!     }
//!     #[apply]
//!     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
//! }
//!
//! #[command(aggregate = Account)]
//! #[derive(Deserialize)]                       // sent by name: `POST /commands/Deposit`
//! pub struct Deposit { #[id] pub account: String, pub amount: u64 }
//!
//! #[query]
//! #[derive(Deserialize)]                       // asked by name: `GET /queries/GetBalance?account=..`
//! pub struct GetBalance { pub account: String }
//!
//! #[query_handler]
//! async fn balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
//!     Ok(ctx.load::<Account>(&q.account).await?.state.balance)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! let app = App::builder().build()?;
//! let router = Api::new(app)
//!     .context(ContextLayer::new())              // x-tenant-id, x-correlation-id, traceparent
//!     .commands()
//!     .queries()
//!     .health()
//!     .openapi()
//!     .router();
//! // A service would serve it:
//! // axum::serve(tokio::net::TcpListener::bind("0.0.0.0:8080").await?, router).await?;
//!
//! let deposit = Request::post("/commands/Deposit")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"account": "a-1", "amount": 70}"#))?;
//! let response = router.clone().oneshot(deposit).await?;
//! assert_eq!(response.status(), StatusCode::OK);       // {"position": "1", "response": null}
//! assert!(response.headers().contains_key("x-cqrs-position"));
//!
//! let ask = Request::get("/queries/GetBalance?account=a-1").body(Body::empty())?;
//! let response = router.clone().oneshot(ask).await?;
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"70");
//!
//! let refused = Request::post("/commands/Deposit")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"account": "a-1", "amount": 0}"#))?;
//! let response = router.oneshot(refused).await?;
//! assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! # Ok(()) }
//! ```
//!
//! # What an [`Api`] serves
//!
//! | route | what | module |
//! | --- | --- | --- |
//! | `POST /commands/{name}` | sends the command registered under `name` with the JSON body; answers `{"position", "response"}` and `x-cqrs-position`; `Idempotency-Key` sends it once | [`messages`] |
//! | `GET /queries/{name}?..`, `POST /queries/{name}` | asks the query, from the query string or the JSON body; `x-cqrs-min-position` reads your own writes | [`messages`] |
//! | `GET /read-models/{collection}?filter=..&sort=..&limit=..&cursor=..&fields=..` | a page of a `#[derive(ReadModel)]` read model for the request's tenant and principal | [`read_model`] |
//! | `GET /health/live`, `GET /health/ready` | the runtime's health report; 503 when not ready | [`health`] |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of all of the above | [`openapi`] |
//! | `GET /admin`, `/admin/api/..` | the operators' page: projections (rebuild with progress, dead letters), sagas, outbox, scheduled commands, events, tenants ([`Api::admin`]) | [`admin`] |
//! | your routes ([`Api::route`]) | typed paths such as `POST /accounts/{id}/deposits`, with the [`Application`], [`Context`] and [`Cmd`] extractors | [`extract`] |
//!
//! Every route runs behind the [`ContextLayer`]: the request's correlation id (from
//! `traceparent`, else `x-correlation-id`, else new; echoed on every response), tenant
//! (the `x-tenant-id` header, a token claim or a resolver, which must agree) and principal
//! (the `sub` of a bearer token verified with a [`JwtConfig`]: HS256, RS256, ES256 or a
//! JWKS file) make the [`cqrs_ddd::RequestContext`] in which the handler's `app.send` and
//! `app.query` run. So tenancy holds over HTTP as it does in process: a request of one
//! tenant reads and writes that tenant's streams and documents only.
//!
//! # Errors
//!
//! Every error is a [`Problem`] (`application/problem+json`) whose `type` is one of the
//! URIs listed in [`problem`], under `https://cqrs-ddd.dev/problems/`: a domain error is
//! 422 with its type, message and fields; conflicts 409; missing aggregates and unknown
//! message names 404; bodies, filters and validation 400 (with the `path` of the field
//! that did not decode where it is known); tokens 401 with `WWW-Authenticate: Bearer`;
//! tenants 403; transient failures (the database away, a busy lock, a wait that ran out)
//! 503 with `Retry-After`; anything else 500, logged and never shown. `impl From<Error>
//! for Problem` lets a typed route answer `app.send(..).await?`.
//!
//! # Read your own writes
//!
//! A command's `position` (`x-cqrs-position`) is where the reader of all events stands
//! once it has read the command's last event. Give it back to a query as
//! `x-cqrs-min-position` and the query first waits until the projections it reads
//! (`#[query(reads = ..)]`, else all of them) have reached it, in this process or any
//! other sharing the read-model store, for `x-cqrs-wait-ms` at most (5 s by default,
//! 30 s at most); a wait that runs out is a 503 problem. The position is a string
//! (`"42"`, or `"7301.42"` on PostgreSQL, whose commit order is its transactions'):
//! pass it back as it is.
//!
//! # The admin page
//!
//! [`Api::admin`] serves the operators' page at `GET /admin`: one HTML document, with no
//! data and nothing fetched from elsewhere, whose script calls a JSON API under
//! `/admin/api` with the operator's bearer token (`/admin#token=..`, or pasted into the
//! page). It lists the projections (with a rebuild and its live progress), their dead
//! letters (retry, skip), sagas by status with their history (retry, compensate), the
//! outbox's dead rows (retry), scheduled commands (cancel), events and streams, and the
//! tenants. Every API call needs a verified principal whose token names the page's role
//! (`roles: ["admin"]` by default), else 401 or 403, and is narrowed to the request's
//! tenant when it has one. See [`admin`] for the routes.
//!
//! ```rust,standalone_crate
//! use cqrs_ddd::App;
//! use cqrs_ddd_axum::admin::AdminPage;
//! use cqrs_ddd_axum::{Api, ContextLayer, JwtConfig};
//!
//! # fn main() -> cqrs_ddd::Result<()> {
//! let router = Api::new(App::builder().build()?)
//!     .context(ContextLayer::new().jwt(JwtConfig::hs256(b"a secret of at least 32 bytes....")))
//!     .commands()
//!     .admin(AdminPage::new().role("ops").role_claim("groups"))
//!     .router();
//! # let _: axum::Router = router;
//! # Ok(()) }
//! ```
//!
//! # OpenAPI
//!
//! The document is generated from the runtime's catalogue of messages
//! ([`cqrs_ddd::Mediator::messages`]): a command or query whose type derives
//! `utoipa::ToSchema` (add `utoipa = "5"` to your dependencies) is described by its
//! schema, the others by a generic one; a read model mounted with
//! [`Api::read_model_with_schema`] likewise. This crate turns on the runtime's `openapi`
//! feature. Routes you add yourself are described with [`Api::customize_openapi`]. The
//! admin API is left out: it is the admin page's, not a contract for clients.
//!
//! # Cargo features
//!
//! None. Tokens are verified with the pure-Rust (RustCrypto) backend of `jsonwebtoken`,
//! installed for the process when a [`JwtConfig`] is given, unless another backend was
//! installed first.
//!
//! # Caveats
//!
//! - The tenant header is trusted as sent. When tenants come from tokens only, turn it
//!   off with [`ContextLayer::no_tenant_header`].
//! - A JWKS file is read once, when the [`JwtConfig`] is made; rotate keys by building a
//!   new layer (a restart).
//! - [`Application`] reads the mediator from the request's extensions, which [`Api`]
//!   fills; a router of your own with the mediator as its state can use axum's
//!   `State<Mediator>` instead.
//! - Doctests and tests that define messages run as standalone crates: `inventory`
//!   registers every message linked into a binary, and two test domains in one binary
//!   would share names.

pub mod admin;
mod api;
pub mod context;
pub mod extract;
pub mod health;
pub mod jwt;
pub mod messages;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "otel")]
pub mod otel;
pub mod problem;
pub mod read_model;

pub use api::Api;
pub use context::{AuthConfig, Claims, ContextLayer, ContextService};
pub use extract::{Application, Cmd, Context};
pub use jwt::{JwtConfig, JwtConfigError, TokenError};
pub use problem::Problem;
