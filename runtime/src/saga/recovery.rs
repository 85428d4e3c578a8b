//! The recovery worker: re-sends saga commands stored but not sent (a crash, a store
//! that was down), and fires due saga deadlines.

use std::time::Duration;

use crate::cqrs::Mediator;
use crate::error::Result;
use crate::scheduling::{Scheduler, SchedulerOptions};

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
}

impl SagaRecovery {
    /// A recovery worker with default options.
    pub fn new(mediator: Mediator) -> Self {
        let scheduler = Scheduler::with_options(mediator.clone(), SchedulerOptions::default());
        SagaRecovery { mediator, scheduler, batch_size: 100, poll_interval: Duration::from_secs(1) }
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
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let busy = match self.run_once().await {
                Ok(r) => r.resumed + r.scheduled > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "saga recovery round failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}
