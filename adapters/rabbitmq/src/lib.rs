//! RabbitMQ for cqrs-ddd: the outbox relay publishes each committed event, confirmed by
//! the broker, to the partition of its stream, and consumers in other processes feed
//! their `#[event_handler(async)]`s and sagas, in order per stream, exactly once in
//! effect, with dead letters that can be listed and replayed.
//!
//! ```
//! use std::sync::Arc;
//! use cqrs_ddd::broker::{Bus, ConsumerOptions};
//! use cqrs_ddd::memory::MemoryStore;
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::OutboxRelay;
//! use cqrs_ddd_rabbitmq::RabbitMq;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Opened { owner: String }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("never")]
//! struct Never;
//!
//! #[aggregate(id = String, events(Opened), error = Never)]
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Account {}
//!
//! #[aggregate]
//! impl Account {
//!     #[handle(create)]
//!     fn open(&self, c: &Open) -> Result<Vec<AccountEvent>, Never> {
//!         Ok(vec![Opened { owner: c.owner.clone() }.into()])
//!     }
//!     #[apply]
//!     fn opened(&mut self, _: &Opened) {}
//! }
//!
//! #[command(aggregate = Account)]
//! struct Open { #[id] id: String, owner: String }
//!
//! /// Runs in whichever process of the group `mailers` holds the account's partition.
//! #[event_handler(async)]
//! async fn welcome(e: &Opened, _ctx: &EventContext, sent: Dep<tokio::sync::mpsc::Sender<String>>) -> Result<()> {
//!     sent.send(e.owner.clone()).await.map_err(Error::handler)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
//! # let prefix = format!("doc-{}", uuid::Uuid::now_v7().simple());
//! let store = MemoryStore::new(); // a shared database in a real service
//! let rabbit = RabbitMq::connect(&url).await?.prefix(&prefix).groups(["mailers"]);
//! let (sent, mut inbox) = tokio::sync::mpsc::channel::<String>(8);
//! let app = App::builder().event_store(store.clone()).provide(sent).bus(rabbit.clone()).build()?;
//!
//! // The process that commits: its relay publishes the outbox to RabbitMQ, confirmed.
//! app.send(Open { id: "a1".into(), owner: "ann".into() }).await?;
//! let relay = OutboxRelay::for_app(Arc::new(store.clone()), &app);
//! assert_eq!(relay.run_once().await?.published, 1);
//!
//! // Any process of the group `mailers`: handlers and sagas run as events arrive.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let consumer = tokio::spawn({
//!     let app = app.clone();
//!     async move { app.consume(ConsumerOptions::group("mailers"), async { let _ = stopped.await; }).await }
//! });
//! assert_eq!(inbox.recv().await.as_deref(), Some("ann"));
//! stop.send(()).ok();
//! consumer.await??;
//! assert!(rabbit.dead_letters("mailers", 10).await?.is_empty());
//! # rabbit.delete_topology(&[]).await?;
//! # Ok(()) }
//! ```
//!
//! # Exchanges and queues
//!
//! With the prefix `p` (default `cqrs-ddd`, see [`RabbitMq::prefix`]):
//!
//! | what | where it goes |
//! | --- | --- |
//! | an event (header `kind` = `event`) | direct exchange `p.events`, routing key: its partition (`0`…`n-1`) |
//! | another outbox message (`ctx.outbox(topic, ..)`) | topic exchange `p.messages`, routing key: its topic, for other consumers |
//! | the events of group `g`, partition `n` | quorum queue `p.g.p{n}`, bound to `p.events` with key `n`, single active consumer |
//! | the dead letters of group `g` | quorum queue `p.g.dead` |
//! | the consumer processes of group `g` | quorum queue `p.g.members`: one consumer per process, no messages |
//!
//! The partition is [`cqrs_ddd::broker::partition_of`] the event's stream over
//! [`RabbitMq::partitions`] (16 by default). Every group gets every event. Every process
//! of a group consumes every partition queue, and the broker lets one consumer at a time
//! take from each (`x-single-active-consumer`), so the events of one stream are handled
//! one after another, in order, and a process that dies is replaced at once by the next
//! one waiting. To share the work, each process counts the processes of its group (the
//! consumers of `p.g.members`) every 2 s and hands over the partitions it is active on
//! beyond its share (partitions ÷ processes, rounded up): it closes that partition's
//! channel after the message in hand, the broker passes the partition, with the messages
//! sent ahead, in order, to the next process waiting, and the process registers again at
//! the back. A partition without traffic stays where it is until a message shows who
//! holds it. The publisher and every consumer declare what they use, idempotently; give
//! the publisher the groups ([`RabbitMq::groups`]) so their queues exist before their
//! first consumer starts. No plugin is needed.
//!
//! # Guarantees and caveats
//!
//! - **Publishing** waits for the broker's confirm. Messages are persistent and
//!   mandatory: a message the broker refuses (`nack`), returns (no queue bound: a group
//!   not declared yet, or no consumer of `p.messages` for another outbox message) or does
//!   not confirm within [`RabbitMq::confirm_timeout`] is an error
//!   ([`RabbitMqError`] inside [`cqrs_ddd::Error::Store`]), and the relay publishes it
//!   again later: nothing is dropped silently. A relay that crashed after the confirm
//!   publishes the row again; the consumer's idempotency absorbs it. The message id is
//!   the AMQP `message_id`, the outbox headers are AMQP string headers, the creation time
//!   is the `timestamp` (seconds) and the [`CREATED_AT`] header (exact). Up to
//!   [`PUBLISHING_CHANNELS`] messages are in flight at once, each on a channel of its
//!   own, so that a broker's return is never taken for another message's.
//! - **Consuming** acknowledges a message only after [`cqrs_ddd::Mediator::deliver`]
//!   returned: each async handler committed its unit of work under an idempotency key of
//!   the event and the handler, so a redelivery changes nothing. A failed delivery is not
//!   requeued (that could reorder the partition): it is retried in the process after the
//!   consumer options' `backoff`, counting deliveries as the broker's `x-delivery-count`
//!   plus the attempts here; when `max_deliveries` is reached it is published, confirmed,
//!   to the group's dead letters with [`cqrs_ddd::broker::DeadMessage::headers`] and
//!   [`DEAD_AT`], then acknowledged, and the partition moves on. A handler that panics
//!   fails like one that returned an error. A message that is not an outbox message (no
//!   UUID `message_id`, a body that is not UTF-8) goes to the dead letters at once, with
//!   a [`RabbitMqError::Malformed`] error.
//! - **Order** holds per stream while the number of partitions is the same in every
//!   process; a dead letter, once replayed, comes after the events that passed it.
//!   Changing the number of partitions moves streams: drain the queues first.
//! - **Dead letters** ([`cqrs_ddd::broker::Bus::dead_letters`]) are read with `basic.get`
//!   and given back unacknowledged, oldest death first (the whole queue is read and
//!   sorted, up to [`MAX_DEAD_LETTERS_SCANNED`]). [`cqrs_ddd::broker::Bus::replay_dead`]
//!   publishes each one, confirmed, straight to its partition queue of that group only,
//!   and removes it afterwards. The broker takes the letters read back after the
//!   channel closed; both wait for that (at most [`ANSWER_TIMEOUT`]) before they return.
//!   While one listing or replay runs, another one does not see the letters the first
//!   holds.
//! - **Outages**: connecting gives up after 5 s (or the URL's `?connection_timeout=`
//!   milliseconds) with [`cqrs_ddd::Error::Connect`]; any other broker operation after
//!   [`ANSWER_TIMEOUT`]. The publisher connects again on the next publish. A consumer
//!   that loses the broker connects again after the options' `outage_backoff` until its
//!   shutdown future resolves; the messages it had not acknowledged come back from the
//!   broker (to it or to another process), first and in order, and change nothing. On
//!   shutdown it finishes the message in hand, leaves one that waits for a retry to the
//!   broker, and closes its connection.
//! - **Counting deliveries**: quorum queues count every return of a message, also of
//!   those prefetched ([`RabbitMq::prefetch`], 8 by default) but not yet handled when a
//!   consumer stops, loses its connection or hands its partition over; such a message
//!   may reach the dead letters after fewer failed runs than `max_deliveries`. RabbitMQ 4 also gives quorum queues a
//!   default `delivery-limit` of 20 returns, after which the broker drops a message:
//!   set a policy with a higher limit where consumers restart often.
//! - The consumer options' `ack_wait` is not used: the broker's `consumer_timeout` (30
//!   minutes by default) bounds how long a handler may hold a message.
//! - Written for RabbitMQ 3.10 and later (quorum queues with a single active consumer).
//!
//! | cargo feature | what it adds |
//! | --- | --- |
//! | `rustls` | `amqps://` URLs, through lapin's rustls |

mod bus;
mod codec;
mod connection;
mod consumer;
mod dead_letters;
mod error;
mod topology;

pub use bus::{
    DEFAULT_CONFIRM_TIMEOUT, DEFAULT_PARTITIONS, DEFAULT_PREFETCH, DEFAULT_PREFIX, PUBLISHING_CHANNELS, RabbitMq,
};
pub use codec::{CREATED_AT, DEAD_AT};
pub use connection::DEFAULT_CONNECT_TIMEOUT;
pub use dead_letters::MAX_SCAN as MAX_DEAD_LETTERS_SCANNED;
pub use error::{ANSWER_TIMEOUT, RabbitMqError};
pub use lapin;
