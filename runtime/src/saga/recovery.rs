//! The recovery worker: re-sends saga commands stored but not sent (a crash, a store
//! that was down), and fires due saga deadlines.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::cqrs::Mediator;
use crate::error::Result;
use crate::scheduling::{Scheduler, SchedulerOptions};
use crate::worker::{Pace, Supervisor, WorkerHealth};

/// What one recovery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Instances whose unsent commands were sent again (or retried later).
    pub resumed: usize,
    /// Deadlines and scheduled commands sent.
    pub scheduled: usize,
    /// Deadlines and scheduled commands that failed and were rescheduled (an unknown
    /// command name included).
    pub retried: usize,
    /// Deadlines and scheduled commands that failed for the last time (dead rows).
    pub dead: usize,
}

/// Re-sends undispatched saga commands (skipping those already sent), counting retries
/// and failing the saga at the maximum; processes suspension and TCC timeouts through
/// a [`Scheduler`] round.
pub struct SagaRecovery {
    mediator: Mediator,
    scheduler: Scheduler,
    batch_size: usize,
    poll_interval: Duration,
    outage_backoff: Backoff,
    supervisor: Supervisor,
}

impl SagaRecovery {
    /// A recovery worker with default options.
    pub fn new(mediator: Mediator) -> Self {
        let scheduler = Scheduler::with_options(mediator.clone(), SchedulerOptions::default());
        SagaRecovery {
            mediator,
            scheduler,
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            outage_backoff: Backoff::default(),
            supervisor: Supervisor::new("saga_recovery", "saga-recovery"),
        }
    }

    pub(crate) fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    /// Sets how long [`SagaRecovery::run`] waits before its next round after one failed
    /// with a transient error (the stores unreachable, a connection lost).
    pub fn outage_backoff(mut self, backoff: Backoff) -> Self {
        self.outage_backoff = backoff;
        self
    }

    /// How [`SagaRecovery::run`] is doing, now (readable from any task while it runs).
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    /// Every change of [`SagaRecovery::health`], to await.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<WorkerHealth> {
        self.supervisor.watch()
    }

    /// Sets the sleep between rounds that found nothing.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Uses these scheduler options for deadlines.
    pub fn scheduler_options(mut self, options: SchedulerOptions) -> Self {
        self.scheduler = Scheduler::with_options(self.mediator.clone(), options);
        self
    }

    /// One round: due deadlines first, then instances with commands due to be re-sent.
    pub async fn run_once(&self) -> Result<RecoveryReport> {
        let scheduled = self.scheduler.run_once().await?;
        let sagas = self.mediator.sagas();
        let due = sagas.due(self.batch_size).await?;
        let mut report =
            RecoveryReport { resumed: 0, scheduled: scheduled.sent, retried: scheduled.retried, dead: scheduled.dead };
        for key in due {
            match sagas.send_pending(&key).await {
                Ok(()) => report.resumed += 1,
                Err(e) => tracing::warn!(saga = %key, error = %e, "cannot resume saga"),
            }
        }
        Ok(report)
    }

    /// Runs rounds until `shutdown` resolves.
    ///
    /// A round that fails with a transient error (see [`crate::Error::is_transient`]: a
    /// store unreachable, a lost connection) is retried after the
    /// [`SagaRecovery::outage_backoff`], and [`SagaRecovery::health`] says so; a saga that
    /// cannot be resumed is logged and tried again in a later round. It returns early only
    /// with an error the stores do not call transient (such as
    /// [`crate::Error::CorruptRow`] for a row that cannot be decoded).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let poll = self.poll_interval;
        self.supervisor
            .run(&self.outage_backoff, shutdown, poll, None, || {
                Box::pin(async {
                    let r = self.run_once().await?;
                    Ok(if r.resumed + r.scheduled > 0 { Pace::Busy } else { Pace::Idle })
                })
            })
            .await
    }
}
