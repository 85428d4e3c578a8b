//! The outbox relay: moves committed outbox rows to a [`Publisher`], at least once.
//!
//! Rows are written in the same transaction as the events that caused them. A relay
//! claims a batch for a lease (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so relays never
//! hold one row at once), publishes each row, and marks it published; a failed publish
//! is retried after an exponential backoff, and the row is marked dead with its last
//! error after `max_attempts` failures. Dead rows are listed and can be put back with
//! [`Outbox::retry_dead`]. A relay that dies mid-batch leaves its claims to expire:
//! those rows are published again (consumers de-duplicate by message id).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::error::Result;
use crate::ports::{EventStore, Outbox, OutboxMessage, OutboxRecord, Publisher, ReadStall, async_trait};
use crate::worker::{Pace, StallWatch, Supervisor, WorkerHealth};

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// This relay's name in claims.
    pub name: String,
    /// Rows claimed per batch.
    pub batch_size: usize,
    /// How long a claim lasts; a dead relay's rows are claimable again after it.
    pub lease: Duration,
    /// Failed attempts after which a row is dead.
    pub max_attempts: u32,
    /// Delay after the first failure; doubled after each further one.
    pub base_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// How long an idle relay waits before looking again.
    pub poll_interval: Duration,
    /// Notified after local commits (see [`crate::Mediator::commit_signal`]).
    pub wake: Option<Arc<Notify>>,
    /// How long [`OutboxRelay::run`] waits before its next round after one failed with a
    /// transient error (the outbox unreachable, a connection lost). Not to be confused
    /// with `base_backoff`, which spaces the attempts at publishing one message.
    pub outage_backoff: Backoff,
    /// How long the event log's read horizon may be held before the relay logs a warning
    /// (only with [`OutboxRelay::watch_read_horizon`]).
    pub stall_warning: Duration,
    /// Messages published at once (never two of one stream): 1 publishes one at a time;
    /// a broker's round trip makes more worth it ([`OutboxRelay::for_app`] with a bus
    /// uses 64).
    pub in_flight: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            name: format!("relay-{}", crate::domain::new_id().simple()),
            batch_size: 100,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            wake: None,
            outage_backoff: Backoff::default(),
            stall_warning: Duration::from_secs(30),
            in_flight: 1,
        }
    }
}

impl RelayOptions {
    /// Wakes the relay as soon as `mediator` commits.
    pub fn wake_on(mut self, mediator: &crate::Mediator) -> Self {
        self.wake = Some(mediator.commit_signal());
        self
    }

    /// The delay before attempt `failures + 1`: `base_backoff` doubling up to
    /// `max_backoff`, exactly (see [`RelayOptions::retry_backoff`]).
    pub fn backoff(&self, failures: u32) -> Duration {
        self.retry_backoff().delay(failures)
    }

    /// The waits between attempts at publishing one message.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.base_backoff, self.max_backoff).with_jitter(0.0)
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows published.
    pub published: usize,
    /// Rows that failed and will be retried.
    pub retried: usize,
    /// Rows that failed for the last time.
    pub dead: usize,
}

/// Where a relay stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayStatus {
    /// How [`OutboxRelay::run`] is doing.
    pub health: WorkerHealth,
    /// What holds the event log's read horizon back now, if the relay watches it (see
    /// [`OutboxRelay::watch_read_horizon`]).
    pub read_stall: Option<ReadStall>,
}

/// Publishes outbox rows.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn Publisher>,
    options: RelayOptions,
    events: Option<Arc<dyn EventStore>>,
    supervisor: Supervisor,
    stall: StallWatch,
}

impl OutboxRelay {
    /// A relay from `outbox` to `publisher`.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn Publisher>) -> Self {
        Self::assemble(outbox, publisher, RelayOptions::default(), None)
    }

    /// A relay from `outbox` to the application's bus ([`crate::AppBuilder::bus`]), or,
    /// without one, to its own async handlers and sagas ([`InProcessPublisher`]).
    pub fn for_app(outbox: Arc<dyn Outbox>, app: &crate::Mediator) -> Self {
        let (publisher, in_flight): (Arc<dyn Publisher>, usize) = match app.bus() {
            Some(bus) => (Arc::new(BusPublisher(bus)), 64),
            None => (Arc::new(InProcessPublisher::new(app.clone())), 1),
        };
        Self::assemble(outbox, publisher, RelayOptions { in_flight, ..RelayOptions::default() }.wake_on(app), None)
    }

    fn assemble(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn Publisher>,
        options: RelayOptions,
        events: Option<Arc<dyn EventStore>>,
    ) -> Self {
        let supervisor = Supervisor::new("outbox_relay", options.name.clone());
        let stall = StallWatch::new(("relay", options.name.clone()), options.poll_interval, options.stall_warning);
        OutboxRelay { outbox, publisher, options, events, supervisor, stall }
    }

    /// Sets the options.
    pub fn with_options(self, mut options: RelayOptions) -> Self {
        options.batch_size = options.batch_size.max(1);
        options.max_attempts = options.max_attempts.max(1);
        options.in_flight = options.in_flight.max(1);
        Self::assemble(self.outbox, self.publisher, options, self.events)
    }

    /// Also watches `events`' gap-safe read horizon (see [`EventStore::read_stall`]) while
    /// idle: [`OutboxRelay::status`] reports what holds it, the gauge
    /// `cqrs_ddd_read_horizon_held_seconds{relay}` how long, and a warning names it after
    /// [`RelayOptions::stall_warning`]. Useful where the relayed messages follow events
    /// that readers of all events must see first.
    pub fn watch_read_horizon(self, events: Arc<dyn EventStore>) -> Self {
        Self::assemble(self.outbox, self.publisher, self.options, Some(events))
    }

    /// How [`OutboxRelay::run`] is doing, now (readable from any task while it runs).
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    /// Every change of [`OutboxRelay::health`], to await.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<WorkerHealth> {
        self.supervisor.watch()
    }

    /// Its health, and what holds the read horizon back when it watches one.
    pub async fn status(&self) -> Result<RelayStatus> {
        let read_stall = match &self.events {
            Some(events) => events.read_stall().await?,
            None => None,
        };
        Ok(RelayStatus { health: self.health(), read_stall })
    }

    /// Claims one batch and publishes it, in order: up to [`RelayOptions::in_flight`]
    /// messages at once, never two of one stream (the `stream` header), so a stream's
    /// messages reach the publisher one after another. After a row fails, the later rows
    /// of its stream in the batch are given back untried ([`Outbox::release`]) and the
    /// outbox does not hand them out before it (with one relay per outbox; relays racing
    /// for one stream's rows can still interleave them).
    pub async fn run_once(&self) -> Result<RelayReport> {
        use futures::stream::{FuturesUnordered, StreamExt};

        let rows = self.outbox.claim(&self.options.name, self.options.batch_size, self.options.lease).await?;
        let mut report = RelayReport { claimed: rows.len(), ..RelayReport::default() };
        let stream_of = |row: &OutboxRecord| row.message.headers.get(crate::broker::headers::STREAM).cloned();
        let mut waiting: std::collections::VecDeque<OutboxRecord> = rows.into();
        // Streams with a message being published, and streams whose message failed in
        // this batch (their later rows are given back untried).
        let mut busy = std::collections::HashSet::new();
        let mut failed_streams = std::collections::HashSet::new();
        let mut untried = Vec::new();
        let mut published = Vec::with_capacity(waiting.len());
        let mut in_flight = FuturesUnordered::new();
        loop {
            // Start what may start: the first waiting row of each stream that is free.
            let mut seen = std::collections::HashSet::new();
            let mut k = 0;
            while k < waiting.len() && in_flight.len() < self.options.in_flight {
                let stream = stream_of(&waiting[k]);
                if let Some(s) = &stream {
                    if failed_streams.contains(s) {
                        untried.extend(waiting.remove(k).map(|r| r.message.id));
                        continue;
                    }
                    if busy.contains(s) || !seen.insert(s.clone()) {
                        k += 1;
                        continue;
                    }
                    busy.insert(s.clone());
                }
                let Some(row) = waiting.remove(k) else { break };
                let publisher = self.publisher.clone();
                in_flight.push(async move {
                    let result = publisher.publish(&row.message).await;
                    (row, stream, result)
                });
            }
            let Some((row, stream, result)) = in_flight.next().await else { break };
            if let Some(s) = &stream {
                busy.remove(s);
            }
            let id = row.message.id;
            match result {
                Ok(()) => {
                    published.push(id);
                    report.published += 1;
                }
                Err(e) => {
                    failed_streams.extend(stream);
                    let failures = row.attempts + 1;
                    let error = e.to_string();
                    self.outbox
                        .mark_failed(id, &error, self.options.backoff(failures), self.options.max_attempts)
                        .await?;
                    if failures >= self.options.max_attempts {
                        tracing::error!(message = %id, topic = %row.message.topic, error = %error, "outbox message is dead");
                        metrics::counter!("cqrs_ddd_outbox_dead_total").increment(1);
                        report.dead += 1;
                    } else {
                        tracing::warn!(message = %id, attempt = failures, error = %error, "publishing failed; will retry");
                        report.retried += 1;
                    }
                }
            }
        }
        untried.extend(waiting.into_iter().map(|r| r.message.id));
        // One write for the batch; a relay that dies before it leaves the rows claimed,
        // and they are published again after the lease (brokers de-duplicate by id).
        if !published.is_empty() {
            self.outbox.mark_all_published(&published).await?;
        }
        if !untried.is_empty() {
            self.outbox.release(&untried).await?;
        }
        metrics::counter!("cqrs_ddd_outbox_published_total").increment(report.published as u64);
        Ok(report)
    }

    /// Relays until `shutdown` completes, waking on local commits and polling otherwise.
    ///
    /// A round that fails with a transient error (see [`crate::Error::is_transient`]: the outbox
    /// unreachable, a lost connection) is retried after [`RelayOptions::outage_backoff`],
    /// and [`OutboxRelay::health`] says so; a message that fails to publish is retried on
    /// its own schedule and never stops the relay. It returns early only with an error
    /// the outbox does not call transient (such as [`crate::Error::CorruptRow`] for a row that
    /// cannot be decoded): retrying would fail the same way.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        self.supervisor
            .run(
                &self.options.outage_backoff,
                shutdown,
                self.options.poll_interval,
                self.options.wake.as_deref(),
                || Box::pin(self.round()),
            )
            .await
    }

    async fn round(&self) -> Result<Pace> {
        let report = self.run_once().await?;
        if report.claimed == self.options.batch_size {
            return Ok(Pace::Busy);
        }
        if let Some(events) = &self.events {
            self.stall.check(&**events).await;
        }
        Ok(Pace::Idle)
    }
}

/// Delivers outbox rows of events to the `#[event_handler(async)]`s of this program.
pub struct InProcessPublisher {
    mediator: crate::Mediator,
}

impl InProcessPublisher {
    /// Delivers through `mediator`'s handlers.
    pub fn new(mediator: crate::Mediator) -> Self {
        InProcessPublisher { mediator }
    }
}

#[async_trait]
impl Publisher for InProcessPublisher {
    /// [`crate::Mediator::deliver`]: each async handler exactly once in effect.
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        self.mediator.deliver(message).await
    }
}

/// The bus as the relay's publisher.
struct BusPublisher(Arc<dyn crate::broker::Bus>);

#[async_trait]
impl Publisher for BusPublisher {
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        self.0.publish(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = RelayOptions {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RelayOptions::default()
        };
        let ms: Vec<u128> = (1..=6).map(|f| o.backoff(f).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    }
}
