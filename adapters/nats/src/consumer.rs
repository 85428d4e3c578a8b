//! Consuming: one durable pull consumer per group and partition, one message of a
//! partition in flight at a time, acknowledged after the handlers committed.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use cqrs_ddd::broker::{AfterFailure, ConsumerOptions, DeadMessage, Shutdown, headers};
use cqrs_ddd::ports::OutboxMessage;
use cqrs_ddd::{Error, Mediator, Result};
use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::bus::{MSG_ID, Nats, REPLAY_GROUP, token};

impl Nats {
    /// See [`cqrs_ddd::broker::Bus::consume`].
    pub(crate) async fn run_consumer(&self, app: Mediator, options: ConsumerOptions, shutdown: Shutdown) -> Result<()> {
        let (stop_tx, stop) = watch::channel(false);
        let trigger = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut partitions = tokio::task::JoinSet::new();
        for partition in 0..self.partitions {
            let (bus, app, options, stop) = (self.clone(), app.clone(), options.clone(), stop.clone());
            partitions.spawn(async move { bus.consume_partition(partition, &app, &options, stop).await });
        }
        let mut first = Ok(());
        while let Some(done) = partitions.join_next().await {
            let result = done.unwrap_or_else(|e| Err(Error::handler(format!("a partition consumer stopped: {e}"))));
            if let Err(e) = result {
                first = first.and(Err(e));
            }
        }
        trigger.abort();
        first
    }

    /// The durable consumer of `group` for `partition`: every message of the partition,
    /// at most one unacknowledged at a time across every process of the group.
    async fn partition_consumer(&self, group: &str, partition: u32, options: &ConsumerOptions) -> Result<PullConsumer> {
        let name = format!("{}_p{partition}", token(group));
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.partition_filter(partition),
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_ack_pending: 1,
            max_deliver: -1,
            deliver_policy: DeliverPolicy::All,
            ..pull::Config::default()
        };
        let stream = self.events_stream().await?;
        stream.get_or_create_consumer(&name, config).await.map_err(Error::store)
    }

    async fn consume_partition(
        &self,
        partition: u32,
        app: &Mediator,
        options: &ConsumerOptions,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut outages = 0;
        while !*stop.borrow() {
            let messages = match self.partition_consumer(&options.group, partition, options).await {
                Ok(consumer) => consumer
                    .stream()
                    .max_messages_per_batch(1)
                    .expires(Duration::from_secs(5))
                    .heartbeat(Duration::from_secs(2))
                    .messages()
                    .await
                    .map_err(Error::store),
                Err(e) => Err(e),
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    outages += 1;
                    tracing::warn!(partition, error = %e, "cannot consume from NATS; trying again");
                    pause(options.outage_backoff.delay(outages), &mut stop).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        outages = 0;
                        self.handle(message, app, options).await;
                    }
                    Some(Err(e)) => {
                        outages += 1;
                        tracing::warn!(partition, error = %e, "NATS consumer error; resubscribing");
                        pause(options.outage_backoff.delay(outages), &mut stop).await;
                        break;
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Delivers one message; acknowledges it after the handlers committed, asks for it
    /// again later after a failure, or moves it to the dead letters after the last one.
    async fn handle(&self, message: Message, app: &Mediator, options: &ConsumerOptions) {
        let delivered = message.info().map_or(1, |i| u32::try_from(i.delivered).unwrap_or(u32::MAX));
        if let Some(group) = header(&message, REPLAY_GROUP)
            && group != options.group
        {
            // A dead letter replayed for another group.
            ack(&message).await;
            return;
        }
        let (outbox, decoded) = outbox_message(&message.subject, message.headers.as_ref(), &message.payload);
        let result = match decoded {
            Ok(()) => app.deliver(&outbox).await,
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(()) => return ack(&message).await,
            Err(e) => e,
        };
        match options.after_failure(delivered) {
            AfterFailure::Retry(delay) => {
                tracing::warn!(message = %outbox.id, delivered, error = %error, "delivery failed; NATS delivers it again");
                if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "cannot negatively acknowledge; the message comes back after its ack wait");
                }
            }
            AfterFailure::Dead => {
                let dead = DeadMessage {
                    message: outbox,
                    error: error.to_string(),
                    deliveries: delivered,
                    dead_at: Utc::now(),
                };
                let delivered_as = header(&message, MSG_ID).unwrap_or_default().to_owned();
                match self.bury(&options.group, &dead, &delivered_as).await {
                    Ok(()) => {
                        tracing::error!(message = %dead.message.id, deliveries = delivered, error = %dead.error, "message moved to the dead letters");
                        ack(&message).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot store a dead letter; the message comes back");
                        let _ = message.ack_with(AckKind::Nak(Some(options.backoff.delay(delivered)))).await;
                    }
                }
            }
        }
    }

    /// Stores a dead letter of `group`, de-duplicated by the id the message was delivered
    /// with (`delivered_as`: a message buried again after a lost acknowledgement is one
    /// dead letter; a replayed one that dies again, delivered under a new id, another).
    pub(crate) async fn bury(&self, group: &str, dead: &DeadMessage, delivered_as: &str) -> Result<()> {
        let extra = [
            (headers::ERROR, dead.error.clone()),
            (headers::DELIVERIES, dead.deliveries.to_string()),
            ("dead-group", group.to_owned()),
        ];
        let delivered_as = if delivered_as.is_empty() { dead.message.id.to_string() } else { delivered_as.to_owned() };
        let msg_id = format!("{delivered_as}:dead:{}", token(group));
        self.publish_on(self.dead_subject(group), &dead.message, &msg_id, &extra).await
    }
}

/// Waits `delay`, or less when asked to stop.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.changed() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

/// Acknowledges and waits for the server to confirm; a lost acknowledgement means a
/// redelivery, which changes nothing.
async fn ack(message: &Message) {
    if let Err(e) = message.double_ack().await {
        tracing::warn!(error = %e, "acknowledgement not confirmed; the message may come again (without effect)");
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(async_nats::HeaderValue::as_str)
}

/// The outbox message a NATS message carries, and whether it could be read whole (a
/// message that cannot is still returned, as well as it could be read, for the dead
/// letters).
pub(crate) fn outbox_message(
    subject: &str,
    nats_headers: Option<&async_nats::HeaderMap>,
    body: &[u8],
) -> (OutboxMessage, Result<()>) {
    let mut problems = Vec::new();
    let mut headers_out = std::collections::BTreeMap::new();
    let mut msg_id = None;
    if let Some(h) = nats_headers {
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            let Some(value) = values.first() else { continue };
            if name == MSG_ID {
                msg_id = Some(value.as_str().to_owned());
            } else if !name.starts_with("Nats-") && name != REPLAY_GROUP && !name.starts_with("dead-") {
                headers_out.insert(name.to_owned(), value.as_str().to_owned());
            }
        }
    }
    // Replayed and dead messages carry `{id}:…`.
    let id = msg_id.as_deref().and_then(|m| Uuid::try_parse(m.split(':').next().unwrap_or(m)).ok());
    let id = id.unwrap_or_else(|| {
        problems.push(format!("no message id (`{MSG_ID}`)"));
        Uuid::now_v7()
    });
    let payload = match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            problems.push("a body that is not UTF-8".to_owned());
            String::from_utf8_lossy(body).into_owned()
        }
    };
    let topic = headers_out
        .get(headers::EVENT_TYPE)
        .cloned()
        .unwrap_or_else(|| subject.rsplit('.').next().unwrap_or_default().to_owned());
    let outbox = OutboxMessage { id, topic, payload, headers: headers_out, created_at: Utc::now() };
    let readable = if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::handler(format!("unreadable broker message on `{subject}`: {}", problems.join(", "))))
    };
    (outbox, readable)
}
