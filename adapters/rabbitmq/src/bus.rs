//! [`RabbitMq`]: the configuration, the confirmed publisher and the [`Bus`] methods.

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::broker::{Bus, ConsumerOptions, DeadMessage, Shutdown, headers, partition_key, partition_of};
use cqrs_ddd::ports::{OutboxMessage, Publisher, async_trait};
use cqrs_ddd::{Mediator, Result};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};
use uuid::Uuid;

use crate::codec;
use crate::connection::{Endpoint, Link};
use crate::error::{RabbitMqError, answer, broker};
use crate::topology::{Topology, name};
use crate::{consumer, dead_letters};

/// The prefix of exchange and queue names unless [`RabbitMq::prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "cqrs-ddd";
/// The number of partitions unless [`RabbitMq::partitions`] says otherwise.
pub const DEFAULT_PARTITIONS: u32 = 16;
/// Unacknowledged messages the broker sends ahead to each partition's consumer, unless
/// [`RabbitMq::prefetch`] says otherwise.
pub const DEFAULT_PREFETCH: u16 = 8;
/// Messages a [`RabbitMq`] (with its clones) publishes at once, one per channel of its
/// connection (the outbox relay of an application with a bus has up to 64 in flight).
pub const PUBLISHING_CHANNELS: usize = 64;
/// How long a publisher waits for the broker's confirm, unless
/// [`RabbitMq::confirm_timeout`] says otherwise.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// RabbitMQ as the application's bus: the outbox relay's [`Publisher`] (confirmed,
/// persistent, partitioned by stream) and the [`Bus`] that feeds async handlers and sagas
/// in other processes. See the [crate docs](crate) for the topology and the guarantees.
///
/// Cheap to clone: clones share the publishing connection.
#[derive(Clone)]
pub struct RabbitMq {
    pub(crate) link: Arc<Link>,
    pub(crate) topology: Topology,
    pub(crate) groups: Vec<String>,
    pub(crate) prefetch: u16,
    pub(crate) confirm_timeout: Duration,
}

impl std::fmt::Debug for RabbitMq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMq")
            .field("target", &self.link.endpoint.target)
            .field("prefix", &self.topology.prefix)
            .field("partitions", &self.topology.partitions)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl RabbitMq {
    /// Connects to the broker at `url` (`amqp://user:password@host:5672/%2f`): an
    /// unreachable broker is [`cqrs_ddd::Error::Connect`] within 5 s (or the URL's
    /// `?connection_timeout=` in milliseconds). Exchanges and queues are declared on
    /// first use, with the configuration the builder methods set.
    pub async fn connect(url: &str) -> Result<Self> {
        let link = Link::open(Endpoint::parse(url)?, PUBLISHING_CHANNELS).await?;
        Ok(RabbitMq {
            link: Arc::new(link),
            topology: Topology { prefix: DEFAULT_PREFIX.to_owned(), partitions: DEFAULT_PARTITIONS },
            groups: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
        })
    }

    /// The first part of every exchange and queue name (`cqrs-ddd` by default): one
    /// deployment, or one test, per prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topology.prefix = prefix.into();
        self
    }

    /// How many partitions events are spread over (16 by default, at least 1): at most
    /// this many consumers of one group work at once. Every publisher and consumer of a
    /// deployment must use the same number (see the crate docs on changing it).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.topology.partitions = partitions.max(1);
        self
    }

    /// The consumer groups whose queues the publisher declares, so that no event
    /// published before a group's first consumer started is refused as unroutable.
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Messages the broker sends ahead to each partition's consumer (8 by default, at
    /// least 1); they are handled one after another.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// How long publishing waits for the broker's confirm (15 s by default); after it,
    /// the publish is an error and the relay publishes the message again.
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// The name of the queue of `group` for partition `n` (`{prefix}.{group}.p{n}`).
    pub fn partition_queue(&self, group: &str, n: u32) -> String {
        self.topology.partition_queue(group, n)
    }

    /// The name of the dead-letter queue of `group` (`{prefix}.{group}.dead`).
    pub fn dead_letter_queue(&self, group: &str) -> String {
        self.topology.dead_queue(group)
    }

    /// The partition `message` is routed to.
    pub fn partition(&self, message: &OutboxMessage) -> u32 {
        partition_of(&partition_key(message), self.topology.partitions)
    }

    /// Declares the exchanges and the queues of the configured groups now (publishing
    /// and consuming do it on their own); declaring again changes nothing.
    pub async fn declare(&self) -> Result<()> {
        let publishing = self.link.publishing(&self.topology, &self.groups).await?;
        self.link.give_back(publishing).await;
        Ok(())
    }

    /// Deletes the queues of the configured groups and `also` (with the messages in
    /// them, dead letters included) and both exchanges of this prefix. For tests and
    /// decommissioning: consumers of these groups lose their queues.
    pub async fn delete_topology(&self, also: &[&str]) -> Result<()> {
        let mut groups = self.groups.clone();
        groups.extend(also.iter().map(|g| (*g).to_owned()));
        let channel = self.link.channel().await?;
        let result = self.topology.delete(&channel, &groups).await;
        let _ = answer("channel.close", channel.close(200, "OK".into())).await;
        Ok(result?)
    }

    /// Closes the publishing connection (consumers have their own); using this bus
    /// again connects anew.
    pub async fn close(&self) -> Result<()> {
        self.link.close().await
    }

    /// Publishes `body` with `props` and waits for the broker's confirm: a message the
    /// broker refused or could not route (it is mandatory) is an error. One message is in
    /// flight at a time per channel (see [`Link`]).
    pub(crate) async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<()> {
        let message_id = props.message_id().as_ref().map(ToString::to_string).unwrap_or_default();
        let (exchange_name, key) = (name("exchange", exchange)?, name("routing key", routing_key)?);
        let publishing = self.link.publishing(&self.topology, &self.groups).await?;
        let channel = &publishing.channel;
        let options = BasicPublishOptions { mandatory: true, immediate: false };
        let publish = channel.basic_publish(exchange_name, key, options, body, props);
        let confirm = answer(format!("basic.publish to exchange `{exchange}`"), publish).await?;
        let confirmation = match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Ok(confirmation) => confirmation.map_err(|e| broker(format!("the confirm of message {message_id}"), e))?,
            Err(_) => {
                // Its late confirm or return would be taken for another message's: the
                // channel is not used again.
                let _ = tokio::time::timeout(Duration::from_secs(1), channel.close(200, "OK".into())).await;
                return Err(RabbitMqError::ConfirmTimeout { message_id, waited: self.confirm_timeout }.into());
            }
        };
        self.link.give_back(publishing).await;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(RabbitMqError::Unroutable {
                message_id,
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                reply: returned.reply_text.to_string(),
            }
            .into()),
            Confirmation::Nack(None) | Confirmation::NotRequested => {
                Err(RabbitMqError::Nacked { message_id, exchange: exchange.to_owned() }.into())
            }
        }
    }

    /// The exchange and routing key of an outbox message.
    fn route(&self, message: &OutboxMessage) -> (String, String) {
        if message.headers.get(headers::KIND).map(String::as_str) == Some("event") {
            (self.topology.events_exchange(), self.partition(message).to_string())
        } else {
            (self.topology.messages_exchange(), message.topic.clone())
        }
    }
}

#[async_trait]
impl Publisher for RabbitMq {
    /// Publishes `message`, persistent and mandatory, and returns once the broker
    /// confirmed it: events to `{prefix}.events` by partition, other messages to
    /// `{prefix}.messages` by topic. Unroutable, refused or unconfirmed is an error.
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        let (exchange, routing_key) = self.route(message);
        let props = codec::properties(message)?;
        self.send(&exchange, &routing_key, message.payload.as_bytes(), props).await?;
        metrics::counter!(cqrs_ddd::metrics::RABBITMQ_PUBLISHED_TOTAL).increment(1);
        Ok(())
    }
}

#[async_trait]
impl Bus for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn consume(&self, app: Mediator, options: ConsumerOptions, shutdown: Shutdown) -> Result<()> {
        consumer::consume(self.clone(), app, options, shutdown).await
    }

    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadMessage>> {
        dead_letters::list(self, group, limit).await
    }

    async fn replay_dead(&self, group: &str, ids: &[Uuid]) -> Result<u64> {
        dead_letters::replay(self, group, ids).await
    }

    /// Opens and closes a channel on the publishing connection (connecting first if it
    /// was lost).
    async fn health(&self) -> Result<()> {
        let channel = self.link.channel().await?;
        Ok(answer("channel.close", channel.close(200, "OK".into())).await?)
    }
}
