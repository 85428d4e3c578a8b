//! [`Bus::consume`](cqrs_ddd::broker::Bus::consume): every partition queue of a group,
//! each one message after another, acknowledged only after the handlers ran.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cqrs_ddd::broker::{AfterFailure, ConsumerOptions, Shutdown};
use cqrs_ddd::ports::OutboxMessage;
use cqrs_ddd::{Error, Mediator, Result};
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::RabbitMq;
use crate::codec;
use crate::error::{answer, answer_while, broker};
use crate::topology::name;

/// How long closing a connection may take before it is left to the broker.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a running consumer looks at its connection.
const WATCHDOG: Duration = Duration::from_secs(1);

/// How often a running consumer compares the partitions it is active on with its share.
const REBALANCE: Duration = Duration::from_secs(2);

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
                metrics::counter!(cqrs_ddd::metrics::RABBITMQ_CONSUMER_OUTAGES_TOTAL).increment(1);
                tracing::warn!(
                    group = %options.group, error = %e, ?wait,
                    "RabbitMQ consumer lost the broker; connecting again"
                );
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
    let control = answer("channel.open", connection.create_channel()).await.map_err(outage)?;
    bus.topology
        .declare(&control, std::slice::from_ref(group))
        .await
        .map_err(|e| if e.is_permanent() { Failure::Fatal(e.into()) } else { outage(e) })?;

    let slots: Vec<Arc<Slot>> = (0..bus.topology.partitions).map(|_| Arc::default()).collect();
    let (halt, halted) = watch::channel(false);
    let mut workers = JoinSet::new();
    for (n, slot) in (0..).zip(&slots) {
        match Partition::start(connection, bus, app, options, n, slot.clone()).await {
            Ok(partition) => {
                workers.spawn(partition.run(halted.clone()));
            }
            Err(e) => return Err(abandon(&halt, &mut workers, e).await),
        }
    }
    // Shown last: the other processes hand partitions over only once this one waits
    // for every partition.
    let members = bus.topology.members_queue(group);
    let _presence = match present(connection, &control, &members).await {
        Ok(presence) => presence,
        Err(e) => return Err(abandon(&halt, &mut workers, e).await),
    };
    *outages = 0;
    tracing::info!(%group, partitions = bus.topology.partitions, "RabbitMQ consumer started");

    let mut failure = None;
    let mut halting = false;
    let mut watchdog = tokio::time::interval(WATCHDOG);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rebalance = tokio::time::interval_at(tokio::time::Instant::now() + REBALANCE, REBALANCE);
    rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok((n, Ok(exit)))) => Event::Exited(n, exit),
                Some(Ok((_, Err(e)))) => Event::Broke(e),
                Some(Err(e)) => {
                    Event::Broke(outage(Error::store(format!("a partition consumer of `{group}` ended: {e}"))))
                }
            },
            _ = stop.wait_for(|s| *s), if !halting => Event::Stop,
            _ = watchdog.tick(), if !halting => Event::Watch,
            _ = rebalance.tick(), if !halting => Event::Rebalance,
        };
        let broke = match event {
            Event::Exited(n, Exit::Released) if !halting => {
                // At the back of the line for this partition now.
                match Partition::start(connection, bus, app, options, n, slots[n as usize].clone()).await {
                    Ok(partition) => {
                        workers.spawn(partition.run(halted.clone()));
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            Event::Exited(..) => None,
            Event::Broke(e) => Some(e),
            Event::Stop => {
                halting = true;
                let _ = halt.send(true);
                None
            }
            // A partition that waits for its next message learns of a lost connection
            // from lapin; this covers one whose broker operation lapin left unanswered.
            Event::Watch => (!connection.status().connected())
                .then(|| outage(Error::store(format!("the connection of `{group}` was lost")))),
            Event::Rebalance => share_out(&control, &members, &slots, group).await.err(),
        };
        if let Some(e) = broke {
            failure.get_or_insert(e);
            halting = true;
            let _ = halt.send(true);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Halts the workers started so far, waits for them, and returns `e`.
async fn abandon(
    halt: &watch::Sender<bool>,
    workers: &mut JoinSet<(u32, Result<Exit, Failure>)>,
    e: Failure,
) -> Failure {
    let _ = halt.send(true);
    while workers.join_next().await.is_some() {}
    e
}

/// A consumer on the members queue of the group, for as long as it is held.
async fn present(connection: &Connection, control: &Channel, members: &str) -> Result<Consumer, Failure> {
    let tag = format!("cqrs-ddd.member.{}", uuid::Uuid::now_v7().simple());
    let consume = control.basic_consume(
        name("queue", members).map_err(|e| Failure::Fatal(e.into()))?,
        name("consumer tag", &tag).map_err(|e| Failure::Fatal(e.into()))?,
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    answer_while(|| connection.status().connected(), format!("basic.consume on `{members}`"), consume)
        .await
        .map_err(outage)
}

/// Hands over the partitions this process is active on beyond its share (the partitions
/// over the processes of the group, rounded up): the broker gives each to the next
/// process waiting for it. Partitions without traffic are not known to be active here
/// and stay where they are until a message shows it.
async fn share_out(control: &Channel, members: &str, slots: &[Arc<Slot>], group: &str) -> Result<(), Failure> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declare = control.queue_declare(name("queue", members).map_err(outage)?, passive, FieldTable::default());
    let processes =
        answer(format!("queue.declare (passive) `{members}`"), declare).await.map_err(outage)?.consumer_count();
    let share = slots.len().div_ceil(usize::try_from(processes.max(1)).unwrap_or(usize::MAX));
    let active: Vec<usize> = (0..slots.len()).filter(|&n| slots[n].active.load(Ordering::SeqCst)).collect();
    let Some(excess) = active.get(share..).filter(|excess| !excess.is_empty()) else { return Ok(()) };
    for &n in excess {
        slots[n].active.store(false, Ordering::SeqCst);
        slots[n].release.notify_one();
    }
    tracing::info!(
        %group, processes, share, partitions = ?excess,
        "handing partitions over to other processes of the group"
    );
    Ok(())
}

/// What the session and the worker of one partition share.
#[derive(Default)]
struct Slot {
    /// The worker got a message since it registered: the broker made it the partition's
    /// single active consumer.
    active: AtomicBool,
    /// Asks the worker to hand the partition over, after the message in hand.
    release: Notify,
}

/// What a running session reacts to.
enum Event {
    /// A partition's worker ended.
    Exited(u32, Exit),
    /// A partition's worker failed.
    Broke(Failure),
    /// The consumer is asked to stop.
    Stop,
    /// Time to look at the connection.
    Watch,
    /// Time to compare the partitions held with the share.
    Rebalance,
}

/// How a partition's worker ended when nothing broke.
enum Exit {
    /// The consumer is stopping.
    Halted,
    /// It handed the partition over; the session registers it again, at the back.
    Released,
}

/// The consumer of one partition queue.
struct Partition {
    bus: RabbitMq,
    app: Mediator,
    options: ConsumerOptions,
    n: u32,
    slot: Arc<Slot>,
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
        slot: Arc<Slot>,
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
        Ok(Partition {
            bus: bus.clone(),
            app: app.clone(),
            options: options.clone(),
            n,
            slot,
            queue,
            channel,
            consumer,
        })
    }

    /// Its number and how it ended.
    async fn run(self, halt: watch::Receiver<bool>) -> (u32, Result<Exit, Failure>) {
        let n = self.n;
        (n, self.consume(halt).await)
    }

    /// Takes deliveries one at a time until halted or asked to hand over (after the
    /// message in hand), or the channel breaks.
    async fn consume(mut self, mut halt: watch::Receiver<bool>) -> Result<Exit, Failure> {
        loop {
            let next = tokio::select! {
                biased;
                _ = halt.wait_for(|h| *h) => return Ok(Exit::Halted),
                () = self.slot.release.notified() => None,
                next = self.consumer.next() => Some(next),
            };
            let Some(next) = next else {
                // Closing the channel gives the messages sent ahead back to the broker,
                // first in line for the next consumer, in order.
                answer("channel.close", self.channel.close(200, "OK".into())).await.map_err(outage)?;
                return Ok(Exit::Released);
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return Err(outage(broker(format!("consuming `{}`", self.queue), e))),
                None => {
                    return Err(outage(Error::store(format!("the broker cancelled the consumer of `{}`", self.queue))));
                }
            };
            self.slot.active.store(true, Ordering::SeqCst);
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
                    tracing::error!(
                        message = %message.id, topic = %message.topic, queue = %self.queue, deliveries = delivered,
                        %error, "giving up on a message; moving it to the dead letters"
                    );
                    self.bury(delivery, Some(&message), &error, delivered).await?;
                    return self.ack(delivery).await;
                }
                AfterFailure::Retry(wait) => {
                    tracing::warn!(
                        message = %message.id, topic = %message.topic, queue = %self.queue, deliveries = delivered,
                        %error, ?wait, "delivery failed; will retry"
                    );
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
        metrics::counter!(cqrs_ddd::metrics::RABBITMQ_DEAD_LETTERS_TOTAL, "group" => self.options.group.clone())
            .increment(1);
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
