//! One trace from an HTTP request through the outbox to an async handler: a collector stub
//! on loopback decodes what the OTLP/HTTP exporter posts, and the spans of the command,
//! of the delivery by the in-process relay and of the command the handler sends all
//! carry the request's trace id, each the child of the one before.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use cqrs_ddd::broker::headers;
use cqrs_ddd::prelude::*;
use cqrs_ddd::{MemoryStore, OutboxRelay, TracingMiddleware};
use cqrs_ddd_axum::otel::{self, OtelConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;
use tracing::Instrument;

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

#[command(aggregate = Order)]
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

/// What the caller of the HTTP request sent: its trace and its span.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

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

/// A collector listening on a spare loopback port; its OTLP/HTTP base URL.
async fn collector(received: Arc<Received>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/v1/traces", post(export)).with_state(received);
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_through_the_outbox_to_the_async_handler() {
    let received = Arc::new(Received::default());
    let endpoint = collector(received.clone()).await;
    let guard = otel::init(OtelConfig {
        endpoint,
        service_name: "orders-test".into(),
        install_subscriber: true,
        batch_delay: Duration::from_millis(100),
        ..OtelConfig::default()
    })
    .unwrap();

    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).middleware(TracingMiddleware).build().unwrap();

    // What the HTTP layer does: a request span whose remote parent is the caller's.
    let request = tracing::info_span!("http.request", path = "/orders");
    cqrs_ddd::telemetry::set_parent(&request, TRACEPARENT);
    app.send(Place { order: "o1".into() }).instrument(request).await.unwrap();

    let row = store.outbox_records().pop().expect("the event went to the outbox").message;
    assert_eq!(row.topic, "Placed");
    let staged = row.headers.get(headers::TRACEPARENT).expect("a traceparent header");
    assert_eq!(cqrs_ddd::broker::trace_id(staged).map(|id| id.simple().to_string()).as_deref(), Some(TRACE_ID));
    assert!(!staged.contains(CALLER_SPAN_ID), "the row names the command's span, not the caller's: {staged}");

    let relay = OutboxRelay::for_app(Arc::new(store.clone()), &app);
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    let noted = store.outbox_records().into_iter().find(|r| r.message.topic == "Noted").expect("the handler's event");
    let noted = noted.message.headers[headers::TRACEPARENT].clone();

    let guard = tokio::task::spawn_blocking(move || {
        guard.flush().unwrap();
        guard
    })
    .await
    .unwrap();
    let wanted = |spans: &[(String, Span)]| {
        let named = |name: &str| spans.iter().filter(|(_, s)| s.name == name).count();
        named("http.request") == 1 && named("cqrs_ddd.command") == 2 && named("cqrs_ddd.deliver") == 1
    };
    let mut spans = Vec::new();
    for _ in 0..200 {
        spans = received.spans.lock().clone();
        if wanted(&spans) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(wanted(&spans), "spans received: {:?}", spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || guard.shutdown()).await.unwrap().unwrap();

    assert!(spans.iter().all(|(service, _)| service == "orders-test"));
    let traces: Vec<String> = spans.iter().map(|(_, s)| hex(&s.trace_id)).collect();
    assert!(traces.iter().all(|t| t == TRACE_ID), "one trace, the caller's: {traces:?}");

    let find = |name: &str, command: Option<&str>| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name && command.is_none_or(|c| attribute(s, "name").as_deref() == Some(c)))
            .unwrap_or_else(|| panic!("no span {name} {command:?}"))
    };
    let http = find("http.request", None);
    let place = find("cqrs_ddd.command", Some("Place"));
    let deliver = find("cqrs_ddd.deliver", None);
    let note = find("cqrs_ddd.command", Some("Note"));
    assert_eq!(hex(&http.parent_span_id), CALLER_SPAN_ID, "the request is the caller's child");
    assert_eq!(hex(&place.parent_span_id), hex(&http.span_id), "the command runs in the request");
    assert_eq!(hex(&deliver.parent_span_id), hex(&place.span_id), "the delivery follows the command's outbox row");
    assert!(staged.contains(&hex(&place.span_id)), "the row's traceparent is the command's span");
    assert_eq!(hex(&note.parent_span_id), hex(&deliver.span_id), "the handler's command runs in the delivery");
    // The handler's unit of work commits in the delivery span, after its command returned.
    assert!(noted.contains(&hex(&deliver.span_id)), "what the handler staged names the delivery: {noted}");
    assert_eq!(attribute(deliver, "event_type").as_deref(), Some("Placed"));
    assert_eq!(attribute(deliver, "handlers").as_deref(), Some("1"));
    assert_eq!(attribute(deliver, "event_id"), Some(row.id.to_string()));
    assert_eq!(attribute(note, "nested").as_deref(), Some("true"));
}
