//! Health: what a load balancer and an operator ask a running application.
//!
//! [`Mediator::health`] answers readiness: every check at once, each bounded by
//! [`HealthThresholds::check_timeout`]: the event store answers, the bus answers, each
//! worker the [host](crate::host) runs is running (a projection also within its lag, its
//! heartbeat fresh and the read horizon not held too long; the outbox relay also with a
//! bounded backlog and no dead rows; the scheduler with no dead rows), and every check
//! added with [`AppBuilder::health_check`](crate::AppBuilder::health_check) (a Redis
//! cache, a lock backend, a mail server). [`Mediator::liveness`] answers from the
//! workers' state only, without I/O: a worker that stopped on an error that retrying
//! cannot heal makes the process not live.
//!
//! A check is [`Status::Up`], [`Status::Degraded`] (working, but past a threshold: an
//! operator should look) or [`Status::Down`]; the report is as bad as its worst check,
//! and the application is ready unless a check is down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::json;

use crate::cqrs::Mediator;
use crate::worker::{WorkerHealth, WorkerState};

/// How a check, or the whole application, is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Working.
    Up,
    /// Working, past a threshold.
    Degraded,
    /// Not working.
    Down,
}

/// One check's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What was checked (`event_store`, `bus`, `projection:balances`, ...).
    pub name: String,
    /// Its status.
    pub status: Status,
    /// What it found (numbers, the last error), as JSON.
    pub detail: serde_json::Value,
}

impl Check {
    /// A check that is up.
    pub fn up(name: impl Into<String>, detail: serde_json::Value) -> Self {
        Check { name: name.into(), status: Status::Up, detail }
    }

    /// A check that is down because of `error`.
    pub fn down(name: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Check { name: name.into(), status: Status::Down, detail: json!({ "error": error.to_string() }) }
    }
}

/// Every check's answer, and the worst of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst status of the checks (`Up` without checks).
    pub status: Status,
    /// Each check, in a stable order.
    pub checks: Vec<Check>,
}

impl HealthReport {
    /// A report of these checks.
    pub fn of(checks: Vec<Check>) -> Self {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Up);
        HealthReport { status, checks }
    }

    /// Whether the application can serve: no check is down.
    pub fn is_ready(&self) -> bool {
        self.status != Status::Down
    }
}

/// A check of something the application depends on.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's name in the report.
    fn name(&self) -> String;
    /// Checks, now. The caller bounds it by [`HealthThresholds::check_timeout`].
    async fn check(&self) -> Check;
}

/// A [`HealthCheck`] from a name and an async closure answering `Ok` (up) or an error
/// (down), for a service the handlers depend on (the lock and cache backends have
/// [`lock_check`] and [`cache_check`]):
///
/// ```rust
/// # use cqrs_ddd::App;
/// # use cqrs_ddd::health::check_fn;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cqrs_ddd::Result<()> {
/// let app = App::builder()
///     .health_check(check_fn("mail", || async { Err::<(), _>("connection refused") }))
///     .build()?;
/// assert!(!app.health().await.is_ready());
/// # Ok(()) }
/// ```
pub fn check_fn<F, Fut, E>(name: impl Into<String>, check: F) -> impl HealthCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    struct FnCheck<F> {
        name: String,
        check: F,
    }
    #[async_trait]
    impl<F, Fut, E> HealthCheck for FnCheck<F>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        fn name(&self) -> String {
            self.name.clone()
        }
        async fn check(&self) -> Check {
            match (self.check)().await {
                Ok(()) => Check::up(self.name.clone(), json!({})),
                Err(e) => Check::down(self.name.clone(), e),
            }
        }
    }
    FnCheck { name: name.into(), check }
}

/// A check that a lock backend answers (`RedisLocks`, `Redlock`: a quorum of nodes,
/// `PgLocks`, `MemoryLocks`): `.health_check(lock_check("locks", locks.clone()))`.
pub fn lock_check(name: impl Into<String>, backend: Arc<dyn crate::lock::LockBackend>) -> impl HealthCheck {
    check_fn(name, move || {
        let backend = backend.clone();
        async move { backend.health().await }
    })
}

/// A check that a cache backend answers (`RedisCache`, `MemoryCache`).
pub fn cache_check(name: impl Into<String>, backend: Arc<dyn crate::cache::CacheBackend>) -> impl HealthCheck {
    check_fn(name, move || {
        let backend = backend.clone();
        async move { backend.health().await }
    })
}

/// Where the checks draw their lines.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// A check that takes longer is down (default 2 s).
    pub check_timeout: Duration,
    /// A projection further behind the head than this many events is degraded
    /// (default 10,000).
    pub projection_lag: u64,
    /// A worker whose last round is older than this is down: stalled (default 60 s;
    /// keep it above the workers' poll intervals).
    pub heartbeat: Duration,
    /// A worker retrying transient failures for longer than this is down (default 30 s;
    /// before, it is degraded).
    pub retrying: Duration,
    /// The read horizon held longer than this makes readers of all events degraded
    /// (default 30 s).
    pub horizon_held: Duration,
    /// More outbox rows waiting than this is degraded (default 10,000).
    pub outbox_backlog: u64,
    /// More dead outbox rows or dead scheduled commands than this is degraded
    /// (default 0: any).
    pub dead_rows: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            check_timeout: Duration::from_secs(2),
            projection_lag: 10_000,
            heartbeat: Duration::from_secs(60),
            retrying: Duration::from_secs(30),
            horizon_held: Duration::from_secs(30),
            outbox_backlog: 10_000,
            dead_rows: 0,
        }
    }
}

/// The checks an application was given.
#[derive(Default)]
pub(crate) struct HealthChecks {
    pub(crate) checks: Vec<Arc<dyn HealthCheck>>,
    pub(crate) thresholds: HealthThresholds,
}

/// The status a worker's state gives.
pub(crate) fn worker_check(name: String, health: &WorkerHealth, thresholds: &HealthThresholds) -> Check {
    let now = Utc::now();
    let heartbeat = health.last_round_at.map(|at| (now - at).to_std().unwrap_or_default());
    let mut detail = json!({
        "state": health.state.name(),
        "consecutive_failures": health.consecutive_failures,
        "retries": health.retries,
        "last_error": health.last_error,
        "heartbeat_age_ms": heartbeat.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    });
    let status = match health.state {
        WorkerState::Running if heartbeat.is_some_and(|age| age > thresholds.heartbeat) => {
            detail["stalled"] = json!(true);
            Status::Down
        }
        WorkerState::Running | WorkerState::NotStarted => Status::Up,
        WorkerState::Retrying { since } => {
            if (now - since).to_std().unwrap_or_default() > thresholds.retrying {
                Status::Down
            } else {
                Status::Degraded
            }
        }
        WorkerState::Stopped | WorkerState::Failed => Status::Down,
    };
    Check { name, status, detail }
}

/// Runs `checks`; one check `name`, down, when they take longer than `timeout`.
async fn bounded(name: String, timeout: Duration, checks: impl Future<Output = Vec<Check>>) -> Vec<Check> {
    match tokio::time::timeout(timeout, checks).await {
        Ok(checks) => checks,
        Err(_) => vec![Check::down(name, format!("no answer within {timeout:?}"))],
    }
}

/// A backend's own answer as a check.
fn answered<E: std::fmt::Display>(name: String, answer: Result<serde_json::Value, E>) -> Vec<Check> {
    vec![match answer {
        Ok(detail) => Check::up(name, detail),
        Err(e) => Check::down(name, e),
    }]
}

impl Mediator {
    /// Readiness: every check (see the [module docs](crate::health)), run at once.
    pub async fn health(&self) -> HealthReport {
        let default = HealthChecks::default();
        let checks = self.extension::<HealthChecks>().unwrap_or(&default);
        let thresholds = &checks.thresholds;
        let timeout = thresholds.check_timeout;
        let store = self.event_store();
        let mut pending: Vec<BoxFuture<'_, Vec<Check>>> =
            vec![Box::pin(bounded("event_store".into(), timeout, async move {
                answered("event_store".into(), store.head().await.map(|head| json!({ "head": head.to_string() })))
            }))];
        if let Some(bus) = self.bus() {
            let name = format!("bus:{}", bus.name());
            pending.push(Box::pin(bounded(name.clone(), timeout, async move {
                answered(name, bus.health().await.map(|()| json!({})))
            })));
        }
        for check in &checks.checks {
            pending.push(Box::pin(bounded(check.name(), timeout, async move { vec![check.check().await] })));
        }
        if let Some(hosted) = self.extension::<crate::host::Hosted>() {
            for worker in hosted.workers() {
                pending.push(Box::pin(bounded(
                    worker.label(),
                    timeout,
                    async move { worker.checks(thresholds).await },
                )));
            }
        }
        HealthReport::of(futures::future::join_all(pending).await.into_iter().flatten().collect())
    }

    /// Liveness: the state of every worker the host runs, without I/O. A worker that
    /// stopped on an error retrying cannot heal is down.
    pub fn liveness(&self) -> HealthReport {
        let Some(hosted) = self.extension::<crate::host::Hosted>() else { return HealthReport::of(Vec::new()) };
        let checks = hosted
            .workers()
            .iter()
            .map(|w| {
                let health = w.health();
                let status = match health.state {
                    WorkerState::Failed => Status::Down,
                    _ => Status::Up,
                };
                Check { name: w.label(), status, detail: json!({ "last_error": health.last_error }) }
            })
            .collect();
        HealthReport::of(checks)
    }
}
