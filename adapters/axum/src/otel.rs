//! OpenTelemetry traces over OTLP/HTTP (protobuf), with the framework's spans joined into
//! one trace across the outbox and the brokers (cargo feature `otel`, on by default).
//!
//! [`init`] builds a tracer provider that batches spans to a collector, and installs a
//! [`cqrs_ddd::telemetry::Propagator`] made of `tracing-opentelemetry` and the W3C trace
//! context format: a command's outbox rows then carry the `traceparent` of its
//! `cqrs_ddd.command` span, and the `cqrs_ddd.deliver` span that runs their async
//! handlers, in this process or in another one behind a broker, is its child.
//!
//! ```no_run
//! use cqrs_ddd_axum::otel::{self, OtelConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let _otel = otel::init(OtelConfig {
//!     endpoint: "http://127.0.0.1:4318".into(), // the collector's OTLP/HTTP port
//!     service_name: "orders".into(),
//!     install_subscriber: true,                   // spans to the collector, logs to stdout
//!     ..OtelConfig::default()
//! })?;
//! // ... run the application; dropping the guard flushes what is left.
//! # Ok(()) }
//! ```
//!
//! Spans are exported by the SDK's batch processor on a thread of its own, over a small
//! HTTP client with a one-thread Tokio runtime of its own, so exporting never waits for
//! the application's runtime. [`OtelGuard::flush`], [`OtelGuard::shutdown`] and dropping
//! the guard block the calling thread until the collector answered or the timeout passed:
//! from async code, call them from `tokio::task::spawn_blocking`.
//!
//! Plain `http://` endpoints only: behind TLS, give the exporter a client of your own
//! (`opentelemetry_otlp::WithHttpConfig::with_http_client`) and install [`OtelPropagator`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base URL; spans are posted to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// The `service.name` of every span.
    pub service_name: String,
    /// Spans at this level or more severe are exported (`INFO`: the framework's command,
    /// query and delivery spans).
    pub level: tracing::Level,
    /// Installs the global `tracing` subscriber: the OpenTelemetry layer (filtered by
    /// `level`) and logs to stdout filtered by `RUST_LOG` (default `info`). Without it,
    /// compose [`OtelGuard::layer`] into a subscriber of your own.
    pub install_subscriber: bool,
    /// How long one export may take.
    pub timeout: Duration,
    /// How long finished spans wait to be exported together.
    pub batch_delay: Duration,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            endpoint: "http://127.0.0.1:4318".to_owned(),
            service_name: "cqrs-ddd".to_owned(),
            level: tracing::Level::INFO,
            install_subscriber: false,
            timeout: Duration::from_secs(10),
            batch_delay: Duration::from_secs(5),
        }
    }
}

/// Why tracing could not be set up or flushed.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The OTLP exporter refused its settings (such as a malformed endpoint).
    #[error("cannot build the OTLP exporter for `{endpoint}`: {source}")]
    Exporter {
        /// The endpoint configured.
        endpoint: String,
        /// What the exporter said.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The exporter's HTTP runtime could not be started.
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A global `tracing` subscriber is installed already.
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// Flushing or shutting down the tracer provider failed (the collector unreachable,
    /// a timeout).
    #[error("cannot export the remaining spans: {0}")]
    Export(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// Sets up OpenTelemetry tracing: an OTLP/HTTP exporter to `config.endpoint` behind a
/// batch processor, a tracer provider (also installed as OpenTelemetry's global one, with
/// the W3C trace-context propagator), the [`OtelPropagator`] for the framework, and, when
/// `config.install_subscriber` says so, the global `tracing` subscriber. Keep the guard
/// for as long as the program runs.
pub fn init(config: OtelConfig) -> Result<OtelGuard, OtelError> {
    let client = OtlpHttpClient::new(config.timeout)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", config.endpoint.trim_end_matches('/')))
        .with_timeout(config.timeout)
        .with_http_client(client)
        .build()
        .map_err(|source| OtelError::Exporter { endpoint: config.endpoint.clone(), source })?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(config.batch_delay).build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
        .build();
    let tracer = provider.tracer("cqrs-ddd");
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    OtelPropagator::install();
    let guard = OtelGuard { provider, tracer, level: config.level, shut_down: false };
    if config.install_subscriber {
        let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::registry()
            .with(guard.layer())
            .with(tracing_subscriber::fmt::layer().with_filter(logs))
            .try_init()?;
    }
    Ok(guard)
}

/// Keeps the tracer provider; flushes and shuts it down when dropped (blocking, see the
/// module docs).
pub struct OtelGuard {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    level: tracing::Level,
    shut_down: bool,
}

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelGuard").field("level", &self.level).finish_non_exhaustive()
    }
}

impl OtelGuard {
    /// The `tracing` layer that records spans into OpenTelemetry, filtered by the
    /// configured level, for a subscriber of your own.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let layer: OpenTelemetryLayer<S, SdkTracer> = tracing_opentelemetry::layer().with_tracer(self.tracer.clone());
        layer.with_filter(tracing_subscriber::filter::LevelFilter::from_level(self.level))
    }

    /// The tracer provider, for code that uses the OpenTelemetry API directly.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Exports every finished span now (blocking).
    pub fn flush(&self) -> Result<(), OtelError> {
        Ok(self.provider.force_flush()?)
    }

    /// Exports what is left and stops exporting (blocking).
    pub fn shutdown(mut self) -> Result<(), OtelError> {
        self.shut_down = true;
        Ok(self.provider.shutdown()?)
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if !self.shut_down
            && let Err(e) = self.provider.shutdown()
        {
            eprintln!("cqrs-ddd-axum: cannot export the remaining spans: {e}");
        }
    }
}

/// The framework's [`cqrs_ddd::telemetry::Propagator`] over `tracing-opentelemetry`: reads
/// and sets the W3C `traceparent` of `tracing` spans recorded by an OpenTelemetry layer.
/// [`init`] installs it.
#[derive(Debug, Default)]
pub struct OtelPropagator {
    format: TraceContextPropagator,
}

impl OtelPropagator {
    /// Installs it as the process's propagator; `false` when one was installed before
    /// (that one stays).
    pub fn install() -> bool {
        cqrs_ddd::telemetry::set_propagator(OtelPropagator::default())
    }
}

impl cqrs_ddd::telemetry::Propagator for OtelPropagator {
    fn current(&self) -> Option<String> {
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        self.format.inject_context(&cx, &mut carrier);
        carrier.remove("traceparent")
    }

    fn set_parent(&self, span: &tracing::Span, traceparent: &str) {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let cx = self.format.extract(&carrier);
        if cx.span().span_context().is_valid() {
            // Fails only for a span that is disabled or already started: it keeps its parent.
            let _ = span.set_parent(cx);
        }
    }
}

/// The exporter's HTTP client: hyper on a one-thread Tokio runtime of its own, so that the
/// batch processor's thread can export whatever runtime the application runs, or none.
struct OtlpHttpClient {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl OtlpHttpClient {
    fn new(timeout: Duration) -> Result<Self, OtelError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cqrs-ddd-otlp")
            .enable_all()
            .build()
            .map_err(OtelError::Runtime)?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(OtlpHttpClient { runtime: Some(runtime), client, timeout })
    }
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Drop for OtlpHttpClient {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let runtime = self.runtime.as_ref().ok_or("the OTLP client is shut down")?;
        let (client, timeout) = (self.client.clone(), self.timeout);
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        let exchange = async move {
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let sent = runtime.spawn(async move { tokio::time::timeout(timeout, exchange).await });
        match sent.await? {
            Ok(answer) => answer,
            Err(_) => Err(format!("the collector did not answer within {timeout:?}").into()),
        }
    }
}
