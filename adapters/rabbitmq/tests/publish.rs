//! Publishing: confirmed by the broker, routed to the partition of the event's stream
//! with every header, refused when nothing would take it, and an unreachable broker
//! said so promptly.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::{Cleanup, prefix, url};
use cqrs_ddd::Error;
use cqrs_ddd::broker::{Bus, headers};
use cqrs_ddd::ports::{OutboxMessage, Publisher};
use cqrs_ddd_rabbitmq::lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use cqrs_ddd_rabbitmq::lapin::types::{AMQPValue, FieldTable};
use cqrs_ddd_rabbitmq::lapin::{Connection, ConnectionProperties};
use cqrs_ddd_rabbitmq::{RabbitMq, RabbitMqError};
use futures::StreamExt;
use tokio::net::TcpListener;
use uuid::Uuid;

fn event(stream: &str) -> OutboxMessage {
    let id = Uuid::now_v7();
    let mut h = BTreeMap::new();
    h.insert(headers::KIND.to_owned(), "event".to_owned());
    h.insert(headers::EVENT_TYPE.to_owned(), "Placed".to_owned());
    h.insert(headers::STREAM.to_owned(), stream.to_owned());
    h.insert(headers::CORRELATION_ID.to_owned(), Uuid::now_v7().to_string());
    h.insert(headers::TENANT.to_owned(), "acme".to_owned());
    h.insert(headers::PRINCIPAL.to_owned(), "ann".to_owned());
    h.insert(headers::TRACEPARENT.to_owned(), cqrs_ddd::broker::traceparent(Uuid::now_v7(), id));
    OutboxMessage {
        id,
        topic: "Placed".to_owned(),
        payload: r#"{"order":"o1"}"#.to_owned(),
        headers: h,
        created_at: Utc::now(),
    }
}

/// The store error's RabbitMQ cause.
fn cause(e: &Error) -> &RabbitMqError {
    match e {
        Error::Store(source) => source.downcast_ref::<RabbitMqError>().expect("a RabbitMqError"),
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_published_event_is_confirmed_and_lands_in_its_partition_queue_with_its_headers() {
    let prefix = prefix("publish");
    let _cleanup = Cleanup::new(&prefix, 4, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4).groups(["g"]);
    let message = event("acme/Order/o1");
    bus.publish(&message).await.unwrap();

    let conn = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let expected = bus.partition(&message);
    // Partition queues take no `basic.get` (single active consumer): count, then consume.
    for n in 0..4 {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare(bus.partition_queue("g", n).as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        assert_eq!(queue.message_count(), u32::from(n == expected), "messages in partition {n} (expected {expected})");
    }
    let mut consumer = channel
        .basic_consume(
            bus.partition_queue("g", expected).as_str().into(),
            "inspect".into(),
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the message is delivered")
        .expect("a delivery")
        .unwrap();
    let props = &got.properties;
    assert_eq!(props.message_id().as_ref().map(ToString::to_string), Some(message.id.to_string()));
    assert_eq!(props.delivery_mode(), &Some(2), "persistent");
    assert_eq!(props.content_type().as_ref().map(ToString::to_string).as_deref(), Some("application/json"));
    assert_eq!(got.data, message.payload.as_bytes());
    let table = props.headers().as_ref().expect("headers");
    for (key, value) in &message.headers {
        let sent = table.inner().get(key.as_str()).unwrap_or_else(|| panic!("header `{key}` is missing"));
        assert_eq!(sent, &AMQPValue::LongString(value.as_str().into()), "header `{key}`");
    }
    conn.close(200, "OK".into()).await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn an_unroutable_publish_is_an_error() {
    let prefix = prefix("unroutable");
    let _cleanup = Cleanup::new(&prefix, 2, &[]);
    // No group: no queue is bound to the events exchange.
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2);
    let e = bus.publish(&event("Order/o1")).await.unwrap_err();
    assert!(e.is_transient(), "the relay retries it: {e}");
    assert!(matches!(cause(&e), RabbitMqError::Unroutable { exchange, .. } if exchange.ends_with(".events")), "{e}");

    // Nor to the messages exchange.
    let mut message = event("Order/o1");
    message.headers.insert(headers::KIND.to_owned(), "message".to_owned());
    message.topic = "billing.invoice".to_owned();
    let e = bus.publish(&message).await.unwrap_err();
    assert!(
        matches!(cause(&e), RabbitMqError::Unroutable { routing_key, .. } if routing_key == "billing.invoice"),
        "{e}"
    );
    // The channel is still good.
    bus.health().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn a_header_name_amqp_cannot_carry_is_unstorable() {
    let prefix = prefix("unstorable");
    let _cleanup = Cleanup::new(&prefix, 1, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(1).groups(["g"]);
    let mut message = event("Order/o1");
    message.headers.insert("h".repeat(300), "v".to_owned());
    let e = bus.publish(&message).await.unwrap_err();
    assert!(matches!(e, Error::Unstorable { .. }), "{e:?}");
    bus.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_is_a_connect_error_within_seconds() {
    let bounded = Duration::from_secs(30);
    // Nothing listens there.
    let url = common::url_via(common::free_port());
    let e = tokio::time::timeout(bounded, RabbitMq::connect(&url)).await.expect("promptly").unwrap_err();
    assert!(
        matches!(&e, Error::Connect { backend: "RabbitMQ", target, .. } if target.starts_with("127.0.0.1:")),
        "{e:?}"
    );
    assert!(e.is_transient());

    // Something accepts the connection and never answers: the timeout of the URL.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let url = format!("{}?connection_timeout=500", common::url_via(port));
    let e = tokio::time::timeout(bounded, RabbitMq::connect(&url)).await.expect("promptly").unwrap_err();
    assert!(matches!(&e, Error::Connect { backend: "RabbitMQ", .. }), "{e:?}");
    hold.abort();
}

#[tokio::test]
async fn health_follows_the_connection_and_publishing_reconnects() {
    let prefix = prefix("health");
    let _cleanup = Cleanup::new(&prefix, 1, &["g"]);
    let proxy = common::Proxy::start(&common::broker_addr()).await;
    let bus = RabbitMq::connect(&proxy.url()).await.unwrap().prefix(&prefix).partitions(1).groups(["g"]);
    bus.health().await.unwrap();
    bus.publish(&event("Order/o1")).await.unwrap();

    proxy.cut();
    common::eventually(10, "health reports the cut", || async { bus.health().await.is_err() }).await;
    assert!(bus.publish(&event("Order/o2")).await.is_err(), "no broker, no confirm");

    proxy.restore();
    common::eventually(10, "health after the restore", || async { bus.health().await.is_ok() }).await;
    bus.publish(&event("Order/o3")).await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_each_get_their_own_outcome() {
    let prefix = prefix("concurrent");
    let _cleanup = Cleanup::new(&prefix, 2, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2).groups(["g"]);
    // Events are routable (group `g`); other messages are not (nothing bound to them).
    let mut tasks = Vec::new();
    for i in 0..40 {
        let bus = bus.clone();
        let mut message = event(&format!("Order/{i}"));
        if i % 2 == 1 {
            message.headers.insert(headers::KIND.to_owned(), "message".to_owned());
            message.topic = format!("nobody.listens.{i}");
        }
        tasks.push(tokio::spawn(async move { (message.clone(), bus.publish(&message).await) }));
    }
    for task in tasks {
        let (message, result) = task.await.unwrap();
        if message.headers[headers::KIND] == "event" {
            result.unwrap_or_else(|e| panic!("event {} refused: {e}", message.id));
        } else {
            let e = result.expect_err("an unroutable message is an error");
            assert!(
                matches!(cause(&e), RabbitMqError::Unroutable { message_id, .. } if *message_id == message.id.to_string()),
                "{e}"
            );
        }
    }
    bus.close().await.unwrap();
}
