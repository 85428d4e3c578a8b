//! [`Bus::consume`](cqrs_ddd::broker::Bus::consume): every partition queue of a group,
//! each one message after another, acknowledged only after the handlers ran.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use cqrs_ddd::broker::{AfterFailure, ConsumerOptions, Shutdown};
use cqrs_ddd::ports::OutboxMessage;
use cqrs_ddd::{Error, Mediator, Result};
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::RabbitMq;
use crate::codec;
use crate::error::{answer, answer_while, broker};
use crate::topology::name;

/// How long closing a connection may take before it is left to the broker.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a running consumer looks at its connection.
const WATCHDOG: Duration = Duration::from_secs(1);

/// Why a session ended without being asked to.
enum Failure {
    /// The broker went away or closed a channel: connect again after a wait.
    Outage(Error),
    /// Retrying would fail the same way (a queue exists with other arguments, a name is
    /// too long): [`consume`] returns it.
    Fatal(Error),
}

fn outage(e: impl Into<Error>) -> Failure {
    Failure::Outage(e.into())
}

pub(crate) async fn consume(bus: RabbitMq, app: Mediator, options: ConsumerOptions, shutdown: Shutdown) -> Result<()> {
    // Names are checked before anything connects: a bad one is a configuration error.
    name("queue", &bus.topology.dead_queue(&options.group))?;
    name("queue", &bus.topology.partition_queue(&options.group, bus.topology.partitions))?;
    let (stop, stopped) = watch::channel(false);
    let work = sessions(&bus, &app, &options, stopped);
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => return result,
        () = shutdown => {
            tracing::info!(group = %options.group, "RabbitMQ consumer stopping");
            let _ = stop.send(true);
        }
    }
    work.await
}

/// Sessions one after another until stopped; each outage waits `outage_backoff`.
async fn sessions(
    bus: &RabbitMq,
    app: &Mediator,
    options: &ConsumerOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut outages = 0;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match session(bus, app, options, stop.clone(), &mut outages).await {
            Ok(()) => return Ok(()),
            Err(Failure::Fatal(e)) => {
                tracing::error!(group = %options.group, error = %e, "RabbitMQ consumer stopped");
                return Err(e);
            }
            Err(Failure::Outage(e)) => {
                outages += 1;
                let wait = options.outage_backoff.delay(outages);
                metrics::counter!("cqrs_ddd_rabbitmq_consumer_outages_total").increment(1);
                tracing::warn!(group = %options.group, error = %e, ?wait, "RabbitMQ consumer lost the broker; connecting again");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
    }
}

/// One connection: consumes until stopped or something breaks, then closes it.
async fn session(
    bus: &RabbitMq,
    app: &Mediator,
    options: &ConsumerOptions,
    stop: watch::Receiver<bool>,
    outages: &mut u32,
) -> Result<(), Failure> {
    let mut stopping = stop.clone();
    let connection_name = format!("cqrs-ddd consumer {}", options.group);
    let connection = tokio::select! {
        connection = bus.link.endpoint.connect(&connection_name) => {
            connection.map_err(Failure::Outage)?
        }
        _ = stopping.wait_for(|s| *s) => return Ok(()),
    };
    let result = consume_on(&connection, bus, app, options, stop, outages).await;
    if connection.status().connected() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "OK".into())).await;
    }
    result
}

async fn consume_on(
    connection: &Connection,
    bus: &RabbitMq,
    app: &Mediator,
    options: &ConsumerOptions,
    mut stop: watch::Receiver<bool>,
    outages: &mut u32,
) -> Result<(), Failure> {
    let group = &options.group;
    let channel = answer("channel.open", connection.create_channel()).await.map_err(outage)?;
    bus.topology
        .declare(&channel, std::slice::from_ref(group))
        .await
        .map_err(|e| if e.is_permanent() { Failure::Fatal(e.into()) } else { outage(e) })?;
    let _ = answer("channel.close", channel.close(200, "OK".into())).await;

    let (halt, halted) = watch::channel(false);
    let mut workers = JoinSet::new();
    for n in 0..bus.topology.partitions {
        match Partition::start(connection, bus, app, options, n).await {
            Ok(partition) => {
                workers.spawn(partition.run(halted.clone()));
            }
            Err(e) => {
                let _ = halt.send(true);
                while workers.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    *outages = 0;
    tracing::info!(%group, partitions = bus.topology.partitions, "RabbitMQ consumer started");

    let mut failure = None;
    let mut halting = false;
    let mut watchdog = tokio::time::interval(WATCHDOG);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                    halting = true;
                    let _ = halt.send(true);
                }
                Some(Err(e)) => {
                    failure.get_or_insert(outage(Error::store(format!("a partition consumer of `{group}` ended: {e}"))));
                    halting = true;
                    let _ = halt.send(true);
                }
            },
            _ = stop.wait_for(|s| *s), if !halting => {
                halting = true;
                let _ = halt.send(true);
            }
            // A partition that waits for its next message learns of a lost connection
            // from lapin; this covers one whose broker operation lapin left unanswered.
            _ = watchdog.tick(), if !halting => {
                if !connection.status().connected() {
                    failure.get_or_insert(outage(Error::store(format!("the connection of `{group}` was lost"))));
                    halting = true;
                    let _ = halt.send(true);
                }
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The consumer of one partition queue.
struct Partition {
    bus: RabbitMq,
    app: Mediator,
    options: ConsumerOptions,
    queue: String,
    channel: Channel,
    consumer: Consumer,
}

impl Partition {
    async fn start(
        connection: &Connection,
        bus: &RabbitMq,
        app: &Mediator,
        options: &ConsumerOptions,
        n: u32,
    ) -> Result<Self, Failure> {
        let queue = bus.topology.partition_queue(&options.group, n);
        let open = || connection.status().connected();
        let channel = answer_while(open, "channel.open", connection.create_channel()).await.map_err(outage)?;
        let qos = channel.basic_qos(bus.prefetch, BasicQosOptions::default());
        answer_while(open, format!("basic.qos on `{queue}`"), qos).await.map_err(outage)?;
        let tag = format!("cqrs-ddd.p{n}.{}", uuid::Uuid::now_v7().simple());
        let consume = channel.basic_consume(
            name("queue", &queue).map_err(|e| Failure::Fatal(e.into()))?,
            name("consumer tag", &tag).map_err(|e| Failure::Fatal(e.into()))?,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let consumer = answer_while(open, format!("basic.consume on `{queue}`"), consume).await.map_err(outage)?;
        Ok(Partition { bus: bus.clone(), app: app.clone(), options: options.clone(), queue, channel, consumer })
    }

    /// Takes deliveries one at a time until halted (after the message in hand) or the
    /// channel breaks.
    async fn run(mut self, mut halt: watch::Receiver<bool>) -> Result<(), Failure> {
        loop {
            let next = tokio::select! {
                biased;
                _ = halt.wait_for(|h| *h) => return Ok(()),
                next = self.consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return Err(outage(broker(format!("consuming `{}`", self.queue), e))),
                None => {
                    return Err(outage(Error::store(format!("the broker cancelled the consumer of `{}`", self.queue))));
                }
            };
            self.handle(&delivery, &mut halt).await?;
        }
    }

    /// Delivers one message until it succeeds or is given up; acknowledges it then. A
    /// halt during the wait between attempts leaves it to the broker, unacknowledged.
    async fn handle(&self, delivery: &Delivery, halt: &mut watch::Receiver<bool>) -> Result<(), Failure> {
        let earlier = codec::earlier_deliveries(&delivery.properties);
        let message = match codec::decode(&self.queue, &delivery.properties, &delivery.data) {
            Ok(message) => message,
            Err(e) => {
                // It will never decode: no point delivering it again.
                tracing::error!(queue = %self.queue, error = %e, "malformed message; moving it to the dead letters");
                self.bury(delivery, None, &e.to_string(), earlier.saturating_add(1)).await?;
                return self.ack(delivery).await;
            }
        };
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let delivered = earlier.saturating_add(attempt);
            let error = match AssertUnwindSafe(self.app.deliver(&message)).catch_unwind().await {
                Ok(Ok(())) => return self.ack(delivery).await,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!("a handler panicked: {}", panic_text(panic.as_ref())),
            };
            match self.options.after_failure(delivered) {
                AfterFailure::Dead => {
                    tracing::error!(message = %message.id, topic = %message.topic, queue = %self.queue, deliveries = delivered, %error, "giving up on a message; moving it to the dead letters");
                    self.bury(delivery, Some(&message), &error, delivered).await?;
                    return self.ack(delivery).await;
                }
                AfterFailure::Retry(wait) => {
                    tracing::warn!(message = %message.id, topic = %message.topic, queue = %self.queue, deliveries = delivered, %error, ?wait, "delivery failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = halt.wait_for(|h| *h) => return Ok(()),
                    }
                    if !self.channel.status().connected() {
                        return Err(outage(Error::store(format!("the channel of `{}` closed", self.queue))));
                    }
                }
            }
        }
    }

    /// Publishes the delivery, confirmed, to the group's dead letters.
    async fn bury(
        &self,
        delivery: &Delivery,
        message: Option<&OutboxMessage>,
        error: &str,
        deliveries: u32,
    ) -> Result<(), Failure> {
        let props = codec::dead_properties(&delivery.properties, message, error, deliveries, chrono::Utc::now())
            .map_err(outage)?;
        let dead_queue = self.bus.topology.dead_queue(&self.options.group);
        self.bus.send("", &dead_queue, &delivery.data, props).await.map_err(Failure::Outage)?;
        metrics::counter!("cqrs_ddd_rabbitmq_dead_letters_total", "group" => self.options.group.clone()).increment(1);
        Ok(())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), Failure> {
        let ack = delivery.acker.ack(BasicAckOptions::default());
        match answer_while(|| self.channel.status().connected(), format!("basic.ack on `{}`", self.queue), ack).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(outage(Error::store(format!(
                "the channel of `{}` closed before the message could be acknowledged; the broker will deliver it again",
                self.queue
            )))),
            Err(e) => Err(outage(e)),
        }
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
