//! The connection, the JetStream topology and publishing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use cqrs_ddd::broker::{headers, partition_key, partition_of};
use cqrs_ddd::ports::OutboxMessage;
use cqrs_ddd::{Error, Result};
use tokio::sync::OnceCell;

/// The default prefix of subjects and stream names.
pub const DEFAULT_PREFIX: &str = "cqrs_ddd";

/// The header NATS de-duplicates by.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";

/// Set on a replayed dead letter: the only consumer group that takes it.
pub(crate) const REPLAY_GROUP: &str = "replay-group";

/// NATS JetStream as the application's bus (see the crate docs).
#[derive(Clone)]
pub struct Nats {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) prefix: String,
    pub(crate) partitions: u32,
    duplicate_window: Duration,
    max_age: Duration,
    pub(crate) target: String,
    ready: Arc<OnceCell<()>>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("partitions", &self.partitions)
            .field("duplicate_window", &self.duplicate_window)
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// Connects to the server at `url` (`nats://127.0.0.1:4222`). An unreachable server
    /// is [`Error::Connect`] within 3 seconds; once connected, the client reconnects by
    /// itself for as long as the process runs.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None);
        let client = options.connect(url).await.map_err(|e| Error::Connect {
            backend: "NATS",
            target: without_credentials(url),
            reason: e.to_string(),
        })?;
        Ok(Nats::from_client(client, url))
    }

    /// A bus over a client you configured (TLS, credentials).
    pub fn from_client(client: async_nats::Client, url: &str) -> Self {
        Nats {
            js: jetstream::new(client.clone()),
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
            partitions: 16,
            duplicate_window: Duration::from_secs(600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            target: without_credentials(url),
            ready: Arc::new(OnceCell::new()),
        }
    }

    /// Subjects under `prefix.` and streams named after it (isolation between
    /// applications or tests). Letters, digits, `_` and `-`; anything else becomes `_`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = token(prefix);
        self.ready = Arc::new(OnceCell::new());
        self
    }

    /// How many partitions events are spread over (16 by default): the most processes of
    /// one group that work at once. Every publisher and consumer of an application must
    /// use the same number.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// How long the events stream remembers message ids to drop a second publish of one
    /// (10 minutes by default): longer than the outbox relay may take to publish a row
    /// again after a crash (its lease plus its retry backoff).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long the streams keep messages (7 days by default): a consumer group that is
    /// down for longer misses what expired.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Deletes the streams of this prefix, with their messages, dead letters and
    /// consumers (tests, decommissioning); errors are ignored.
    pub async fn delete_streams(&self) {
        for what in ["EVENTS", "MESSAGES", "DEAD"] {
            let _ = self.js.delete_stream(self.stream_name(what)).await;
        }
    }

    /// A signal notified whenever an event is published on this bus, by any process: give
    /// it to a projection worker or a relay (`WorkerOptions::wake`) so that it reads the
    /// event store as soon as there is something new, instead of at its next poll. A
    /// plain NATS subscription: nothing is stored or acknowledged, and a lost wake-up only
    /// means the next poll finds the event.
    pub async fn wake_on_events(&self) -> Result<Arc<tokio::sync::Notify>> {
        let mut events = self.client.subscribe(format!("{}.events.>", self.prefix)).await.map_err(Error::store)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let signal = Arc::downgrade(&wake);
        tokio::spawn(async move {
            use futures::StreamExt;
            while events.next().await.is_some() {
                match signal.upgrade() {
                    Some(wake) => wake.notify_one(),
                    None => break,
                }
            }
        });
        Ok(wake)
    }

    /// The prefix of subjects (and, upper-cased, of stream names: `{PREFIX}_EVENTS`,
    /// `{PREFIX}_MESSAGES`, `{PREFIX}_DEAD`).
    pub fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// The client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub(crate) fn stream_name(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix).to_uppercase()
    }

    pub(crate) fn events_subject(&self, partition: u32, event_type: &str) -> String {
        format!("{}.events.{partition}.{}", self.prefix, token(event_type))
    }

    pub(crate) fn partition_filter(&self, partition: u32) -> String {
        format!("{}.events.{partition}.>", self.prefix)
    }

    pub(crate) fn dead_subject(&self, group: &str) -> String {
        format!("{}.dead.{}", self.prefix, token(group))
    }

    /// Creates the three streams when they do not exist: events, other messages, dead
    /// letters.
    pub(crate) async fn ensure_streams(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let streams = [
                    ("EVENTS", format!("{}.events.>", self.prefix)),
                    ("MESSAGES", format!("{}.messages.>", self.prefix)),
                    ("DEAD", format!("{}.dead.>", self.prefix)),
                ];
                for (what, subject) in streams {
                    let config = stream::Config {
                        name: self.stream_name(what),
                        subjects: vec![subject],
                        duplicate_window: self.duplicate_window,
                        max_age: if what == "DEAD" { Duration::ZERO } else { self.max_age },
                        storage: stream::StorageType::File,
                        ..stream::Config::default()
                    };
                    self.js.get_or_create_stream(config).await.map_err(Error::store)?;
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }

    pub(crate) async fn events_stream(&self) -> Result<stream::Stream> {
        self.ensure_streams().await?;
        self.js.get_stream(self.stream_name("EVENTS")).await.map_err(Error::store)
    }

    pub(crate) async fn dead_stream(&self) -> Result<stream::Stream> {
        self.ensure_streams().await?;
        self.js.get_stream(self.stream_name("DEAD")).await.map_err(Error::store)
    }

    /// Publishes `message` on `subject` with its headers, `msg_id` as de-duplication id,
    /// and waits until the stream stored it (or had it already).
    pub(crate) async fn publish_on(
        &self,
        subject: String,
        message: &OutboxMessage,
        msg_id: &str,
        extra: &[(&str, String)],
    ) -> Result<()> {
        self.ensure_streams().await?;
        let mut h = HeaderMap::new();
        for (name, value) in &message.headers {
            h.insert(name.as_str(), header_value(value).as_str());
        }
        for (name, value) in extra {
            h.insert(*name, header_value(value).as_str());
        }
        let publish = PublishMessage::build()
            .payload(Bytes::from(message.payload.clone().into_bytes()))
            .headers(h)
            .message_id(msg_id);
        let ack = self.js.send_publish(subject, publish).await.map_err(Error::store)?;
        ack.await.map_err(Error::store)?;
        Ok(())
    }

    /// The subject an outbox message goes to: events by partition, the rest by topic.
    pub(crate) fn subject_of(&self, message: &OutboxMessage) -> String {
        match message.headers.get(headers::KIND).map(String::as_str) {
            Some("event") => {
                let partition = partition_of(&partition_key(message), self.partitions);
                let event_type = message.headers.get(headers::EVENT_TYPE).unwrap_or(&message.topic);
                self.events_subject(partition, event_type)
            }
            _ => format!("{}.messages.{}", self.prefix, token(&message.topic)),
        }
    }
}

/// A subject token or stream name part: letters, digits, `_` and `-`.
pub(crate) fn token(s: &str) -> String {
    let t: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if t.is_empty() { "_".to_owned() } else { t }
}

/// Header values cannot hold line breaks.
fn header_value(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// `url` without a password, for messages.
fn without_credentials(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_user, host)) => match scheme_and_user.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…@{host}"),
            None => host.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_targets_are_safe() {
        assert_eq!(token("order.placed v2"), "order_placed_v2");
        assert_eq!(token(""), "_");
        assert_eq!(token("a>*"), "a__");
        assert_eq!(without_credentials("nats://u:p@h:4222"), "nats://…@h:4222");
        assert_eq!(without_credentials("nats://h:4222"), "nats://h:4222");
        assert_eq!(header_value("a\r\nb"), "a  b");
    }
}
