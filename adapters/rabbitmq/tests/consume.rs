//! Consuming: the async handlers of events published through RabbitMQ run exactly once in
//! effect, in the context the headers carry; a message that keeps failing goes to the
//! dead letters without holding up the others, and comes back when replayed.

mod common;

use std::sync::Arc;

use common::{Cleanup, Consumer, Probe, app, eventually, notes, options, placed, prefix, url};
use cqrs_ddd::broker::{Bus, headers};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{Outbox, Publisher};
use cqrs_ddd::{OutboxRelay, RequestContext};
use cqrs_ddd_rabbitmq::RabbitMq;
use cqrs_ddd_rabbitmq::lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use cqrs_ddd_rabbitmq::lapin::types::{AMQPValue, FieldTable};
use cqrs_ddd_rabbitmq::lapin::{BasicProperties, Connection, ConnectionProperties};

/// The messages ready in `queue`.
async fn waiting(queue: &str) -> u32 {
    let conn = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let count = channel.queue_declare(queue.into(), passive, FieldTable::default()).await.unwrap().message_count();
    conn.close(200, "OK".into()).await.unwrap();
    count
}

#[tokio::test]
async fn an_event_published_twice_changes_things_once() {
    let prefix = prefix("once");
    let _cleanup = Cleanup::new(&prefix, 4, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4).groups(["g"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &bus);

    app.send(common::Place { order: "o1".into() }).await.unwrap();
    // The relay publishes the outbox to RabbitMQ; then the same row once more, as a
    // relay that crashed before marking it published would.
    let relay = OutboxRelay::for_app(Arc::new(store.clone()) as Arc<dyn Outbox>, &app);
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    bus.publish(&placed(&store, "o1")).await.unwrap();

    let consumer = Consumer::start(&app, options("g"));
    eventually(30, "both deliveries handled", || async { probe.runs_of("o1") == 2 }).await;
    assert_eq!(notes(&store, None, "o1").await, 2, "the two notes, once");
    consumer.stop().await.unwrap();
    assert_eq!(notes(&store, None, "o1").await, 2);
    assert!(bus.dead_letters("g", 10).await.unwrap().is_empty());
    bus.close().await.unwrap();
}

#[tokio::test]
async fn the_handlers_run_in_the_tenant_and_correlation_the_headers_carry() {
    let prefix = prefix("context");
    let _cleanup = Cleanup::new(&prefix, 2, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2).groups(["g"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &bus);

    let request = RequestContext::new().with_tenant("acme").with_principal("ann");
    let correlation = request.correlation_id;
    request.scope(app.send(common::Place { order: "t1".into() })).await.unwrap();
    let message = placed(&store, "t1");
    bus.publish(&message).await.unwrap();

    let consumer = Consumer::start(&app, options("g"));
    eventually(30, "the event handled", || async { probe.runs_of("t1") == 1 }).await;
    let seen = probe.runs.lock()[0].1.clone();
    assert_eq!((seen.tenant_id.as_deref(), seen.principal.as_deref()), (Some("acme"), Some("ann")));
    assert_eq!(seen.correlation_id, correlation);
    assert_eq!(seen.causation_id, Some(message.id));
    assert_eq!(seen.headers.get(headers::TRACEPARENT), Some(&message.headers[headers::TRACEPARENT]));
    // The commands the handler sent ran in the event's tenant.
    eventually(10, "the notes committed", || async { notes(&store, Some("acme"), "t1").await == 2 }).await;
    assert_eq!(notes(&store, None, "t1").await, 0);
    consumer.stop().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letters_the_rest_flows_and_a_replay_delivers_it() {
    let prefix = prefix("poison");
    // One partition: the poison message sits in front of the others.
    let _cleanup = Cleanup::new(&prefix, 1, &["g", "other"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(1).groups(["g", "other"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    probe.poison.lock().insert("bad".to_owned());
    let app = app(&store, &probe, &bus);

    for order in ["bad", "good1", "good2"] {
        app.send(common::Place { order: order.into() }).await.unwrap();
        bus.publish(&placed(&store, order)).await.unwrap();
    }
    let bad = placed(&store, "bad");

    let consumer = Consumer::start(&app, options("g")); // max_deliveries = 3
    eventually(30, "the messages behind it handled", || async {
        notes(&store, None, "good1").await == 2 && notes(&store, None, "good2").await == 2
    })
    .await;
    assert_eq!(probe.runs_of("bad"), 3, "delivered max_deliveries times, then given up");
    assert_eq!(notes(&store, None, "bad").await, 0);

    // Listed, with its error and count, and still there when listed again.
    for _ in 0..2 {
        let dead = bus.dead_letters("g", 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].message, bad);
        assert!(dead[0].error.contains("order bad is poison"), "{}", dead[0].error);
        assert_eq!(dead[0].deliveries, 3);
    }

    // Fixed, then replayed: delivered again, to this group only, and gone from the dead
    // letters.
    probe.poison.lock().clear();
    assert_eq!(waiting(&bus.partition_queue("other", 0)).await, 3, "the other group has every event, once");
    assert_eq!(bus.replay_dead("g", &[bad.id]).await.unwrap(), 1);
    assert_eq!(waiting(&bus.partition_queue("other", 0)).await, 3, "and nothing more after the replay");
    eventually(30, "the replayed message handled", || async { notes(&store, None, "bad").await == 2 }).await;
    assert!(bus.dead_letters("g", 10).await.unwrap().is_empty());
    assert_eq!(bus.replay_dead("g", &[bad.id]).await.unwrap(), 0, "nothing left to replay");
    consumer.stop().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn dead_letters_are_listed_oldest_first_up_to_the_limit_without_losing_any() {
    let prefix = prefix("listing");
    let _cleanup = Cleanup::new(&prefix, 1, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(1).groups(["g"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &bus);
    let orders = ["d1", "d2", "d3", "d4"];
    probe.poison.lock().extend(orders.iter().map(|o| (*o).to_owned()));
    for order in orders {
        app.send(common::Place { order: order.into() }).await.unwrap();
        bus.publish(&placed(&store, order)).await.unwrap();
    }
    let ids: Vec<_> = orders.iter().map(|o| placed(&store, o).id).collect();

    let consumer = Consumer::start(&app, options("g"));
    eventually(30, "all four dead", || async { bus.dead_letters("g", 10).await.unwrap().len() == 4 }).await;
    consumer.stop().await.unwrap();

    for _ in 0..3 {
        let two: Vec<_> = bus.dead_letters("g", 2).await.unwrap().iter().map(|d| d.message.id).collect();
        assert_eq!(two, ids[..2]);
        let all: Vec<_> = bus.dead_letters("g", 100).await.unwrap().iter().map(|d| d.message.id).collect();
        assert_eq!(all, ids);
    }
    assert!(bus.dead_letters("nobody", 10).await.unwrap().is_empty(), "a group that never consumed has none");
    bus.close().await.unwrap();
}

#[tokio::test]
async fn a_malformed_message_goes_to_the_dead_letters_and_the_partition_moves_on() {
    let prefix = prefix("malformed");
    let _cleanup = Cleanup::new(&prefix, 1, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(1).groups(["g"]);
    bus.declare().await.unwrap();
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &bus);

    // Straight into the partition queue: a body that is not UTF-8, then one without an id.
    let conn = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    // Confirmed, so that they are in the queue before the message published after them.
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut h = FieldTable::default();
    h.insert(headers::KIND.into(), AMQPValue::LongString("event".into()));
    h.insert(headers::EVENT_TYPE.into(), AMQPValue::LongString("Placed".into()));
    let with_id = BasicProperties::default().with_message_id(uuid::Uuid::now_v7().to_string().into());
    for (props, body) in [(with_id.with_headers(h.clone()), &[0xff, 0xfe][..]), (BasicProperties::default(), b"{}")] {
        channel
            .basic_publish(
                "".into(),
                bus.partition_queue("g", 0).as_str().into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    conn.close(200, "OK".into()).await.unwrap();
    app.send(common::Place { order: "after".into() }).await.unwrap();
    bus.publish(&placed(&store, "after")).await.unwrap();

    let consumer = Consumer::start(&app, options("g"));
    eventually(30, "the message behind them handled", || async { notes(&store, None, "after").await == 2 }).await;
    let dead = bus.dead_letters("g", 10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].error.contains("not UTF-8"), "{}", dead[0].error);
    assert!(dead[1].error.contains("no message id"), "{}", dead[1].error);
    assert!(!dead[1].message.id.is_nil(), "given an id so that it can be replayed");
    assert_eq!(dead[0].deliveries, 1, "never retried: it cannot decode");
    consumer.stop().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn every_group_gets_every_event() {
    let prefix = prefix("groups");
    let _cleanup = Cleanup::new(&prefix, 2, &["billing", "shipping"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2).groups(["billing", "shipping"]);
    // Two services, each with its own database.
    let (billing_store, billing) = (MemoryStore::new(), Arc::new(Probe::default()));
    let (shipping_store, shipping) = (MemoryStore::new(), Arc::new(Probe::default()));
    let billing_app = app(&billing_store, &billing, &bus);
    let shipping_app = app(&shipping_store, &shipping, &bus);
    billing_app.send(common::Place { order: "o1".into() }).await.unwrap();
    bus.publish(&placed(&billing_store, "o1")).await.unwrap();

    let consumers =
        [Consumer::start(&billing_app, options("billing")), Consumer::start(&shipping_app, options("shipping"))];
    eventually(30, "both groups noted the order", || async {
        notes(&billing_store, None, "o1").await == 2 && notes(&shipping_store, None, "o1").await == 2
    })
    .await;
    for consumer in consumers {
        consumer.stop().await.unwrap();
    }
    assert_eq!((billing.runs_of("o1"), shipping.runs_of("o1")), (1, 1));
    bus.close().await.unwrap();
}

#[tokio::test]
async fn another_process_of_the_group_takes_over_the_partitions_when_one_stops() {
    let prefix = prefix("takeover");
    let _cleanup = Cleanup::new(&prefix, 2, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2).groups(["g"]);
    // Two processes of one service: one database, a connection each.
    let store = MemoryStore::new();
    let (first, second) = (Arc::new(Probe::default()), Arc::new(Probe::default()));
    let first_app = app(&store, &first, &RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2));
    let second_app = app(&store, &second, &RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2));

    let early: Vec<String> = (0..6).map(|i| format!("early-{i}")).collect();
    let late: Vec<String> = (0..6).map(|i| format!("late-{i}")).collect();
    for order in &early {
        first_app.send(common::Place { order: order.clone() }).await.unwrap();
        bus.publish(&placed(&store, order)).await.unwrap();
    }
    let one = Consumer::start(&first_app, options("g"));
    let two = Consumer::start(&second_app, options("g"));
    for order in &early {
        let order = order.as_str();
        eventually(30, "the early orders noted", || async { notes(&store, None, order).await == 2 }).await;
    }
    one.stop().await.unwrap();

    for order in &late {
        first_app.send(common::Place { order: order.clone() }).await.unwrap();
        bus.publish(&placed(&store, order)).await.unwrap();
    }
    for order in &late {
        let order = order.as_str();
        eventually(30, "the late orders noted by the process left", || async { notes(&store, None, order).await == 2 })
            .await;
        assert_eq!(second.runs_of(order), 1, "{order}");
        assert_eq!(first.runs_of(order), 0, "{order}");
    }
    for order in &early {
        assert_eq!(notes(&store, None, order).await, 2, "{order}: once, whoever handled it");
    }
    two.stop().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_of_a_group_share_the_partitions() {
    let prefix = prefix("share");
    let _cleanup = Cleanup::new(&prefix, 4, &["g"]);
    let bus = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4).groups(["g"]);
    let store = MemoryStore::new();
    let (first, second) = (Arc::new(Probe::default()), Arc::new(Probe::default()));
    let first_app = app(&store, &first, &RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4));
    let second_app = app(&store, &second, &RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4));

    // The first process holds every partition before the second one starts.
    let one = Consumer::start(&first_app, options("g"));
    let mut orders = Vec::new();
    let publish = async |count: usize, orders: &mut Vec<String>| {
        for _ in 0..count {
            let order = format!("o{}", orders.len());
            first_app.send(common::Place { order: order.clone() }).await.unwrap();
            bus.publish(&placed(&store, &order)).await.unwrap();
            orders.push(order);
        }
    };
    publish(8, &mut orders).await;
    eventually(30, "the first process at work", || async { first.runs.lock().len() == 8 }).await;
    let two = Consumer::start(&second_app, options("g"));

    // As events keep coming, the first hands the second its share.
    let start = tokio::time::Instant::now();
    while second.runs.lock().is_empty() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the second process never got a partition");
        publish(4, &mut orders).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for order in &orders {
        let order = order.as_str();
        eventually(30, "every order noted", || async { notes(&store, None, order).await == 2 }).await;
    }
    one.stop().await.unwrap();
    two.stop().await.unwrap();
    for order in &orders {
        assert_eq!(notes(&store, None, order).await, 2, "{order}: once, whichever process handled it");
    }
    assert!(!first.runs.lock().is_empty() && !second.runs.lock().is_empty());
    bus.close().await.unwrap();
}
