//! What every long-running loop shares ([`ProjectionWorker`](crate::ProjectionWorker),
//! [`OutboxRelay`](crate::OutboxRelay), [`Scheduler`](crate::scheduling::Scheduler),
//! [`SagaRecovery`](crate::saga::SagaRecovery)): it survives transient failures, waiting a
//! [`Backoff`] between attempts, and reports a [`WorkerHealth`] that another task can read
//! at any time while `run` goes on.
//!
//! A round that fails with an error [`Error::is_transient`] calls transient (a store that
//! cannot be reached, a dropped connection, a conflict) is logged at `warn`, counted in
//! `cqrs_ddd_worker_retries_total{worker, name}`, and tried again after the backoff; the
//! health says [`WorkerState::Retrying`] since the first failure of the streak, with the
//! last error and the number of consecutive failures, until a round succeeds. Any other
//! error ends `run` with that error (health [`WorkerState::Failed`]): it would fail the
//! same way on every retry. Each loop's docs list those errors.
//!
//! Every loop also watches the event log's gap-safe read horizon when it reads events
//! (see [`EventStore::read_stall`]): checked only while it is idle or its last read came
//! back short, at most once per poll interval, published as the gauge
//! `cqrs_ddd_read_horizon_held_seconds`, and logged at `warn` once it has been held
//! longer than the loop's `stall_warning`.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};

pub use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::ports::{EventStore, ReadStall};

/// Where a loop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// `run` has not been called.
    NotStarted,
    /// Its last round succeeded (or it has just started).
    Running,
    /// Its rounds fail with transient errors and are retried; `since` the first failure of
    /// this streak.
    Retrying {
        /// When the first failure of the streak happened.
        since: DateTime<Utc>,
    },
    /// `run` returned on shutdown.
    Stopped,
    /// `run` returned with an error that retrying cannot heal ([`WorkerHealth::last_error`]).
    Failed,
}

impl WorkerState {
    /// `not_started`, `running`, `retrying`, `stopped` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            WorkerState::NotStarted => "not_started",
            WorkerState::Running => "running",
            WorkerState::Retrying { .. } => "retrying",
            WorkerState::Stopped => "stopped",
            WorkerState::Failed => "failed",
        }
    }
}

/// A loop's health, as another task sees it while the loop runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerHealth {
    /// Running, retrying since when, stopped or failed.
    pub state: WorkerState,
    /// Failed rounds in a row (0 once a round succeeds).
    pub consecutive_failures: u32,
    /// Rounds retried after a transient failure since `run` started.
    pub retries: u64,
    /// The last error (kept after the loop recovered, for the record).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last round ended well: the loop's heartbeat (an idle loop's rounds
    /// count, so it stays fresh while the loop waits for work; `None` before the first).
    pub last_round_at: Option<DateTime<Utc>>,
}

impl WorkerHealth {
    fn new() -> Self {
        WorkerHealth {
            state: WorkerState::NotStarted,
            consecutive_failures: 0,
            retries: 0,
            last_error: None,
            last_error_at: None,
            last_round_at: None,
        }
    }

    pub(crate) fn running() -> Self {
        WorkerHealth { state: WorkerState::Running, ..Self::new() }
    }

    /// When the current streak of failures started, if the loop is retrying.
    pub fn retrying_since(&self) -> Option<DateTime<Utc>> {
        match self.state {
            WorkerState::Retrying { since } => Some(since),
            _ => None,
        }
    }
}

/// What a round found: more work at once, or nothing until the next poll or wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    Busy,
    Idle,
}

/// Runs a loop's rounds with backoff on transient failures and keeps its health.
pub(crate) struct Supervisor {
    /// The kind of loop (`projection`, `outbox_relay`, ...), a metrics label.
    worker: &'static str,
    /// Which one (a projection's name, a relay's name), a metrics label.
    name: String,
    health: watch::Sender<WorkerHealth>,
}

impl Supervisor {
    pub(crate) fn new(worker: &'static str, name: impl Into<String>) -> Self {
        Supervisor { worker, name: name.into(), health: watch::Sender::new(WorkerHealth::new()) }
    }

    pub(crate) fn health(&self) -> WorkerHealth {
        self.health.borrow().clone()
    }

    pub(crate) fn watch(&self) -> watch::Receiver<WorkerHealth> {
        self.health.subscribe()
    }

    /// Runs `round` until `shutdown` completes: at once again after a busy round, after
    /// `poll` or a notification of `wake` otherwise, after `backoff` when it failed with a
    /// transient error. Returns `Ok` on shutdown and the error of a round that failed
    /// with any other error.
    ///
    /// The wake-up is armed before each round, so a notification sent while the round
    /// runs (a commit while the relay publishes) is not lost: the next round starts at
    /// once instead of after `poll`.
    pub(crate) async fn run<'a>(
        &self,
        backoff: &Backoff,
        shutdown: impl Future<Output = ()>,
        poll: Duration,
        wake: Option<&Notify>,
        mut round: impl FnMut() -> BoxFuture<'a, Result<Pace>>,
    ) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        self.begin();
        loop {
            let mut woken = std::pin::pin!(async {
                match wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            });
            // Polled once: registers the waiter before the round runs.
            let armed = (&mut woken).now_or_never().is_some();
            match round().await {
                Ok(pace) => {
                    self.succeeded();
                    if pace == Pace::Busy {
                        if (&mut shutdown).now_or_never().is_some() {
                            break;
                        }
                        continue;
                    }
                    if armed {
                        continue;
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(poll) => {}
                        () = &mut woken => {}
                    }
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.delay(self.failed(&e));
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    self.gave_up(&e);
                    return Err(e);
                }
            }
        }
        self.stopped();
        Ok(())
    }

    /// Marks the loop started (for a loop that drives its rounds itself).
    pub(crate) fn begin(&self) {
        self.health.send_modify(|h| {
            h.state = WorkerState::Running;
            h.consecutive_failures = 0;
        });
    }

    /// Marks the loop stopped on shutdown.
    pub(crate) fn stopped(&self) {
        self.health.send_modify(|h| h.state = WorkerState::Stopped);
    }

    /// Marks the loop stopped by an error that retrying cannot heal.
    pub(crate) fn gave_up(&self, e: &Error) {
        tracing::error!(worker = self.worker, name = %self.name, error = %e, "stopping: the error will not heal by retrying");
        self.health.send_modify(|h| {
            h.state = WorkerState::Failed;
            h.last_error = Some(e.to_string());
            h.last_error_at = Some(Utc::now());
        });
    }

    pub(crate) fn succeeded(&self) {
        let failures = self.health.borrow().consecutive_failures;
        if failures > 0 {
            tracing::info!(worker = self.worker, name = %self.name, failures, "recovered");
        }
        let now = Utc::now();
        // The heartbeat alone notifies no one: watchers wake on changes of state.
        self.health.send_if_modified(|h| {
            let changed = h.state != WorkerState::Running || h.consecutive_failures != 0;
            h.state = WorkerState::Running;
            h.consecutive_failures = 0;
            h.last_round_at = Some(now);
            changed
        });
    }

    /// Marks progress inside a long round (a projection catching up batch after batch),
    /// so its heartbeat stays fresh; notifies no one.
    pub(crate) fn beat(&self) {
        let now = Utc::now();
        self.health.send_if_modified(|h| {
            h.last_round_at = Some(now);
            false
        });
    }

    /// Records a transient failure; returns the number of failures in a row.
    pub(crate) fn failed(&self, error: &Error) -> u32 {
        let now = Utc::now();
        let mut failures = 0;
        self.health.send_modify(|h| {
            if !matches!(h.state, WorkerState::Retrying { .. }) {
                h.state = WorkerState::Retrying { since: now };
            }
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            h.retries = h.retries.saturating_add(1);
            h.last_error = Some(error.to_string());
            h.last_error_at = Some(now);
            failures = h.consecutive_failures;
        });
        tracing::warn!(worker = self.worker, name = %self.name, error = %error, failures, "round failed; retrying after a backoff");
        metrics::counter!(crate::metrics::WORKER_RETRIES_TOTAL, "worker" => self.worker, "name" => self.name.clone())
            .increment(1);
        failures
    }
}

/// Watches the gap-safe read horizon for one loop (see the module docs).
pub(crate) struct StallWatch {
    /// The gauge's label: (`projection` | `relay`, its name).
    label: (&'static str, String),
    /// Checks no more often than this.
    every: Duration,
    /// Warns once the horizon has been held this long, and again after as long.
    warn_after: Duration,
    checked: parking_lot::Mutex<Option<Instant>>,
    warned: parking_lot::Mutex<Option<(u64, Instant)>>,
}

impl StallWatch {
    pub(crate) fn new(label: (&'static str, String), every: Duration, warn_after: Duration) -> Self {
        StallWatch {
            label,
            every,
            warn_after,
            checked: parking_lot::Mutex::new(None),
            warned: parking_lot::Mutex::new(None),
        }
    }

    /// Asks `events` what holds its horizon back, unless it was asked less than a poll
    /// interval ago; sets the gauge and warns past the threshold. A failing question is
    /// logged at `debug` and otherwise ignored (the loop's own reads report outages).
    pub(crate) async fn check(&self, events: &dyn EventStore) {
        {
            let mut checked = self.checked.lock();
            let now = Instant::now();
            if checked.is_some_and(|at| now.duration_since(at) < self.every) {
                return;
            }
            *checked = Some(now);
        }
        let stall = match events.read_stall().await {
            Ok(stall) => stall,
            Err(e) => {
                tracing::debug!(error = %e, "cannot ask the event store what holds its read horizon");
                return;
            }
        };
        let held = stall.as_ref().map(|s| s.held_for(Utc::now())).unwrap_or_default();
        let (key, name) = &self.label;
        metrics::gauge!(crate::metrics::READ_HORIZON_HELD_SECONDS, *key => name.clone()).set(held.as_secs_f64());
        let Some(stall) = stall.filter(|_| held >= self.warn_after) else {
            *self.warned.lock() = None;
            return;
        };
        {
            let mut warned = self.warned.lock();
            let now = Instant::now();
            if warned.is_some_and(|(xid, at)| xid == stall.xid && now.duration_since(at) < self.warn_after) {
                return;
            }
            *warned = Some((stall.xid, now));
        }
        warn_held(key, name, &stall, held);
    }
}

fn warn_held(key: &str, name: &str, stall: &ReadStall, held: Duration) {
    tracing::warn!(
        worker = key,
        name,
        pid = stall.pid,
        xid = stall.xid,
        xid_age = stall.xid_age,
        application_name = stall.application_name.as_deref(),
        held_secs = held.as_secs(),
        "an open transaction holds the event log's read horizon back: readers of all events wait for it \
         (find it by pid and application_name; commit or end it)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_supervised_loop_retries_transient_errors_and_stops_on_others() {
        let sup = Supervisor::new("test", "t");
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let rounds = std::sync::atomic::AtomicU32::new(0);
        let seen = parking_lot::Mutex::new(Vec::new());
        let result = sup
            .run(&backoff, std::future::pending(), Duration::ZERO, None, || {
                let n = rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                seen.lock().push(sup.health());
                Box::pin(async move {
                    match n {
                        0 | 1 => Err(Error::store("connection reset")),
                        2 => Ok(Pace::Busy),
                        _ => Err(Error::handler("bad configuration")),
                    }
                })
            })
            .await;
        assert!(matches!(result, Err(Error::Handler(_))));
        let seen = seen.lock();
        assert_eq!(seen[0].state, WorkerState::Running);
        assert_eq!(seen[2].consecutive_failures, 2);
        assert!(seen[2].retrying_since().is_some());
        assert_eq!(seen[3].state, WorkerState::Running, "a good round ends the streak");
        assert_eq!(seen[3].last_error.as_deref(), Some("store error: connection reset"));
        let end = sup.health();
        assert_eq!((end.state, end.retries), (WorkerState::Failed, 2));
        assert_eq!(end.last_error.as_deref(), Some("bad configuration"));
    }
}
