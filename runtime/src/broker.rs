//! Across processes: what every message broker adapter shares.
//!
//! The outbox relay hands each committed outbox row to a [`Publisher`]; a broker adapter
//! (`cqrs-ddd-nats`, `cqrs-ddd-rabbitmq`) publishes it, confirmed, and consumes it in
//! other processes, where [`Mediator::deliver`](crate::Mediator::deliver) runs the
//! program's `#[event_handler(async)]`s and saga steps. This module holds the contract
//! they follow, so that every broker behaves alike:
//!
//! - **Headers.** Every event row carries the [`headers`] below from the moment it is
//!   staged: its kind, event type, stream, correlation and causation ids, tenant,
//!   principal and a W3C `traceparent`. A consumer restores them into the
//!   [`RequestContext`] the handlers run in ([`request_of`]).
//! - **Partitions.** Events of one stream keep their order: a broker routes each message
//!   by [`partition_of`] its stream (the same stable hash in every process and language
//!   version), and each partition is consumed by one consumer at a time.
//! - **At least once from the broker, exactly once in effect.** A message is
//!   acknowledged only after [`Mediator::deliver`](crate::Mediator::deliver) returned:
//!   each async handler ran in a unit of work of its own that committed with an
//!   idempotency key made of the event id and the handler's name, so a redelivered event
//!   is refused by the store and changes nothing; saga steps record processed event ids
//!   in the saga's state.
//! - **Failures.** A failed delivery is negatively acknowledged and redelivered after a
//!   [`ConsumerOptions::backoff`]; after [`ConsumerOptions::max_deliveries`] it goes to
//!   the broker's dead letters with its last error ([`DeadMessage`]), where it can be
//!   listed and replayed ([`Bus::dead_letters`], [`Bus::replay_dead`]). A message whose
//!   event type no type of this program registers, or whose payload does not decode, is
//!   a typed error like any other and ends there too: nothing is dropped silently.
//!
//! Kafka, SQS and others plug in the same way: a [`Bus`] (a [`Publisher`] plus a
//! consumer loop over [`Mediator::deliver`](crate::Mediator::deliver)). There is no
//! adapter for them in this workspace.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Backoff;
use crate::context::RequestContext;
use crate::domain::EventHeader;
use crate::error::{Error, Result};
use crate::ports::{OutboxMessage, Publisher, async_trait};

/// The header names a broker message carries (lower case, as HTTP and AMQP like them).
pub mod headers {
    /// `event` for the envelope of a committed event; other kinds are messages staged
    /// with [`crate::CommandContext::outbox`], for other consumers.
    pub const KIND: &str = "kind";
    /// The event's stored name.
    pub const EVENT_TYPE: &str = "event-type";
    /// The stream (`Type/id`, with its tenant): the partition key.
    pub const STREAM: &str = "stream";
    /// The correlation id of the business transaction.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// The id of the message that caused this one (for an event: its command).
    pub const CAUSATION_ID: &str = "causation-id";
    /// The tenant.
    pub const TENANT: &str = "tenant-id";
    /// Who asked.
    pub const PRINCIPAL: &str = "principal";
    /// W3C trace context: `00-{trace id}-{parent id}-{flags}`.
    pub const TRACEPARENT: &str = "traceparent";
    /// Set on a dead letter: the last error.
    pub const ERROR: &str = "dead-error";
    /// Set on a dead letter: how many times it was delivered.
    pub const DELIVERIES: &str = "dead-deliveries";
}

/// The partition of `stream` among `partitions` (FNV-1a, 64 bits): stable across
/// processes, machines and releases, so every publisher routes a stream to the same
/// partition.
pub fn partition_of(stream: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(partitions.max(1))).unwrap_or(0)
}

/// The partition key of a message: its stream, or its id when it has none (messages
/// staged by hand).
pub fn partition_key(message: &OutboxMessage) -> String {
    message.headers.get(headers::STREAM).cloned().unwrap_or_else(|| message.id.to_string())
}

/// A W3C `traceparent` for an event without one: the correlation id is the trace id
/// (both are 128 bits), the event id's low 64 bits the parent span id.
pub fn traceparent(correlation_id: Uuid, event_id: Uuid) -> String {
    let span = event_id.as_u128() & u128::from(u64::MAX);
    format!("00-{}-{span:016x}-01", correlation_id.simple())
}

/// The trace id of a `traceparent` header, as a UUID (`None` when malformed).
pub fn trace_id(traceparent: &str) -> Option<Uuid> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    if trace.len() != 32 {
        return None;
    }
    Uuid::try_parse(trace).ok().filter(|id| !id.is_nil())
}

/// The context the handlers of a delivered message run in: correlation id, tenant,
/// principal and trace context from its headers (or, for rows staged before the headers
/// existed, from its envelope), caused by the event itself.
pub fn request_of(message: &OutboxMessage) -> Result<RequestContext> {
    let h = &message.headers;
    let mut request = RequestContext::new();
    if h.contains_key(headers::CORRELATION_ID) || h.contains_key(headers::TRACEPARENT) {
        let correlation = h.get(headers::CORRELATION_ID).and_then(|c| Uuid::try_parse(c).ok());
        let traced = h.get(headers::TRACEPARENT).and_then(|t| trace_id(t));
        if let Some(id) = correlation.or(traced) {
            request.correlation_id = id;
        }
        request.tenant_id = h.get(headers::TENANT).cloned();
        request.principal = h.get(headers::PRINCIPAL).cloned();
    } else {
        let header: EventHeader = serde_json::from_str(&message.payload).map_err(|source| Error::Serialization {
            stream: "<broker>".to_owned(),
            version: 0,
            event_type: message.topic.clone(),
            source,
        })?;
        if let Some(id) = header.metadata.correlation_id {
            request.correlation_id = id;
        }
        request.tenant_id = header.metadata.tenant_id;
        request.principal = header.metadata.principal;
    }
    if let Some(tp) = h.get(headers::TRACEPARENT) {
        request.headers.insert(headers::TRACEPARENT.to_owned(), tp.clone());
    }
    request.causation_id = Some(message.id);
    crate::context::check_tenant(request.tenant_id.as_deref())?;
    Ok(request)
}

/// How a broker consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// The consumer group: processes with the same group share the work; another group
    /// gets every message again.
    pub group: String,
    /// Deliveries after which a failing message goes to the dead letters (5 by default).
    pub max_deliveries: u32,
    /// The wait before a failed message is delivered again, by failed deliveries so far.
    pub backoff: Backoff,
    /// How long the broker waits for an acknowledgement before it delivers the message
    /// again (to this or another process): longer than the slowest handler.
    pub ack_wait: Duration,
    /// How [`Bus::consume`] waits before connecting again after the broker went away.
    pub outage_backoff: Backoff,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            group: "cqrs-ddd".to_owned(),
            max_deliveries: 5,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
            ack_wait: Duration::from_secs(30),
            outage_backoff: Backoff::default(),
        }
    }
}

impl ConsumerOptions {
    /// Options for the consumer group `group`.
    pub fn group(group: impl Into<String>) -> Self {
        ConsumerOptions { group: group.into(), ..ConsumerOptions::default() }
    }

    /// What to do with a message whose delivery number `delivered` (1 for the first)
    /// failed: deliver it again after a wait, or give it up.
    pub fn after_failure(&self, delivered: u32) -> AfterFailure {
        if delivered >= self.max_deliveries.max(1) {
            AfterFailure::Dead
        } else {
            AfterFailure::Retry(self.backoff.delay(delivered))
        }
    }
}

/// See [`ConsumerOptions::after_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Negatively acknowledge; the broker delivers it again after this long.
    Retry(Duration),
    /// Move it to the dead letters.
    Dead,
}

/// A message a consumer gave up on, as the broker keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadMessage {
    /// The message, as published.
    pub message: OutboxMessage,
    /// The last error.
    pub error: String,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// When it was given up.
    pub dead_at: DateTime<Utc>,
}

impl DeadMessage {
    /// The headers a dead letter carries: the message's own plus the error and the count.
    pub fn headers(&self) -> BTreeMap<String, String> {
        let mut h = self.message.headers.clone();
        h.insert(headers::ERROR.to_owned(), self.error.clone());
        h.insert(headers::DELIVERIES.to_owned(), self.deliveries.to_string());
        h
    }
}

/// A future the consumer loop stops at (a signal, a test's trigger).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A message broker as the application's bus: it publishes outbox rows (the relay's
/// [`Publisher`]) and feeds other processes' handlers.
#[async_trait]
pub trait Bus: Publisher {
    /// Its name in logs and health reports (`nats`, `rabbitmq`).
    fn name(&self) -> &str;

    /// Consumes events for `app`'s async handlers and sagas until `shutdown`, as the
    /// group of `options`; survives the broker going away (reconnects with
    /// `outage_backoff`). Returns the error that made it stop otherwise.
    async fn consume(&self, app: crate::Mediator, options: ConsumerOptions, shutdown: Shutdown) -> Result<()>;

    /// Up to `limit` dead letters of `group`, oldest first.
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadMessage>>;

    /// Publishes the dead letters with these message ids again (to `group` only) and
    /// removes them from the dead letters; returns how many.
    async fn replay_dead(&self, group: &str, ids: &[Uuid]) -> Result<u64>;

    /// Whether the broker answers.
    async fn health(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // Fixed values: a change would send streams to other partitions after an upgrade.
        assert_eq!(partition_of("Account/a", 16), partition_of("Account/a", 16));
        assert_eq!(partition_of("", 16), (0xcbf2_9ce4_8422_2325u64 % 16) as u32);
        assert_eq!(partition_of("x", 0), 0);
        let mut seen = [0u32; 8];
        for i in 0..8000 {
            seen[partition_of(&format!("Order/{i}"), 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }

    #[test]
    fn traceparent_round_trips_the_correlation_id() {
        let corr = Uuid::now_v7();
        let tp = traceparent(corr, Uuid::now_v7());
        assert_eq!(tp.len(), 55);
        assert_eq!(trace_id(&tp), Some(corr));
        assert_eq!(trace_id("00-zz-11-01"), None);
        assert_eq!(trace_id("garbage"), None);
        assert_eq!(trace_id("00-00000000000000000000000000000000-0000000000000001-01"), None);
    }

    #[test]
    fn failures_back_off_then_die() {
        let o = ConsumerOptions { max_deliveries: 3, ..ConsumerOptions::default() };
        assert!(matches!(o.after_failure(1), AfterFailure::Retry(_)));
        assert!(matches!(o.after_failure(2), AfterFailure::Retry(_)));
        assert_eq!(o.after_failure(3), AfterFailure::Dead);
        assert_eq!(o.after_failure(30), AfterFailure::Dead);
    }

    #[test]
    fn a_message_restores_its_context_and_refuses_an_empty_tenant() {
        let mut m = OutboxMessage {
            id: Uuid::now_v7(),
            topic: "Opened".into(),
            payload: "{}".into(),
            headers: BTreeMap::new(),
            created_at: Utc::now(),
        };
        let corr = Uuid::now_v7();
        m.headers.insert(headers::CORRELATION_ID.into(), corr.to_string());
        m.headers.insert(headers::TENANT.into(), "acme".into());
        m.headers.insert(headers::PRINCIPAL.into(), "ann".into());
        let r = request_of(&m).unwrap();
        assert_eq!((r.correlation_id, r.causation_id), (corr, Some(m.id)));
        assert_eq!((r.tenant_id.as_deref(), r.principal.as_deref()), (Some("acme"), Some("ann")));
        m.headers.insert(headers::TENANT.into(), String::new());
        assert!(matches!(request_of(&m), Err(Error::Tenant(_))));
        // No headers and a payload that is not an envelope: a typed error.
        m.headers.clear();
        m.payload = "not json".into();
        assert!(matches!(request_of(&m), Err(Error::Serialization { .. })));
    }
}
