//! The framework's metrics (see [`cqrs_ddd::metrics`]) in the Prometheus text format, at
//! `GET /metrics`.
//!
//! ```no_run
//! use cqrs_ddd_axum::metrics::PrometheusMetrics;
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = PrometheusMetrics::install()?; // once, before the application runs
//! let app = cqrs_ddd::App::builder().middleware(cqrs_ddd::MetricsMiddleware).build()?;
//! let router: axum::Router = metrics.routes();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! axum::serve(listener, router).await?;
//! # drop(app); Ok(()) }
//! ```
//!
//! Commands and queries by name, outcome and latency are counted by
//! [`cqrs_ddd::MetricsMiddleware`], which the application adds; everything else in the
//! table of [`cqrs_ddd::metrics`] is recorded as soon as the recorder is installed.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The upper bounds, in seconds, of the buckets of the framework's histograms: from half
/// a millisecond (a command on the in-memory store) to ten seconds (a stuck broker).
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often the recorder drains what it buffered, whether or not anyone scrapes it.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The exporter refused its settings.
    #[error("cannot build the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
    /// Another `metrics` recorder is installed in this process; there is one per process.
    #[error("another `metrics` recorder is already installed in this process")]
    OtherRecorder,
}

static INSTALLED: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder: [`PrometheusMetrics::render`] and the route
/// [`PrometheusMetrics::routes`] serve what it recorded. Cheap to clone.
#[derive(Clone)]
pub struct PrometheusMetrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl PrometheusMetrics {
    /// Installs the global `metrics` recorder, with [`SECONDS_BUCKETS`] for every
    /// histogram of [`cqrs_ddd::metrics::ALL`] and their help texts; a thread drains it
    /// every five seconds. Installing again returns the same recorder;
    /// [`InstallError::OtherRecorder`] when another program part installed its own.
    pub fn install() -> Result<PrometheusMetrics, InstallError> {
        static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _once = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(handle) = INSTALLED.get() {
            return Ok(PrometheusMetrics { handle: handle.clone() });
        }
        let mut builder = PrometheusBuilder::new();
        for name in cqrs_ddd::metrics::histograms() {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), SECONDS_BUCKETS)?;
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        ::metrics::set_global_recorder(recorder).map_err(|_| InstallError::OtherRecorder)?;
        let handle = INSTALLED.get_or_init(|| handle).clone();
        cqrs_ddd::metrics::describe();
        let upkeep = handle.clone();
        let started = std::thread::Builder::new().name("cqrs-ddd-metrics-upkeep".to_owned()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; the recorder is drained when scraped");
        }
        Ok(PrometheusMetrics { handle })
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The exporter's handle, to combine with other routes or tasks.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }

    /// `GET /metrics`, answering [`PrometheusMetrics::render`] as [`CONTENT_TYPE`]; merge
    /// it into the application's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let metrics = self.clone();
        Router::new().route("/metrics", get(move || std::future::ready(metrics.response())))
    }

    /// The answer of `GET /metrics`, for a handler of your own.
    pub fn response(&self) -> impl IntoResponse + use<> {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.render())
    }
}
