//! The worker host: one call runs every background loop the application's wiring
//! implies, until shutdown.
//!
//! ```rust,ignore
//! let app = App::builder().event_store(store).projection(Balances).build()?;
//! app.run(tokio::signal::ctrl_c().map(|_| ())).await?;   // or tokio::spawn(app.host().run(..))
//! ```
//!
//! [`Mediator::run`] (or [`Mediator::host`], to choose) starts:
//!
//! | loop | when |
//! | --- | --- |
//! | the [outbox relay](crate::OutboxRelay) (to the bus, else to this process's async handlers and sagas), woken by local commits | there are `#[event_handler(async)]`s, sagas or a bus |
//! | a consumer of the bus ([`Mediator::consume`]) in the group of [`AppBuilder::consumer`](crate::AppBuilder::consumer) (`default`) | there is a bus and async handlers or sagas |
//! | a [projection worker](crate::ProjectionWorker) per [`AppBuilder::projection`](crate::AppBuilder::projection), woken by local commits | always |
//! | [saga recovery](crate::saga::SagaRecovery) (re-sends, timeouts, scheduled commands) | there are sagas |
//! | the [scheduler](crate::scheduling::Scheduler) of scheduled commands | there are no sagas |
//! | the [job worker](crate::jobs::JobWorker) and the [job sweeper](crate::jobs::JobSweeper) | there are job types (`#[job]`) |
//!
//! Shutdown: when the future given to `run` completes, each loop finishes the round it
//! is in (the relay settles what it published, a projection commits its batch) and
//! stops; `run` returns once all have. A loop that stops on an error retrying cannot
//! heal stops the others too, and `run` returns that error. Transient failures (the
//! database away) are ridden out by each loop with its backoff, visible in
//! [`Mediator::health`].
//!
//! Several processes may run the same host: projections share partitions by leases, the
//! relay, the scheduler and saga recovery claim their rows.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use serde_json::json;
use uuid::Uuid;

use crate::broker::ConsumerOptions;
use crate::cqrs::Mediator;
use crate::domain::Cursor;
use crate::error::{Error, Result};
use crate::health::{Check, HealthThresholds, Status, worker_check};
use crate::outbox::{OutboxRelay, RelayOptions};
use crate::ports::{DeadLetter, EventStore, Outbox, ProjectionStore};
use crate::projection::{Progress, Projection, ProjectionStatus, ProjectionWorker, WorkerOptions};
use crate::saga::SagaRecovery;
use crate::scheduling::Scheduler;
use crate::worker::{WorkerHealth, WorkerState};

/// The shutdown every loop of a host waits on.
type Stop = Shared<BoxFuture<'static, ()>>;

/// A loop the host runs.
#[async_trait]
pub(crate) trait Worker: Send + Sync + 'static {
    /// `projection:{name}`, `outbox_relay`, `consumer:{group}`, `saga_recovery`, `scheduler`.
    fn label(&self) -> String;
    fn health(&self) -> WorkerHealth;
    async fn run(&self, stop: Stop) -> Result<()>;
    /// Its health checks (the caller bounds them in time).
    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        vec![worker_check(self.label(), &self.health(), thresholds)]
    }
}

/// The loops a host runs, for [`Mediator::health`].
#[derive(Default)]
pub(crate) struct Hosted {
    workers: Mutex<Vec<Arc<dyn Worker>>>,
}

impl Hosted {
    pub(crate) fn workers(&self) -> Vec<Arc<dyn Worker>> {
        self.workers.lock().clone()
    }
}

/// Builds a projection's worker over the event store and the read-model store.
type MakeWorker =
    dyn Fn(Arc<dyn EventStore>, Arc<dyn ProjectionStore>, WorkerOptions) -> Arc<dyn Projected> + Send + Sync;

/// A hosted projection worker, with what an operator does to it.
#[async_trait]
pub(crate) trait Projected: Worker {
    fn scope(&self) -> String;
    async fn status(&self) -> Result<ProjectionStatus>;
    async fn rebuild(&self, progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send)) -> Result<Progress>;
    async fn catch_up(&self, progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send)) -> Result<Progress>;
    async fn rebuild_partition(
        &self,
        partition: u32,
        progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
    ) -> Result<Progress>;
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>>;
    async fn retry_dead_letter(&self, event_id: Uuid) -> Result<()>;
    async fn skip_dead_letter(&self, event_id: Uuid) -> Result<()>;
}

#[async_trait]
impl<P: Projection> Projected for ProjectionWorker<P> {
    fn scope(&self) -> String {
        ProjectionWorker::scope(self).to_owned()
    }
    async fn status(&self) -> Result<ProjectionStatus> {
        ProjectionWorker::status(self).await
    }
    async fn rebuild(&self, progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send)) -> Result<Progress> {
        self.rebuild_with(|p: &Progress| progress(*p)).await
    }
    async fn catch_up(&self, progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send)) -> Result<Progress> {
        self.catch_up_with(|p: &Progress| progress(*p)).await
    }
    async fn rebuild_partition(
        &self,
        partition: u32,
        progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
    ) -> Result<Progress> {
        self.rebuild_partition_with(partition, |p: &Progress| progress(*p)).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        ProjectionWorker::dead_letters(self).await
    }
    async fn retry_dead_letter(&self, event_id: Uuid) -> Result<()> {
        ProjectionWorker::retry_dead_letter(self, event_id).await
    }
    async fn skip_dead_letter(&self, event_id: Uuid) -> Result<()> {
        ProjectionWorker::skip_dead_letter(self, event_id).await
    }
}

/// A projection registered with [`AppBuilder::projection`](crate::AppBuilder::projection),
/// for an operator (a CLI, an admin page): its status, a rebuild or a catch-up with
/// progress, its dead letters. From [`Mediator::projections`].
///
/// A rebuild or a catch-up applies events in batches, each committed with its
/// checkpoint: stopped between two (the future dropped, Ctrl-C), the read model and
/// the checkpoint agree, and [`ProjectionControl::catch_up`] goes on from there. Neither
/// takes the workers' leases: run them while the host's worker for the projection is
/// stopped, or accept that both apply batches (each event is still applied once: a
/// batch that loses the race to the checkpoint is not written).
#[derive(Clone)]
pub struct ProjectionControl {
    name: &'static str,
    tenant: Option<String>,
    worker: Arc<dyn Projected>,
}

impl std::fmt::Debug for ProjectionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionControl").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ProjectionControl {
    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name its checkpoints are kept under (`name@tenant` for one tenant's worker).
    pub fn scope(&self) -> String {
        self.worker.scope()
    }

    /// The tenant whose events it reads ([`WorkerOptions::tenant`]; `None`: every tenant's).
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Checkpoints, head, lag, dead letters, what holds the read horizon back.
    pub async fn status(&self) -> Result<ProjectionStatus> {
        self.worker.status().await
    }

    /// Drops the read model and applies every event again. `progress` hears how far it
    /// is after each batch; when it answers [`ControlFlow::Break`], the rebuild stops
    /// there (that batch committed with its checkpoint) and the answer says
    /// [`Progress::stopped`]: [`ProjectionControl::catch_up`] resumes it.
    pub async fn rebuild(&self, mut progress: impl FnMut(&Progress) -> ControlFlow<()> + Send) -> Result<Progress> {
        self.worker.rebuild(&mut |p| progress(&p)).await
    }

    /// Rebuilds one partition: its checkpoint goes back to the start and its events are
    /// applied again over the documents as they are. The read model is not dropped, so
    /// this suits projections whose handlers set documents from the event (after fixing
    /// a handler, say) rather than add to them. `progress` as for a rebuild. Errors:
    /// [`Error::Missing`] for a partition the projection does not have.
    pub async fn rebuild_partition(
        &self,
        partition: u32,
        mut progress: impl FnMut(&Progress) -> ControlFlow<()> + Send,
    ) -> Result<Progress> {
        self.worker.rebuild_partition(partition, &mut |p| progress(&p)).await
    }

    /// Applies the events after the checkpoints; `progress` as for a rebuild.
    pub async fn catch_up(&self, mut progress: impl FnMut(&Progress) -> ControlFlow<()> + Send) -> Result<Progress> {
        self.worker.catch_up(&mut |p| progress(&p)).await
    }

    /// The events it gave up on, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.worker.dead_letters().await
    }

    /// Applies a dead letter's event again and removes the letter.
    pub async fn retry_dead_letter(&self, event_id: Uuid) -> Result<()> {
        self.worker.retry_dead_letter(event_id).await
    }

    /// Removes a dead letter without applying its event.
    pub async fn skip_dead_letter(&self, event_id: Uuid) -> Result<()> {
        self.worker.skip_dead_letter(event_id).await
    }
}

/// Of `controls`, the one whose scope is `name`, else the one named `name`.
pub(crate) fn pick_projection(controls: Vec<ProjectionControl>, name: &str) -> Result<ProjectionControl> {
    if let Some(exact) = controls.iter().find(|c| c.scope() == name) {
        return Ok(exact.clone());
    }
    let named = controls.into_iter().filter(|c| c.name() == name).map(|c| (c.scope(), c)).collect();
    crate::error::the_one(
        named,
        || format!("projection `{name}`"),
        || Error::UnknownMessage { kind: "projection", name: name.to_owned() },
    )
}

/// A projection registered with [`AppBuilder::projection`](crate::AppBuilder::projection).
#[derive(Clone)]
pub(crate) struct ProjectionPlan {
    pub(crate) name: &'static str,
    pub(crate) options: WorkerOptions,
    /// Builds its worker over the application's stores.
    pub(crate) make: Arc<MakeWorker>,
}

impl ProjectionPlan {
    pub(crate) fn of<P: Projection>(projection: P, options: WorkerOptions) -> Self {
        let projection = Arc::new(projection);
        ProjectionPlan {
            name: P::NAME,
            options,
            make: Arc::new(move |events, store, options| {
                Arc::new(ProjectionWorker::assemble(projection.clone(), events, store, options)) as Arc<dyn Projected>
            }),
        }
    }

    /// The name its checkpoints are kept under (`name@tenant` for one tenant's worker).
    fn scope(&self) -> String {
        match &self.options.tenant {
            Some(tenant) => format!("{}@{tenant}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// What the builder wired for the host.
#[derive(Default)]
pub(crate) struct HostPlan {
    pub(crate) outbox: Option<Arc<dyn Outbox>>,
    pub(crate) read_models: Option<Arc<dyn ProjectionStore>>,
    pub(crate) projections: Vec<ProjectionPlan>,
    pub(crate) relay: Option<RelayOptions>,
    pub(crate) consumer: Option<ConsumerOptions>,
    /// Async handlers or saga steps exist.
    pub(crate) asynchronous: bool,
    pub(crate) sagas: bool,
    /// Job types are registered.
    pub(crate) jobs: bool,
}

/// The loops to run, chosen from the wiring; see the [module docs](self).
#[allow(clippy::struct_excessive_bools)] // one independent switch per kind of loop
pub struct Host {
    app: Mediator,
    relay: bool,
    consumer: Option<ConsumerOptions>,
    projections: bool,
    scheduler: bool,
    jobs: bool,
}

impl Mediator {
    /// What the builder wired for the host (nothing for a mediator built otherwise).
    fn host_plan(&self) -> &HostPlan {
        static NONE: std::sync::LazyLock<HostPlan> = std::sync::LazyLock::new(HostPlan::default);
        self.extension::<HostPlan>().unwrap_or(&NONE)
    }

    /// The host of this application's background loops, with what the wiring implies
    /// switched on (see [`crate::host`]).
    pub fn host(&self) -> Host {
        let plan = self.host_plan();
        let bus = self.bus().is_some();
        Host {
            app: self.clone(),
            relay: plan.outbox.is_some() && (plan.asynchronous || bus),
            consumer: (bus && plan.asynchronous)
                .then(|| plan.consumer.clone().unwrap_or_else(|| ConsumerOptions::group("default"))),
            projections: true,
            scheduler: true,
            jobs: plan.jobs,
        }
    }

    /// Runs every background loop the wiring implies until `shutdown` completes:
    /// `self.host().run(shutdown)` (see [`crate::host`]).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.host().run(shutdown).await
    }

    /// The projections registered with
    /// [`AppBuilder::projection`](crate::AppBuilder::projection), in that order, for an
    /// operator; empty without a read-model store.
    pub fn projections(&self) -> Vec<ProjectionControl> {
        let plan = self.host_plan();
        let Some(store) = &plan.read_models else { return Vec::new() };
        plan.projections
            .iter()
            .map(|p| ProjectionControl {
                name: p.name,
                tenant: p.options.tenant.clone(),
                worker: (p.make)(self.event_store(), store.clone(), p.options.clone()),
            })
            .collect()
    }

    /// The registered projection whose checkpoint scope is `name` (`balances`,
    /// `balances@acme` for one tenant's worker), else the one named `name`.
    /// [`Error::UnknownMessage`] (kind `projection`) when none has it;
    /// [`Error::Ambiguous`] for a name several tenants' workers share (name the scope).
    pub fn projection(&self, name: &str) -> Result<ProjectionControl> {
        pick_projection(self.projections(), name)
    }

    /// The outbox the host relays: the one given to
    /// [`AppBuilder::outbox`](crate::AppBuilder::outbox), else the event store's own.
    pub fn outbox(&self) -> Option<Arc<dyn Outbox>> {
        self.host_plan().outbox.clone()
    }

    /// The document store of the read models: the one given to
    /// [`AppBuilder::read_models`](crate::AppBuilder::read_models), else the event store's own.
    pub fn read_model_store(&self) -> Option<Arc<dyn ProjectionStore>> {
        self.host_plan().read_models.clone()
    }

    /// Waits until the read models the query `query` reads (its `#[query(reads = ..)]`,
    /// else every projection registered with
    /// [`AppBuilder::projection`](crate::AppBuilder::projection)) have reached `position`,
    /// in this process or any other: each projection's checkpoints, in the read-model
    /// store, are at or past it. Read-your-writes: `position` is what
    /// [`Mediator::send_json`] answered.
    ///
    /// Errors: [`Error::Timeout`] when they have not within `timeout`,
    /// [`Error::UnknownMessage`] for an unknown query, [`Error::NoReadModels`] without a
    /// read-model store, a store error.
    pub async fn wait_for_position(&self, query: &str, position: Cursor, timeout: Duration) -> Result<()> {
        let reads = self.named_query(query)?.reads;
        let plan = self.host_plan();
        let scopes: Vec<(String, u32)> = if reads.is_empty() {
            plan.projections.iter().map(|p| (p.scope(), p.options.partitions.max(1))).collect()
        } else {
            reads
                .iter()
                .map(|name| {
                    plan.projections
                        .iter()
                        .find(|p| p.name == *name)
                        .map_or(((*name).to_owned(), 1), |p| (p.scope(), p.options.partitions.max(1)))
                })
                .collect()
        };
        if scopes.is_empty() {
            return Ok(());
        }
        let store = plan.read_models.as_ref().ok_or(Error::NoReadModels { needed_by: "wait_for_position" })?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if reached(&**store, &scopes, position).await? {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("the read models of `{query}` reaching position {position}"),
                    after: timeout,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

async fn reached(store: &dyn ProjectionStore, scopes: &[(String, u32)], position: Cursor) -> Result<bool> {
    for (scope, partitions) in scopes {
        for partition in 0..*partitions {
            if store.checkpoint(scope, partition).await?.unwrap_or(Cursor::START) < position {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

impl Host {
    /// Runs the outbox relay (default: when there are async handlers, sagas or a bus).
    pub fn relay(mut self, on: bool) -> Self {
        self.relay = on;
        self
    }

    /// Consumes the bus with these options (`None`: not at all; default: the builder's
    /// consumer group when there is a bus and something to consume).
    pub fn consume(mut self, options: Option<ConsumerOptions>) -> Self {
        self.consumer = options;
        self
    }

    /// Runs the registered projections' workers (default: on).
    pub fn projections(mut self, on: bool) -> Self {
        self.projections = on;
        self
    }

    /// Runs saga recovery, or the scheduler without sagas (default: on).
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = on;
        self
    }

    /// Runs the job worker and the job sweeper (default: when the program has job types).
    pub fn jobs(mut self, on: bool) -> Self {
        self.jobs = on;
        self
    }

    /// The loops this host would run, by label (`outbox_relay`, `projection:balances`, ...).
    pub fn labels(&self) -> Vec<String> {
        self.workers().iter().map(|w| w.label()).collect()
    }

    fn workers(&self) -> Vec<Arc<dyn Worker>> {
        let app = &self.app;
        let plan = app.host_plan();
        let mut workers: Vec<Arc<dyn Worker>> = Vec::new();
        if let (true, Some(outbox)) = (self.relay, &plan.outbox) {
            let mut relay = OutboxRelay::for_app(outbox.clone(), app);
            if let Some(options) = plan.relay.clone() {
                relay = relay.with_options(options.wake_on(app));
            }
            workers.push(Arc::new(relay.watch_read_horizon(app.event_store())));
        }
        if let Some(options) = &self.consumer {
            workers.push(Arc::new(Consumer::new(app.clone(), options.clone())));
        }
        if self.projections
            && let Some(store) = &plan.read_models
        {
            for p in &plan.projections {
                let wake = p.options.wake.clone().or_else(|| Some(app.commit_signal()));
                let options = WorkerOptions { wake, ..p.options.clone() };
                workers.push((p.make)(app.event_store(), store.clone(), options) as Arc<dyn Worker>);
            }
        }
        if self.scheduler {
            if plan.sagas {
                workers.push(Arc::new(SagaRecovery::new(app.clone())));
            } else {
                workers.push(Arc::new(ScheduleWorker(Scheduler::new(app.clone()))));
            }
        }
        if self.jobs {
            workers.push(Arc::new(crate::jobs::JobWorker::new(app.clone())));
            workers.push(Arc::new(crate::jobs::JobSweeper::new(app.clone())));
        }
        workers
    }

    /// Runs the loops until `shutdown` completes and each has finished its round; see
    /// the [module docs](self).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let workers = self.workers();
        if let Some(hosted) = self.app.extension::<Hosted>() {
            hosted.workers.lock().clone_from(&workers);
        }
        let (stop_all, stopped) = tokio::sync::watch::channel(false);
        let mut stopped_rx = stopped.clone();
        let stop: Stop = async move {
            tokio::select! {
                () = shutdown => {}
                _ = stopped_rx.wait_for(|s| *s) => {}
            }
        }
        .boxed()
        .shared();
        tracing::info!(workers = ?workers.iter().map(|w| w.label()).collect::<Vec<_>>(), "starting the worker host");
        let mut tasks = tokio::task::JoinSet::new();
        for worker in workers {
            let stop = stop.clone();
            tasks.spawn(async move {
                let label = worker.label();
                (label, worker.run(stop).await)
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let (label, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    ("a worker".to_owned(), Err(Error::handler(format!("the task panicked or was cancelled: {e}"))))
                }
            };
            if let Err(e) = result {
                tracing::error!(worker = %label, error = %e, "a worker stopped on an error; stopping the others");
                let _ = stop_all.send(true);
                first_error.get_or_insert(e);
            }
        }
        drop(stopped);
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl<P: Projection> Worker for ProjectionWorker<P> {
    fn label(&self) -> String {
        format!("projection:{}", self.scope())
    }

    fn health(&self) -> WorkerHealth {
        ProjectionWorker::health(self)
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        ProjectionWorker::run(self, stop).await
    }

    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        let label = self.label();
        let mut check = worker_check(label.clone(), &self.health(), thresholds);
        match self.status().await {
            Ok(status) => {
                let held = status.read_stall.as_ref().map(|s| s.held_for(chrono::Utc::now()));
                check.detail["lag"] = json!(status.lag);
                check.detail["dead_letters"] = json!(status.dead_letters);
                check.detail["read_horizon_held_ms"] =
                    json!(held.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
                let past = status.lag > thresholds.projection_lag
                    || status.dead_letters > 0
                    || held.is_some_and(|d| d > thresholds.horizon_held);
                if past {
                    check.status = check.status.max(Status::Degraded);
                }
            }
            Err(e) => return vec![Check::down(label, e)],
        }
        vec![check]
    }
}

#[async_trait]
impl Worker for OutboxRelay {
    fn label(&self) -> String {
        "outbox_relay".to_owned()
    }

    fn health(&self) -> WorkerHealth {
        OutboxRelay::health(self)
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        OutboxRelay::run(self, stop).await
    }

    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        let label = self.label();
        let mut check = worker_check(label.clone(), &self.health(), thresholds);
        match self.outbox().counts().await {
            Ok(counts) => {
                check.detail["backlog"] = json!(counts.pending);
                check.detail["dead"] = json!(counts.dead);
                if counts.pending > thresholds.outbox_backlog || counts.dead > thresholds.dead_rows {
                    check.status = check.status.max(Status::Degraded);
                }
            }
            Err(e) => return vec![Check::down(label, e)],
        }
        vec![check]
    }
}

#[async_trait]
impl Worker for SagaRecovery {
    fn label(&self) -> String {
        "saga_recovery".to_owned()
    }

    fn health(&self) -> WorkerHealth {
        SagaRecovery::health(self)
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        SagaRecovery::run(self, stop).await
    }

    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        scheduled_checks(self.label(), &self.health(), self.mediator(), thresholds).await
    }
}

#[async_trait]
impl Worker for crate::jobs::JobWorker {
    fn label(&self) -> String {
        "job_worker".to_owned()
    }

    fn health(&self) -> WorkerHealth {
        crate::jobs::JobWorker::health(self)
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        crate::jobs::JobWorker::run(self, stop).await
    }

    /// Its state, with the jobs pending, running and failed for good as details (a failed
    /// job can be a business outcome, so it does not degrade readiness).
    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        let label = self.label();
        let mut check = worker_check(label.clone(), &self.health(), thresholds);
        let Some(store) = self.mediator().job_store() else { return vec![check] };
        match store.job_stats(crate::ports::TenantScope::All).await {
            Ok(stats) => {
                check.detail["failed"] = json!(stats.failed);
                check.detail["pending"] = json!(stats.pending);
                check.detail["running"] = json!(stats.running);
            }
            Err(e) => return vec![Check::down(label, e)],
        }
        vec![check]
    }
}

#[async_trait]
impl Worker for crate::jobs::JobSweeper {
    fn label(&self) -> String {
        "job_sweeper".to_owned()
    }

    fn health(&self) -> WorkerHealth {
        crate::jobs::JobSweeper::health(self)
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        crate::jobs::JobSweeper::run(self, stop).await
    }
}

/// The scheduler as a hosted loop.
struct ScheduleWorker(Scheduler);

#[async_trait]
impl Worker for ScheduleWorker {
    fn label(&self) -> String {
        "scheduler".to_owned()
    }

    fn health(&self) -> WorkerHealth {
        self.0.health()
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        self.0.run(stop).await
    }

    async fn checks(&self, thresholds: &HealthThresholds) -> Vec<Check> {
        scheduled_checks(self.label(), &self.health(), self.0.mediator(), thresholds).await
    }
}

/// A scheduling loop's checks: its state, and the dead scheduled commands.
async fn scheduled_checks(
    label: String,
    health: &WorkerHealth,
    app: &Mediator,
    thresholds: &HealthThresholds,
) -> Vec<Check> {
    let mut check = worker_check(label.clone(), health, thresholds);
    let limit = usize::try_from(thresholds.dead_rows.saturating_add(1)).unwrap_or(usize::MAX);
    match app.schedule_store().dead(limit).await {
        Ok(dead) => {
            check.detail["dead"] = json!(dead.len());
            if dead.len() as u64 > thresholds.dead_rows {
                check.status = check.status.max(Status::Degraded);
            }
        }
        Err(e) => return vec![Check::down(label, e)],
    }
    vec![check]
}

/// A consumer of the bus as a hosted loop: one long call, its state kept here.
struct Consumer {
    app: Mediator,
    options: ConsumerOptions,
    health: tokio::sync::watch::Sender<WorkerHealth>,
}

impl Consumer {
    fn new(app: Mediator, options: ConsumerOptions) -> Self {
        Consumer { app, options, health: tokio::sync::watch::Sender::new(WorkerHealth::running()) }
    }
}

#[async_trait]
impl Worker for Consumer {
    fn label(&self) -> String {
        format!("consumer:{}", self.options.group)
    }

    fn health(&self) -> WorkerHealth {
        self.health.borrow().clone()
    }

    async fn run(&self, stop: Stop) -> Result<()> {
        let result = self.app.consume(self.options.clone(), stop).await;
        self.health.send_modify(|h| {
            h.state = if result.is_ok() { WorkerState::Stopped } else { WorkerState::Failed };
            if let Err(e) = &result {
                h.last_error = Some(e.to_string());
                h.last_error_at = Some(chrono::Utc::now());
            }
        });
        result
    }
}
