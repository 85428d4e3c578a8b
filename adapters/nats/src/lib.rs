//! NATS JetStream for cqrs-ddd: the outbox relay publishes each committed event to a
//! stream, de-duplicated by its id, and consumers in other processes feed their
//! `#[event_handler(async)]`s and sagas, in order per stream, exactly once in effect.
//!
//! ```
//! use cqrs_ddd::broker::ConsumerOptions;
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::OutboxRelay;
//! use cqrs_ddd::memory::MemoryStore;
//! use cqrs_ddd_nats::Nats;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
//! # let prefix = format!("doc_{}", uuid::Uuid::now_v7().simple());
//! let store = MemoryStore::new(); // a shared database in a real service
//! let nats = Nats::connect(&url).await?.prefix(&prefix);
//! let app = App::builder().event_store(store.clone()).bus(nats).build()?;
//!
//! // The process that commits: its relay publishes the outbox to NATS.
//! let relay = OutboxRelay::for_app(std::sync::Arc::new(store), &app);
//! relay.run_once().await?;
//!
//! // Any process of the group `workers`: handlers and sagas run as events arrive.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let consumer = tokio::spawn({
//!     let app = app.clone();
//!     async move { app.consume(ConsumerOptions::group("workers"), async { let _ = stopped.await; }).await }
//! });
//! stop.send(()).ok();
//! consumer.await??;
//! # Ok(()) }
//! ```
//!
//! # Subjects and streams
//!
//! With the prefix `p` (default `cqrs_ddd`):
//!
//! | what | subject | stream |
//! | --- | --- | --- |
//! | an event | `p.events.{partition}.{event type}` | `P_EVENTS` |
//! | another outbox message (`ctx.outbox(topic, ..)`) | `p.messages.{topic}` | `P_MESSAGES` |
//! | a dead letter of group `g` | `p.dead.g` | `P_DEAD` |
//!
//! The partition is [`cqrs_ddd::broker::partition_of`] the event's stream over
//! [`Nats::partitions`] (16 by default). Each consumer group has one durable pull
//! consumer per partition (`{group}_p{n}`) that hands out one message at a time
//! (`max_ack_pending = 1`): any number of processes of a group share the partitions,
//! and the events of one stream are handled one after another, in order.
//!
//! # Guarantees and caveats
//!
//! - **Publishing** waits for the stream's acknowledgement; the message id is the
//!   `Nats-Msg-Id`, so a relay that publishes a row again after a crash is dropped by
//!   the stream within [`Nats::duplicate_window`] (10 minutes by default: keep it longer
//!   than the relay's lease plus its retry backoff).
//! - **Consuming** acknowledges (and waits for the server to confirm) only after
//!   [`cqrs_ddd::Mediator::deliver`] returned: each async handler committed its unit of
//!   work under an idempotency key of the event and the handler, so a redelivery
//!   changes nothing. A failure is negatively acknowledged with the consumer options'
//!   backoff (the server counts deliveries, across processes and restarts); after
//!   `max_deliveries` the message goes to the group's dead letters with its last error,
//!   and the partition moves on. [`cqrs_ddd::broker::Bus::dead_letters`] lists them and
//!   [`cqrs_ddd::broker::Bus::replay_dead`] sends them again to that group only.
//! - **Headers** carry the correlation and causation ids, tenant, principal and
//!   `traceparent`; the handlers run in the context they describe.
//! - **Outages**: the client reconnects by itself; a consumer that loses its server
//!   subscribes again with the options' `outage_backoff`; a message whose
//!   acknowledgement was lost comes back after `ack_wait` and changes nothing.
//! - One message in flight per partition bounds a group's throughput to about
//!   `partitions / (handler time + 2 round trips)`; raise the partitions for more.
//! - Written for NATS 2.9 and later; the crate has no cargo features.

mod bus;
mod consumer;
mod dead;

pub use async_nats;
pub use bus::{DEFAULT_PREFIX, Nats};

use cqrs_ddd::broker::{Bus, ConsumerOptions, DeadMessage, Shutdown};
use cqrs_ddd::ports::{OutboxMessage, Publisher, async_trait};
use cqrs_ddd::{Error, Mediator, Result};
use uuid::Uuid;

#[async_trait]
impl Publisher for Nats {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        self.publish_on(self.subject_of(message), message, &message.id.to_string(), &[]).await
    }
}

#[async_trait]
impl Bus for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn consume(&self, app: Mediator, options: ConsumerOptions, shutdown: Shutdown) -> Result<()> {
        self.run_consumer(app, options, shutdown).await
    }

    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadMessage>> {
        self.list_dead(group, limit).await
    }

    async fn replay_dead(&self, group: &str, ids: &[Uuid]) -> Result<u64> {
        self.replay(group, ids).await
    }

    async fn health(&self) -> Result<()> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => self.client.flush().await.map_err(Error::store),
            state => Err(Error::Connect {
                backend: "NATS",
                target: self.target.clone(),
                reason: format!("connection {state:?}"),
            }),
        }
    }
}
