//! What is particular to NATS: de-duplication by message id, where messages go, what an
//! unreadable message becomes, health and an unreachable server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cqrs_ddd::broker::{Bus, ConsumerOptions, headers};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{OutboxMessage, Publisher};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Backoff, Error};
use cqrs_ddd_nats::Nats;
use cqrs_ddd_nats::async_nats::jetstream;

fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn nats(test: &str) -> Nats {
    let prefix = format!("{test}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    Nats::connect(&url())
        .await
        .unwrap_or_else(|e| panic!("NATS with JetStream is needed (NATS_URL; `scripts/services.sh` starts it): {e}"))
        .prefix(&prefix)
        .partitions(4)
}

fn event(stream: &str) -> OutboxMessage {
    let id = uuid::Uuid::now_v7();
    let headers: BTreeMap<String, String> = [
        (headers::KIND, "event"),
        (headers::EVENT_TYPE, "Unregistered"),
        (headers::STREAM, stream),
        (headers::TENANT, "acme"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    OutboxMessage { id, topic: "Unregistered".into(), payload: "{}".into(), headers, created_at: chrono::Utc::now() }
}

async fn stream_messages(nats: &Nats, what: &str) -> u64 {
    let js = jetstream::new(nats.client().clone());
    let name = format!("{}_{what}", nats.subject_prefix()).to_uppercase();
    js.get_stream(name).await.unwrap().get_info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_message_published_twice_is_stored_once_with_its_headers() {
    let nats = nats("dedupe").await;
    let message = event("acme/Order/1");
    nats.publish(&message).await.unwrap();
    nats.publish(&message).await.unwrap();
    assert_eq!(stream_messages(&nats, "EVENTS").await, 1, "the second publish was dropped by its Nats-Msg-Id");

    let mut other = event("acme/Order/2");
    other.headers.insert(headers::KIND.into(), "notification".into());
    other.topic = "emails.welcome".into();
    nats.publish(&other).await.unwrap();
    assert_eq!(stream_messages(&nats, "MESSAGES").await, 1, "a message that is not an event goes to its topic");
    nats.delete_streams().await;
}

#[tokio::test]
async fn messages_this_program_cannot_take_end_in_the_dead_letters_with_a_typed_error() {
    let nats = nats("unknown").await;
    let app = App::builder().event_store(MemoryStore::new()).bus(nats.clone()).build().unwrap();
    // An event type no type of this program registers, and bytes that are not a message.
    let unknown = event("acme/Order/9");
    nats.publish(&unknown).await.unwrap();
    nats.client()
        .publish(format!("{}.events.0.Garbage", nats.subject_prefix()), vec![0xff, 0xfe].into())
        .await
        .unwrap();
    nats.client().flush().await.unwrap();

    let options = ConsumerOptions {
        max_deliveries: 2,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        ..ConsumerOptions::group("g")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn({
        let app = app.clone();
        async move {
            app.consume(options, async move {
                let _ = stopped.await;
            })
            .await
        }
    });
    let start = Instant::now();
    let dead = loop {
        let dead = nats.dead_letters("g", 10).await.unwrap();
        if dead.len() == 2 {
            break dead;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "dead letters: {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let known = dead.iter().find(|d| d.message.id == unknown.id).expect("the unknown event is kept whole");
    assert!(known.error.contains("no event named `Unregistered`"), "{}", known.error);
    assert_eq!(known.message.headers[headers::TENANT], "acme");
    let garbage = dead.iter().find(|d| d.message.id != unknown.id).unwrap();
    assert!(garbage.error.contains("no message id") && garbage.error.contains("not UTF-8"), "{}", garbage.error);
    stop.send(()).unwrap();
    consumer.await.unwrap().unwrap();
    nats.delete_streams().await;
}

#[tokio::test]
async fn health_answers_and_an_unreachable_server_is_a_typed_error_within_seconds() {
    let nats = nats("health").await;
    nats.health().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let err = Nats::connect(&format!("nats://127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(err, Error::Connect { backend: "NATS", .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn consuming_without_a_bus_is_a_typed_error() {
    let app = App::builder().event_store(MemoryStore::new()).build().unwrap();
    assert!(matches!(app.consume(ConsumerOptions::default(), async {}).await, Err(Error::NoBus)));
}
