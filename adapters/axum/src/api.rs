//! [`Api`]: one builder for the routes of an application.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, RawQuery};
use axum::routing::{MethodRouter, get, post};
use cqrs_ddd::Mediator;
use cqrs_ddd::spec::ReadModel;
use utoipa::openapi::OpenApi;

use crate::admin::{self, AdminPage};
use crate::context::{AuthConfig, ContextLayer};
use crate::extract::{Application, Context};
use crate::health;
use crate::messages;
use crate::openapi::{self, Spec};
use crate::problem::Problem;
use crate::read_model::{self, ReadModelRoute};

type Customize = Arc<dyn Fn(&mut OpenApi) + Send + Sync>;

/// A group of routes an [`Api`] may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Commands,
    Queries,
    Health,
    OpenApi,
}

/// The HTTP API of an application: pick what it serves, then take the
/// [`axum::Router`].
///
/// Every route it serves runs behind the [`ContextLayer`] (a default one unless
/// [`Api::context`] gives another) with the application in the request's extensions, so
/// the [`Application`] and [`Context`] extractors work in routes added with
/// [`Api::route`] and [`Api::merge`] too.
///
/// | call | serves |
/// | --- | --- |
/// | [`Api::commands`] | `POST /commands/{name}` |
/// | [`Api::queries`] | `GET` and `POST /queries/{name}` |
/// | [`Api::read_model`] | `GET /read-models/{collection}` |
/// | [`Api::health`] | `GET /health/live`, `GET /health/ready` |
/// | [`Api::metrics`] | `GET /metrics` (Prometheus) |
/// | [`Api::openapi`] | `GET /openapi.json` |
/// | [`Api::admin`] | `GET /admin` and the admin API under `/admin/api` |
/// | [`Api::route`], [`Api::merge`] | your own routes |
#[must_use]
pub struct Api {
    app: Mediator,
    context: ContextLayer,
    serves: Vec<Part>,
    read_models: Vec<ReadModelRoute>,
    title: String,
    version: String,
    routes: Router,
    customize: Vec<Customize>,
    metrics: Option<crate::metrics::PrometheusMetrics>,
    admin: Option<AdminPage>,
}

impl Api {
    /// An API over `app` serving nothing yet.
    pub fn new(app: Mediator) -> Self {
        Api {
            app,
            context: ContextLayer::new(),
            serves: Vec::new(),
            read_models: Vec::new(),
            title: "cqrs-ddd application".to_owned(),
            version: "1".to_owned(),
            routes: Router::new(),
            customize: Vec::new(),
            metrics: None,
            admin: None,
        }
    }

    fn serve(mut self, part: Part) -> Self {
        if !self.serves.contains(&part) {
            self.serves.push(part);
        }
        self
    }

    fn serves(&self, part: Part) -> bool {
        self.serves.contains(&part)
    }

    /// The context layer every route runs behind (tenant, token, correlation id).
    pub fn context(mut self, layer: ContextLayer) -> Self {
        self.context = layer;
        self
    }

    /// Serves every registered command at `POST /commands/{name}` (see [`messages`]).
    pub fn commands(self) -> Self {
        self.serve(Part::Commands)
    }

    /// Serves every registered query at `GET` and `POST /queries/{name}` (see
    /// [`messages`]).
    pub fn queries(self) -> Self {
        self.serve(Part::Queries)
    }

    /// Serves the read model `T` at `GET /read-models/{T::COLLECTION}` (see
    /// [`read_model`]).
    pub fn read_model<T: ReadModel>(self) -> Self {
        self.mount_read_model::<T>(None)
    }

    /// [`Api::read_model`], documenting each document with `T`'s schema.
    pub fn read_model_with_schema<T: ReadModel + utoipa::ToSchema>(self) -> Self {
        let mut named = Vec::new();
        T::schemas(&mut named);
        let named = named.into_iter().filter_map(|(name, s)| Some((name, serde_json::to_value(s).ok()?))).collect();
        let schema = serde_json::to_value(T::schema()).ok().map(|s| (s, named));
        self.mount_read_model::<T>(schema)
    }

    fn mount_read_model<T: ReadModel>(
        mut self,
        schema: Option<(serde_json::Value, Vec<(String, serde_json::Value)>)>,
    ) -> Self {
        self.read_models.retain(|r| r.collection != T::COLLECTION);
        self.read_models.push(ReadModelRoute { collection: T::COLLECTION, allow: Arc::new(T::allow_list()), schema });
        self
    }

    /// Serves `GET /health/live` and `GET /health/ready` (see [`health`]).
    pub fn health(self) -> Self {
        self.serve(Part::Health)
    }

    /// Serves `GET /metrics`: the framework's metrics (and any other the program records
    /// through the `metrics` crate) in Prometheus' text format, from the recorder
    /// [`PrometheusMetrics::install`](crate::metrics::PrometheusMetrics::install) installed.
    pub fn metrics(mut self, metrics: crate::metrics::PrometheusMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves the OpenAPI document of everything above at `GET /openapi.json` (see
    /// [`openapi`](crate::openapi)).
    pub fn openapi(self) -> Self {
        self.serve(Part::OpenApi)
    }

    /// Serves the operators' admin page at `GET /admin` and its JSON API under
    /// `/admin/api` (see [`admin`](crate::admin)). The page is served outside the context
    /// layer (it holds no data); its API runs behind it, for principals `page` allows.
    /// The admin API is not in the OpenAPI document.
    pub fn admin(mut self, page: AdminPage) -> Self {
        self.admin = Some(page);
        self
    }

    /// The title and version in the OpenAPI document.
    pub fn info(mut self, title: impl Into<String>, version: impl Into<String>) -> Self {
        self.title = title.into();
        self.version = version.into();
        self
    }

    /// Changes the OpenAPI document before it is served (to describe routes added with
    /// [`Api::route`], for example by merging a document from `utoipa::OpenApi`).
    pub fn customize_openapi(mut self, change: impl Fn(&mut OpenApi) + Send + Sync + 'static) -> Self {
        self.customize.push(Arc::new(change));
        self
    }

    /// Adds a route of your own, behind the same layers (a typed route such as
    /// `POST /accounts/{id}/deposits` calling `app.send`; see [`crate::Cmd`]).
    pub fn route(mut self, path: &str, method_router: MethodRouter) -> Self {
        self.routes = self.routes.route(path, method_router);
        self
    }

    /// Adds the routes of `router`, behind the same layers.
    pub fn merge(mut self, router: Router) -> Self {
        self.routes = self.routes.merge(router);
        self
    }

    /// The OpenAPI document of what this API serves.
    pub fn document(&self) -> OpenApi {
        let auth = self.context.auth_config();
        let spec = Spec {
            title: &self.title,
            version: &self.version,
            messages: if self.serves(Part::Commands) || self.serves(Part::Queries) {
                self.app.messages()
            } else {
                Vec::new()
            },
            commands: self.serves(Part::Commands),
            queries: self.serves(Part::Queries),
            read_models: &self.read_models,
            health: self.serves(Part::Health),
            metrics: self.metrics.is_some(),
            bearer: auth.map(|a| a == AuthConfig::Required),
            tenant_header: self.context.tenant_header_name(),
        };
        let mut doc = openapi::document(&spec);
        for change in &self.customize {
            change(&mut doc);
        }
        doc
    }

    /// The router.
    pub fn router(mut self) -> Router {
        let document = self.serves(Part::OpenApi).then(|| self.document());
        let mut router = Router::new();
        if self.serves(Part::Commands) {
            router = router.route("/commands/{name}", post(messages::send_command));
        }
        if self.serves(Part::Queries) {
            router = router.route("/queries/{name}", get(messages::get_query).post(messages::post_query));
        }
        for route in std::mem::take(&mut self.read_models) {
            let path = route.path();
            let route = Arc::new(route);
            router = router.route(
                &path,
                get(move |app: Application, context: Context, query: RawQuery| {
                    let route = route.clone();
                    async move { read_model::page(&route, app, context, query).await }
                }),
            );
        }
        if self.serves(Part::Health) {
            router = router.route("/health/live", get(health::live)).route("/health/ready", get(health::ready));
        }
        if let Some(metrics) = &self.metrics {
            router = router.merge(metrics.routes());
        }
        if let Some(document) = document {
            let body = axum::body::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
            router = router.route(
                "/openapi.json",
                get(move || {
                    let body = body.clone();
                    async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
                }),
            );
        }
        let admin_page = self.admin.is_some();
        if let Some(page) = self.admin.take() {
            router = router.merge(page.api_routes(self.context.verifies_tokens()));
        }
        let router = router
            .merge(self.routes)
            .fallback(|uri: axum::http::Uri| async move { Problem::no_route(uri.path()) })
            .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
                Problem::method_not_allowed(method.as_str(), uri.path())
            })
            .layer(Extension(self.app))
            .layer(self.context);
        // Added after the layers: the page loads before the operator has given a token.
        if admin_page { router.route(admin::PAGE_PATH, get(admin::page)) } else { router }
    }
}
