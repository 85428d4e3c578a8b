//! The consumer's connection cut by a proxy in the middle of the work, and restored:
//! nothing is lost, no effect happens twice, and the consumer carries on by itself.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Cleanup, Consumer, Probe, Proxy, app, broker_addr, eventually, notes, options, placed, prefix, url};
use cqrs_ddd::broker::Bus;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::Publisher;
use cqrs_ddd_rabbitmq::RabbitMq;

async fn place_and_publish(app: &cqrs_ddd::Mediator, store: &MemoryStore, publisher: &RabbitMq, orders: &[String]) {
    for order in orders {
        app.send(common::Place { order: order.clone() }).await.unwrap();
        publisher.publish(&placed(store, order)).await.unwrap();
    }
}

async fn all_noted(store: &MemoryStore, orders: &[String]) -> bool {
    for order in orders {
        if notes(store, None, order).await < 2 {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_cut_connection_loses_nothing_and_duplicates_no_effect() {
    let prefix = prefix("cut");
    let _cleanup = Cleanup::new(&prefix, 4, &["g"]);
    let publisher = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(4).groups(["g"]);
    let proxy = Proxy::start(&broker_addr()).await;
    let consuming = RabbitMq::connect(&proxy.url()).await.unwrap().prefix(&prefix).partitions(4).groups(["g"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    *probe.pace.lock() = Some(Duration::from_millis(20));
    let app = app(&store, &probe, &consuming);

    let before: Vec<String> = (0..12).map(|i| format!("before-{i}")).collect();
    let during: Vec<String> = (0..12).map(|i| format!("during-{i}")).collect();
    place_and_publish(&app, &store, &publisher, &before).await;
    let consumer = Consumer::start(&app, options("g"));
    eventually(30, "the consumer at work", || async { probe.runs.lock().len() >= 3 }).await;

    // Cut while messages are in hand and others wait in the queues; publish more meanwhile.
    proxy.cut();
    place_and_publish(&app, &store, &publisher, &during).await;
    proxy.restore();

    let everything: Vec<String> = before.iter().chain(&during).cloned().collect();
    eventually(60, "every order noted after the restore", || all_noted(&store, &everything)).await;
    for order in &everything {
        assert_eq!(notes(&store, None, order).await, 2, "order {order}: its two notes, once");
    }
    assert!(probe.runs.lock().len() >= everything.len());
    consumer.stop().await.unwrap();
    assert!(publisher.dead_letters("g", 10).await.unwrap().is_empty(), "nothing given up");
    for order in &everything {
        assert_eq!(notes(&store, None, order).await, 2, "order {order}: nothing more after the stop");
    }
    consuming.close().await.unwrap();
    publisher.close().await.unwrap();
}

#[tokio::test]
async fn a_consumer_that_cannot_reach_the_broker_keeps_trying_until_it_can() {
    let prefix = prefix("late");
    let _cleanup = Cleanup::new(&prefix, 2, &["g"]);
    let publisher = RabbitMq::connect(&url()).await.unwrap().prefix(&prefix).partitions(2).groups(["g"]);
    let proxy = Proxy::start(&broker_addr()).await;
    let consuming = RabbitMq::connect(&proxy.url()).await.unwrap().prefix(&prefix).partitions(2).groups(["g"]);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &consuming);
    let orders = vec!["late-1".to_owned(), "late-2".to_owned()];
    place_and_publish(&app, &store, &publisher, &orders).await;

    proxy.cut();
    let consumer = Consumer::start(&app, options("g"));
    // It fails to connect for as long as the proxy refuses, and does nothing meanwhile.
    assert!(consuming.health().await.is_err());
    assert_eq!(probe.runs.lock().len(), 0);
    proxy.restore();
    eventually(60, "the orders noted once the broker is back", || all_noted(&store, &orders)).await;
    consumer.stop().await.unwrap();
    consuming.close().await.unwrap();
    publisher.close().await.unwrap();
}

#[tokio::test]
async fn a_consumer_stops_when_asked_even_while_the_broker_is_unreachable() {
    let prefix = prefix("stop");
    let proxy = Proxy::start(&broker_addr()).await;
    let consuming = RabbitMq::connect(&proxy.url()).await.unwrap().prefix(&prefix).partitions(1);
    let (store, probe) = (MemoryStore::new(), Arc::new(Probe::default()));
    let app = app(&store, &probe, &consuming);
    proxy.cut();
    let consumer = Consumer::start(&app, options("g"));
    consumer.stop().await.unwrap();
}
