//! One trace from an HTTP request through the outbox to an async handler: a collector stub
//! on loopback decodes what the OTLP/HTTP exporter posts, and the spans of the request, of
//! the command, of its delivery by the in-process relay and of the command the handler
//! sends all carry the caller's trace id, each the child of the one before.
//!
//! One test opens the request's span by hand and relays with `OutboxRelay::run_once`; the
//! other sends `POST /commands/Place` through the router of `Api` and lets the worker host
//! relay. The tracing subscriber and the propagator are global, so the tests share one
//! installation (one exporter, one collector) and each finds its own spans by what its
//! caller sent: they pass in any order and in parallel.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::routing::post;
use cqrs_ddd::broker::headers;
use cqrs_ddd::ports::{OutboxRecord, OutboxStatus};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{MemoryStore, OutboxRelay, RequestContext, TracingMiddleware};
use cqrs_ddd_axum::Api;
use cqrs_ddd_axum::otel::{self, OtelConfig, OtelGuard};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;
use tower::ServiceExt as _;
use tracing::Instrument;
use uuid::Uuid;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    order: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noted {
    order: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Placed), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Order {}

#[aggregate]
impl Order {
    #[handle(create)]
    fn place(&self, c: &Place) -> Result<Vec<OrderEvent>, Never> {
        Ok(vec![Placed { order: c.order.clone() }.into()])
    }
    #[apply]
    fn placed(&mut self, _: &Placed) {}
}

/// Sent by name over HTTP too, so it deserializes.
#[command(aggregate = Order)]
#[derive(Deserialize)]
struct Place {
    #[id]
    order: String,
}

#[aggregate(id = String, events(Noted), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {}

#[aggregate]
impl Journal {
    #[handle(create_if_missing)]
    fn note(&self, c: &Note) -> Result<Vec<JournalEvent>, Never> {
        Ok(vec![Noted { order: c.order.clone() }.into()])
    }
    #[apply]
    fn noted(&mut self, _: &Noted) {}
}

#[command(aggregate = Journal)]
struct Note {
    #[id]
    journal: String,
    order: String,
}

/// Runs after the commit, delivered through the outbox by the relay.
#[event_handler(async)]
async fn journal_placed(e: &Placed, ctx: &EventContext) -> Result<()> {
    ctx.send(Note { journal: "j".into(), order: e.order.clone() }).await
}

/// Gives the journal's events an outbox row too.
#[event_handler(async)]
async fn noted_elsewhere(_e: &Noted) -> Result<()> {
    Ok(())
}

/// Who sent a request: the trace and the span its `traceparent` names. Each test has a
/// caller of its own.
struct Caller {
    trace_id: &'static str,
    span_id: &'static str,
}

impl Caller {
    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// The correlation id of the request: its trace id, as the context layer takes it.
    fn correlation_id(&self) -> Uuid {
        Uuid::try_parse(self.trace_id).expect("a trace id is 16 bytes")
    }
}

/// The caller of the test that opens the request's span by hand.
const IN_PROCESS: Caller = Caller { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" };
/// The caller of the test that goes through the router.
const OVER_HTTP: Caller = Caller { trace_id: "0af7651916cd43dd8448eb211c80319c", span_id: "b7ad6b7169203331" };

const SERVICE: &str = "orders-test";
/// How long an asynchronous outcome may take before a test gives up on it.
const PATIENCE: Duration = Duration::from_secs(30);

/// The spans a collector stub received, with the `service.name` they came from.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<(String, Span)>>,
}

async fn export(State(received): State<Arc<Received>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            received.spans.lock().extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    Vec::new() // an empty ExportTraceServiceResponse: everything accepted
}

/// A collector listening on a spare loopback port, on a runtime of its own so that it
/// outlives the test that started it; that runtime and its OTLP/HTTP base URL.
fn collector(received: Arc<Received>) -> (tokio::runtime::Runtime, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let router = axum::Router::new().route("/v1/traces", post(export)).with_state(received);
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, router).await
    });
    (runtime, format!("http://{addr}"))
}

/// The tracing of this test binary: the global subscriber and propagator that
/// [`otel::init`] installs, exporting to a collector stub.
struct Telemetry {
    received: Arc<Received>,
    guard: OtelGuard,
    /// Serves the collector stub for as long as the tests run.
    _collector: tokio::runtime::Runtime,
}

/// Installs the tracing on the first call; every test shares it.
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let received = Arc::new(Received::default());
        let (collector, endpoint) = collector(received.clone());
        let guard = otel::init(OtelConfig {
            endpoint,
            service_name: SERVICE.into(),
            install_subscriber: true,
            batch_delay: Duration::from_millis(100),
            ..OtelConfig::default()
        })
        .unwrap();
        Telemetry { received, guard, _collector: collector }
    })
}

impl Telemetry {
    /// The spans of what `caller` set off: those of its trace, and those that name its
    /// correlation id (requests, commands) or one of its `rows` (deliveries) whatever their
    /// trace, so that a span that left the trace is found too. Flushes the exporter, then
    /// polls the collector until one request, two commands and `deliveries` deliveries
    /// are there.
    async fn spans_of(&'static self, caller: &Caller, rows: &[OutboxRecord], deliveries: usize) -> Vec<Span> {
        tokio::task::spawn_blocking(|| self.guard.flush()).await.unwrap().unwrap();
        let correlation_id = caller.correlation_id().to_string();
        let rows: Vec<String> = rows.iter().map(|r| r.message.id.to_string()).collect();
        let set_off = |span: &Span| {
            hex(&span.trace_id) == caller.trace_id
                || attribute(span, "correlation_id").as_ref() == Some(&correlation_id)
                || attribute(span, "event_id").is_some_and(|id| rows.contains(&id))
        };
        let spans = eventually(|| {
            let spans: Vec<(String, Span)> =
                self.received.spans.lock().iter().filter(|(_, s)| set_off(s)).cloned().collect();
            let named = |name: &str| spans.iter().filter(|(_, s)| s.name == name).count();
            if named("http.request") == 1 && named("cqrs_ddd.command") == 2 && named("cqrs_ddd.deliver") == deliveries {
                Ok(spans)
            } else {
                Err(format!("spans received: {:?}", spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()))
            }
        })
        .await;
        assert!(spans.iter().all(|(service, _)| service == SERVICE), "every span comes from `{SERVICE}`");
        spans.into_iter().map(|(_, s)| s).collect()
    }
}

/// Asks `probe` every 50 ms until it answers `Ok`, for [`PATIENCE`] at most; then panics
/// with its last `Err`.
async fn eventually<T>(mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(last) if tokio::time::Instant::now() >= deadline => panic!("not within {PATIENCE:?}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// An application on a store of its own, its commands in `cqrs_ddd.command` spans.
fn app() -> (MemoryStore, Mediator) {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).middleware(TracingMiddleware).build().unwrap();
    (store, app)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    })
}

/// The span named `name`, with the attribute `with` names if it names one.
fn find<'s>(spans: &'s [Span], name: &str, with: Option<(&str, &str)>) -> &'s Span {
    spans
        .iter()
        .find(|s| s.name == name && with.is_none_or(|(key, value)| attribute(s, key).as_deref() == Some(value)))
        .unwrap_or_else(|| panic!("no span {name} {with:?}"))
}

/// The spans from a request to the command its async handler sends.
struct Chain<'s> {
    http: &'s Span,
    place: &'s Span,
    deliver: &'s Span,
    note: &'s Span,
}

/// Asserts that `spans` are one trace, `caller`'s, in which each span of the chain is the
/// child of the one before: the caller's span, the request, the `Place` command, the
/// delivery of its `Placed` event, the `Note` command the handler sends.
fn chain<'s>(spans: &'s [Span], caller: &Caller) -> Chain<'s> {
    let traces: Vec<String> = spans.iter().map(|s| hex(&s.trace_id)).collect();
    assert!(traces.iter().all(|t| t == caller.trace_id), "one trace, the caller's: {traces:?}");
    let chain = Chain {
        http: find(spans, "http.request", None),
        place: find(spans, "cqrs_ddd.command", Some(("name", "Place"))),
        deliver: find(spans, "cqrs_ddd.deliver", Some(("event_type", "Placed"))),
        note: find(spans, "cqrs_ddd.command", Some(("name", "Note"))),
    };
    let Chain { http, place, deliver, note } = chain;
    assert_eq!(hex(&http.parent_span_id), caller.span_id, "the request is the caller's child");
    assert_eq!(hex(&place.parent_span_id), hex(&http.span_id), "the command runs in the request");
    assert_eq!(hex(&deliver.parent_span_id), hex(&place.span_id), "the delivery follows the command's outbox row");
    assert_eq!(hex(&note.parent_span_id), hex(&deliver.span_id), "the handler's command runs in the delivery");
    assert_eq!(attribute(note, "nested").as_deref(), Some("true"));
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_through_the_outbox_to_the_async_handler() {
    let telemetry = telemetry();
    let (store, app) = app();

    // What the HTTP layer does: a request span whose remote parent is the caller's, and
    // the caller's trace id as the correlation id.
    let correlation_id = IN_PROCESS.correlation_id();
    let request = tracing::info_span!("http.request", path = "/orders", correlation_id = %correlation_id);
    cqrs_ddd::telemetry::set_parent(&request, &IN_PROCESS.traceparent());
    let context = RequestContext { correlation_id, ..RequestContext::new() };
    context.scope(app.send(Place { order: "o1".into() })).instrument(request).await.unwrap();

    let row = store.outbox_records().pop().expect("the event went to the outbox").message;
    assert_eq!(row.topic, "Placed");
    let staged = row.headers.get(headers::TRACEPARENT).expect("a traceparent header");
    assert_eq!(
        cqrs_ddd::broker::trace_id(staged).map(|id| id.simple().to_string()).as_deref(),
        Some(IN_PROCESS.trace_id)
    );
    assert!(!staged.contains(IN_PROCESS.span_id), "the row names the command's span, not the caller's: {staged}");

    let relay = OutboxRelay::for_app(Arc::new(store.clone()), &app);
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    let rows = store.outbox_records();
    let noted = rows.iter().find(|r| r.message.topic == "Noted").expect("the handler's event");
    let noted = &noted.message.headers[headers::TRACEPARENT];

    let spans = telemetry.spans_of(&IN_PROCESS, &rows, 1).await;
    let Chain { place, deliver, .. } = chain(&spans, &IN_PROCESS);
    assert!(staged.contains(&hex(&place.span_id)), "the row's traceparent is the command's span");
    // The handler's unit of work commits in the delivery span, after its command returned.
    assert!(noted.contains(&hex(&deliver.span_id)), "what the handler staged names the delivery: {noted}");
    assert_eq!(attribute(deliver, "handlers").as_deref(), Some("1"));
    assert_eq!(attribute(deliver, "event_id"), Some(row.id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_sent_over_http_is_the_parent_of_everything_the_request_sets_off() {
    let telemetry = telemetry();
    let (store, app) = app();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(app.host().run(async move {
        stopped.await.ok();
    }));

    let router = Api::new(app).commands().router();
    let request = axum::http::Request::post("/commands/Place")
        .header("content-type", "application/json")
        .header("traceparent", OVER_HTTP.traceparent())
        .body(Body::from(r#"{"order": "o2"}"#))
        .unwrap();
    let response = router.oneshot(request).await.expect("the router answers");
    let (answer, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(answer.headers["x-correlation-id"], OVER_HTTP.correlation_id().hyphenated().to_string());

    // The relay delivers `Placed` to the handler, then the `Noted` it staged.
    let rows = eventually(|| {
        let rows = store.outbox_records();
        let published = rows.iter().filter(|r| r.status == OutboxStatus::Published).count();
        if published == 2 { Ok(rows) } else { Err(format!("outbox rows: {rows:?}")) }
    })
    .await;
    stop.send(()).unwrap();
    host.await.unwrap().unwrap();

    let spans = telemetry.spans_of(&OVER_HTTP, &rows, 2).await;
    let Chain { http, deliver, .. } = chain(&spans, &OVER_HTTP);
    assert_eq!(attribute(http, "url.path").as_deref(), Some("/commands/Place"));
    assert_eq!(attribute(http, "http.response.status_code").as_deref(), Some("200"));
    let noted = find(&spans, "cqrs_ddd.deliver", Some(("event_type", "Noted")));
    assert_eq!(hex(&noted.parent_span_id), hex(&deliver.span_id), "what the handler staged is delivered in its trace");
}
