//! The outbox relay: moves committed outbox rows to a [`Publisher`], at least once.
//!
//! Rows are written in the same transaction as the events that caused them. A relay
//! claims a batch for a lease (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so relays never
//! hold one row at once), publishes each row, and marks it published; a failed publish
//! is retried after an exponential backoff, and the row is marked dead with its last
//! error after `max_attempts` failures. Dead rows are listed and can be put back with
//! [`Outbox::retry_dead`]. A relay that dies mid-batch leaves its claims to expire:
//! those rows are published again (consumers de-duplicate by message id).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

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
    pipeline: parking_lot::Mutex<Pipeline>,
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
            Some(bus) => (bus, 64),
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
        OutboxRelay { outbox, publisher, options, events, supervisor, stall, pipeline: parking_lot::Mutex::default() }
    }

    pub(crate) fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
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
        let rows = self.claim().await?;
        let mut report = RelayReport { claimed: rows.len(), ..RelayReport::default() };
        let settled = self.publish_batch(rows, &HashSet::new(), &mut report).await?;
        self.settle(&settled).await?;
        Ok(report)
    }

    /// Claims the next batch; how many rows it found is the backlog gauge
    /// ([`crate::metrics::OUTBOX_BACKLOG`]: at most a batch, no query of its own).
    async fn claim(&self) -> Result<Vec<OutboxRecord>> {
        let rows = self.outbox.claim(&self.options.name, self.options.batch_size, self.options.lease).await?;
        #[allow(clippy::cast_precision_loss)] // a gauge
        metrics::gauge!(crate::metrics::OUTBOX_BACKLOG).set(rows.len() as f64);
        Ok(rows)
    }

    /// Publishes a claimed batch (see [`OutboxRelay::run_once`]); rows of the streams in
    /// `failed_before` are left untried. Failures are recorded at once; what was
    /// published and what was not tried is returned, to be written by [`Self::settle`].
    async fn publish_batch(
        &self,
        rows: Vec<OutboxRecord>,
        failed_before: &HashSet<String>,
        report: &mut RelayReport,
    ) -> Result<Settled> {
        use futures::stream::{FuturesUnordered, StreamExt};

        let mut settled = Settled { published: Vec::with_capacity(rows.len()), ..Settled::default() };
        // One queue per stream, in the order the streams first appear (a row without a
        // stream is a queue of its own); a queue has at most one message in flight.
        let mut queues: Vec<(Option<String>, VecDeque<OutboxRecord>)> = Vec::new();
        let mut of_stream: HashMap<String, usize> = HashMap::new();
        for row in rows {
            match row.message.headers.get(crate::broker::headers::STREAM) {
                Some(s) if failed_before.contains(s) => {
                    settled.untried.push(row.message.id);
                    settled.failed_streams.insert(s.clone());
                }
                Some(s) => match of_stream.get(s) {
                    Some(&q) => queues[q].1.push_back(row),
                    None => {
                        of_stream.insert(s.clone(), queues.len());
                        queues.push((Some(s.clone()), VecDeque::from([row])));
                    }
                },
                None => queues.push((None, VecDeque::from([row]))),
            }
        }
        // Queues whose next message may start.
        let mut ready: VecDeque<usize> = (0..queues.len()).collect();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.options.in_flight
                && let Some(q) = ready.pop_front()
            {
                let Some(row) = queues[q].1.pop_front() else { continue };
                let publisher = self.publisher.clone();
                in_flight.push(async move {
                    let started = std::time::Instant::now();
                    let result = publisher.publish(&row.message).await;
                    metrics::histogram!(crate::metrics::OUTBOX_PUBLISH_SECONDS).record(started.elapsed().as_secs_f64());
                    (q, row, result)
                });
            }
            let Some((q, row, result)) = in_flight.next().await else { break };
            if result.is_ok() && !queues[q].1.is_empty() {
                ready.push_back(q);
            }
            let id = row.message.id;
            match result {
                Ok(()) => {
                    settled.published.push(id);
                    report.published += 1;
                }
                Err(e) => {
                    // The stream's later rows wait for this one: given back untried.
                    settled.untried.extend(queues[q].1.drain(..).map(|r| r.message.id));
                    settled.failed_streams.extend(queues[q].0.clone());
                    let failures = row.attempts + 1;
                    let error = e.to_string();
                    self.outbox
                        .mark_failed(id, &error, self.options.backoff(failures), self.options.max_attempts)
                        .await?;
                    if failures >= self.options.max_attempts {
                        tracing::error!(message = %id, topic = %row.message.topic, error = %error, "outbox message is dead");
                        metrics::counter!(crate::metrics::OUTBOX_DEAD_TOTAL).increment(1);
                        report.dead += 1;
                    } else {
                        tracing::warn!(message = %id, attempt = failures, error = %error, "publishing failed; will retry");
                        report.retried += 1;
                    }
                }
            }
        }
        metrics::counter!(crate::metrics::OUTBOX_PUBLISHED_TOTAL).increment(report.published as u64);
        metrics::counter!(crate::metrics::OUTBOX_FAILED_TOTAL).increment(report.retried as u64);
        Ok(settled)
    }

    /// Writes what a batch left: one write marks its published rows (a relay that dies
    /// before leaves them claimed, and they are published again after the lease: brokers
    /// de-duplicate by id), and its untried rows are given back.
    async fn settle(&self, settled: &Settled) -> Result<()> {
        if !settled.published.is_empty() {
            self.outbox.mark_all_published(&settled.published).await?;
        }
        if !settled.untried.is_empty() {
            self.outbox.release(&settled.untried).await?;
        }
        Ok(())
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
            .await?;
        self.drain().await
    }

    /// One round of [`OutboxRelay::run`]: while a full batch is published, the next one
    /// is claimed and the previous one's rows are marked, so the outbox's writes overlap
    /// the broker's round trips. An idle round (a batch that was not full) settles at
    /// once.
    async fn round(&self) -> Result<Pace> {
        let Pipeline { prefetched, unsettled } = std::mem::take(&mut *self.pipeline.lock());
        let rows = match prefetched {
            Some(rows) => rows,
            None => match self.claim().await {
                Ok(rows) => rows,
                Err(e) => {
                    self.pipeline.lock().unsettled = unsettled;
                    return Err(e);
                }
            },
        };
        let full = rows.len() == self.options.batch_size;
        // The next batch is claimed ahead only when the previous one held no stream back:
        // a claim skips the later rows of a stream while an earlier one is claimed, except
        // this relay's own claims (they leave first), so a claim made while rows of a
        // held stream are about to be given back could let later rows overtake them.
        let prefetch = full && unsettled.failed_streams.is_empty();
        let mut report = RelayReport { claimed: rows.len(), ..RelayReport::default() };
        let (published, next, previous) = tokio::join!(
            self.publish_batch(rows, &unsettled.failed_streams, &mut report),
            async { if prefetch { Some(self.claim().await) } else { None } },
            self.settle(&unsettled),
        );
        let mut state = Pipeline::default();
        let mut first_error = None;
        if let Err(e) = previous {
            state.unsettled = unsettled;
            first_error = Some(e);
        }
        match published {
            Ok(settled) if prefetch => state.unsettled.absorb(settled),
            Ok(settled) => {
                if let Err(e) = self.settle(&settled).await {
                    state.unsettled.absorb(settled);
                    first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match next {
            Some(Ok(rows)) => state.prefetched = Some(rows),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
        *self.pipeline.lock() = state;
        if let Some(e) = first_error {
            return Err(e);
        }
        if full {
            return Ok(Pace::Busy);
        }
        if let Some(events) = &self.events {
            self.stall.check(&**events).await;
        }
        Ok(Pace::Idle)
    }

    /// After [`OutboxRelay::run`] stopped: marks what was published, gives back what was
    /// claimed ahead.
    async fn drain(&self) -> Result<()> {
        let Pipeline { prefetched, mut unsettled } = std::mem::take(&mut *self.pipeline.lock());
        unsettled.untried.extend(prefetched.into_iter().flatten().map(|r| r.message.id));
        self.settle(&unsettled).await
    }
}

/// What a published batch leaves to write (see [`OutboxRelay::settle`]).
#[derive(Debug, Default)]
struct Settled {
    published: Vec<Uuid>,
    untried: Vec<Uuid>,
    /// Streams this batch held back (a message failed, or rows were left untried): the
    /// next batch, claimed before that was written, leaves their rows untried, and is
    /// settled before any further claim (later batches do not see them out of order: the
    /// outbox holds them back).
    failed_streams: HashSet<String>,
}

impl Settled {
    fn absorb(&mut self, other: Settled) {
        self.published.extend(other.published);
        self.untried.extend(other.untried);
        self.failed_streams = other.failed_streams;
    }
}

/// A running relay's batches between rounds.
#[derive(Debug, Default)]
struct Pipeline {
    /// The next batch, claimed while the last one was published.
    prefetched: Option<Vec<OutboxRecord>>,
    /// The last batch's results, written while the next one is published.
    unsettled: Settled,
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
