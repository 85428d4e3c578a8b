//! The exchanges and queues, their names, and declaring them (idempotently).

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::error::{RabbitMqError, answer};

/// What the names of one deployment are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    pub(crate) prefix: String,
    pub(crate) partitions: u32,
}

impl Topology {
    /// The direct exchange events are published to, by partition number.
    pub(crate) fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// The topic exchange other outbox messages are published to, by topic.
    pub(crate) fn messages_exchange(&self) -> String {
        format!("{}.messages", self.prefix)
    }

    /// The queue of `group` for partition `n`.
    pub(crate) fn partition_queue(&self, group: &str, n: u32) -> String {
        format!("{}.{group}.p{n}", self.prefix)
    }

    /// The dead letters of `group`.
    pub(crate) fn dead_queue(&self, group: &str) -> String {
        format!("{}.{group}.dead", self.prefix)
    }

    /// Where the consumer processes of `group` show that they are alive: each holds a
    /// consumer on it, and no message ever goes there; its consumer count is the number
    /// of processes the partitions are shared among.
    pub(crate) fn members_queue(&self, group: &str) -> String {
        format!("{}.{group}.members", self.prefix)
    }

    /// Declares both exchanges and, for every group, its partition queues (bound to the
    /// events exchange), its dead-letter queue and its members queue. Declaring what exists with the same
    /// arguments changes nothing.
    pub(crate) async fn declare(&self, channel: &Channel, groups: &[String]) -> Result<(), RabbitMqError> {
        self.declare_exchange(channel, self.events_exchange(), ExchangeKind::Direct).await?;
        self.declare_exchange(channel, self.messages_exchange(), ExchangeKind::Topic).await?;
        for group in groups {
            for n in 0..self.partitions {
                let queue = self.partition_queue(group, n);
                declare_quorum_queue(channel, &queue, true).await?;
                let bind = channel.queue_bind(
                    name("queue", &queue)?,
                    name("exchange", &self.events_exchange())?,
                    n.to_string().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                );
                answer(format!("queue.bind `{queue}`"), bind).await?;
            }
            declare_quorum_queue(channel, &self.dead_queue(group), false).await?;
            declare_quorum_queue(channel, &self.members_queue(group), false).await?;
        }
        Ok(())
    }

    async fn declare_exchange(
        &self,
        channel: &Channel,
        exchange: String,
        kind: ExchangeKind,
    ) -> Result<(), RabbitMqError> {
        let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        let declare = channel.exchange_declare(name("exchange", &exchange)?, kind, options, FieldTable::default());
        answer(format!("exchange.declare `{exchange}`"), declare).await
    }

    /// Deletes the queues of `groups` (with their messages) and both exchanges.
    pub(crate) async fn delete(&self, channel: &Channel, groups: &[String]) -> Result<(), RabbitMqError> {
        for group in groups {
            let queues = (0..self.partitions).map(|n| self.partition_queue(group, n));
            for queue in queues.chain([self.dead_queue(group), self.members_queue(group)]) {
                let delete = channel.queue_delete(name("queue", &queue)?, QueueDeleteOptions::default());
                answer(format!("queue.delete `{queue}`"), delete).await?;
            }
        }
        for exchange in [self.events_exchange(), self.messages_exchange()] {
            let delete = channel.exchange_delete(name("exchange", &exchange)?, ExchangeDeleteOptions::default());
            answer(format!("exchange.delete `{exchange}`"), delete).await?;
        }
        Ok(())
    }
}

/// A durable quorum queue; partition queues let one consumer at a time take messages.
async fn declare_quorum_queue(channel: &Channel, queue: &str, single_active: bool) -> Result<(), RabbitMqError> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    if single_active {
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    let declare = channel.queue_declare(name("queue", queue)?, QueueDeclareOptions::durable(), arguments);
    answer(format!("queue.declare `{queue}`"), declare).await.map(drop)
}

/// An AMQP short string (at most 255 bytes), or why not.
pub(crate) fn name(what: &'static str, value: &str) -> Result<ShortString, RabbitMqError> {
    ShortString::try_new(value).map_err(|_| RabbitMqError::NameTooLong {
        what,
        name: value.chars().take(40).collect(),
        len: value.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix_group_and_partition() {
        let t = Topology { prefix: "shop".into(), partitions: 4 };
        assert_eq!(t.events_exchange(), "shop.events");
        assert_eq!(t.messages_exchange(), "shop.messages");
        assert_eq!(t.partition_queue("billing", 3), "shop.billing.p3");
        assert_eq!(t.dead_queue("billing"), "shop.billing.dead");
        assert_eq!(t.members_queue("billing"), "shop.billing.members");
    }

    #[test]
    fn names_longer_than_amqp_allows_are_errors_not_panics() {
        assert!(name("queue", &"q".repeat(255)).is_ok());
        let e = name("queue", &"q".repeat(256)).unwrap_err();
        assert!(matches!(e, RabbitMqError::NameTooLong { what: "queue", len: 256, .. }), "{e:?}");
    }
}
