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

use crate::error::{Error, Result};
use crate::ports::{Outbox, OutboxMessage, Publisher, async_trait};

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
        }
    }
}

impl RelayOptions {
    /// Wakes the relay as soon as `mediator` commits.
    pub fn wake_on(mut self, mediator: &crate::Mediator) -> Self {
        self.wake = Some(mediator.commit_signal());
        self
    }

    /// The delay before attempt `failures + 1`.
    pub fn backoff(&self, failures: u32) -> Duration {
        self.base_backoff.saturating_mul(1 << failures.saturating_sub(1).min(20)).min(self.max_backoff)
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

/// Publishes outbox rows.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn Publisher>,
    options: RelayOptions,
}

impl OutboxRelay {
    /// A relay from `outbox` to `publisher`.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn Publisher>) -> Self {
        OutboxRelay { outbox, publisher, options: RelayOptions::default() }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: RelayOptions) -> Self {
        self.options = options;
        self.options.batch_size = self.options.batch_size.max(1);
        self.options.max_attempts = self.options.max_attempts.max(1);
        self
    }

    /// Claims one batch and publishes it.
    pub async fn run_once(&self) -> Result<RelayReport> {
        let rows = self.outbox.claim(&self.options.name, self.options.batch_size, self.options.lease).await?;
        let mut report = RelayReport { claimed: rows.len(), ..RelayReport::default() };
        for row in rows {
            let id = row.message.id;
            match self.publisher.publish(&row.message).await {
                Ok(()) => {
                    self.outbox.mark_published(id).await?;
                    report.published += 1;
                }
                Err(e) => {
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
        metrics::counter!("cqrs_ddd_outbox_published_total").increment(report.published as u64);
        Ok(report)
    }

    /// Relays until `shutdown` completes, waking on local commits and polling otherwise.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let report = self.run_once().await?;
            if report.claimed == self.options.batch_size {
                continue;
            }
            let wake = async {
                match &self.options.wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(self.options.poll_interval) => {}
                () = wake => {}
            }
        }
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
    async fn publish(&self, message: &OutboxMessage) -> Result<()> {
        match message.headers.get("kind").map(String::as_str) {
            Some("event") => self.mediator.deliver_async(&message.topic, &message.payload).await,
            _ => Err(Error::handler(format!(
                "no in-process destination for outbox topic `{}`; relay it with a broker publisher",
                message.topic
            ))),
        }
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
