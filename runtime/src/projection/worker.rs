use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Projection, ProjectionTx};
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::ports::{Cursor, DeadLetter, EventStore, ProjectionStore, ReadStall, StoredEvent, StreamKey};
use crate::worker::{Pace, StallWatch, Supervisor, WorkerHealth};

/// Where a projection without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// From the first event (the default): the read model covers all history.
    #[default]
    Beginning,
    /// From the events committed after it first runs.
    Head,
}

/// What a worker does when the projection fails on an event: when applying it fails,
/// or when writing what it changed does (a value the read-model store refuses). A batch
/// whose writes fail is applied again one event per transaction, so the policy acts on
/// the one event at fault and the events before it are kept.
///
/// A failure the store calls transient ([`Error::is_transient`]) while the store cannot
/// be reached is no event's: the batch is retried later, whatever the policy. While the
/// store answers, such a failure counts against the event once it has repeated three
/// times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop with [`Error::Projection`] naming the event (the default); the checkpoint
    /// stays before the event.
    #[default]
    Stop,
    /// Retry the event up to `attempts` more times, waiting `backoff` × attempt (a linear
    /// [`Backoff`]), then stop.
    Retry {
        /// Retries after the first failure.
        attempts: u32,
        /// Base delay between attempts.
        backoff: Duration,
    },
    /// Retry like [`ErrorPolicy::Retry`], then record the event as a dead letter (with
    /// the error) and go on without it.
    RetryThenDeadLetter {
        /// Retries after the first failure.
        attempts: u32,
        /// Base delay between attempts.
        backoff: Duration,
    },
    /// Log the failure and go on without the event.
    Skip,
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Events read per batch (and per transaction).
    pub batch_size: usize,
    /// How long an idle worker waits before looking for new events (a local commit wakes
    /// it earlier, see [`WorkerOptions::wake_on`]).
    pub poll_interval: Duration,
    /// Where to start without a checkpoint.
    pub start_from: StartFrom,
    /// What to do when the projection fails on an event.
    pub error_policy: ErrorPolicy,
    /// Partitions by stream: each has its own checkpoint and lease, so several workers
    /// share one projection. Changing it needs a rebuild.
    pub partitions: u32,
    /// How long a lease lasts without renewal; another worker takes over after it.
    pub lease_ttl: Duration,
    /// This worker's name in leases.
    pub owner: String,
    /// Notified after local commits.
    pub wake: Option<Arc<Notify>>,
    /// How long [`ProjectionWorker::run`] waits before its next round after one failed
    /// with a transient error (the stores unreachable, a connection lost).
    pub outage_backoff: Backoff,
    /// How long the event log's read horizon may be held (see
    /// [`EventStore::read_stall`]) before the worker logs a warning naming what holds it.
    pub stall_warning: Duration,
    /// Reads only this tenant's events (`None`, the default: every tenant). A worker of
    /// one tenant keeps checkpoints, leases and dead letters of its own, under
    /// `"{projection}@{tenant}"`, so two read scopes never share a checkpoint; see
    /// [`ProjectionWorker::scope`].
    pub tenant: Option<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch_size: 500,
            poll_interval: Duration::from_millis(200),
            start_from: StartFrom::Beginning,
            error_policy: ErrorPolicy::Stop,
            partitions: 1,
            lease_ttl: Duration::from_secs(10),
            owner: format!("worker-{}", crate::domain::new_id().simple()),
            wake: None,
            outage_backoff: Backoff::default(),
            stall_warning: Duration::from_secs(30),
            tenant: None,
        }
    }
}

impl WorkerOptions {
    /// Wakes the worker as soon as `mediator` commits events.
    pub fn wake_on(mut self, mediator: &crate::Mediator) -> Self {
        self.wake = Some(mediator.commit_signal());
        self
    }
}

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: &'static str,
    /// The checkpoint of each partition (`None`: never ran).
    pub checkpoints: Vec<Option<Cursor>>,
    /// The newest event readers can see.
    pub head: Cursor,
    /// Events between the slowest partition's checkpoint and the head (by position).
    pub lag: u64,
    /// Events given up on.
    pub dead_letters: usize,
    /// What holds the event log's read horizon back now, if anything: events committed
    /// after it started stay invisible to the worker until it ends.
    pub read_stall: Option<ReadStall>,
    /// How this worker's [`ProjectionWorker::run`] is doing.
    pub health: WorkerHealth,
}

/// How far a rebuild or a catch-up has got ([`crate::host::ProjectionControl::rebuild`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Events read so far (each partition reads the log: with several partitions an event
    /// is read once per partition).
    pub read: u64,
    /// Events the projection applied so far.
    pub applied: u64,
    /// Events to read: an estimate from the positions between each partition's
    /// checkpoint and the head when it started (positions may have gaps; events
    /// committed meanwhile raise it). Equal to `read` once it has finished.
    pub total: u64,
    /// Whether it stopped before the end because it was asked to.
    pub stopped: bool,
}

impl Progress {
    /// Events read out of the estimated total, in percent (100 when there is nothing to
    /// read).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        #[allow(clippy::cast_precision_loss)] // a percentage
        let percent = self.read as f64 * 100.0 / self.total as f64;
        percent.min(100.0)
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Step {
    /// Events read (0: caught up).
    read: usize,
    /// Events the projection applied.
    applied: usize,
}

impl Step {
    /// Counts the events applied ([`crate::metrics::PROJECTION_EVENTS_APPLIED_TOTAL`]).
    fn count<P: Projection>(self) {
        metrics::counter!(crate::metrics::PROJECTION_EVENTS_APPLIED_TOTAL, "projection" => P::NAME)
            .increment(self.applied as u64);
    }
}

/// How an attempt at applying and writing events in one transaction failed.
enum Attempt<'e> {
    /// Opening the transaction or prefetching failed: the store's failure, not an event's.
    Store(Error),
    /// The projection failed on this event.
    Apply(&'e StoredEvent, Error),
    /// Writing the changes, the dead letters or the checkpoint, or the commit, failed.
    Write(Error),
    /// Another worker moved the checkpoint first: nothing was applied twice.
    Lost,
}

/// The events of a batch the policy gave up on, and the failures of each so far.
#[derive(Default)]
struct GivenUp {
    skipped: HashSet<Uuid>,
    letters: Vec<DeadLetter>,
    failures: HashMap<Uuid, u32>,
}

/// A failure the store calls transient is an event's own only if it repeats this many
/// times for the event while the store answers in between (a connection that died in
/// an outage fails once, then the pool replaces it).
const TRANSIENT_REPEATS: u32 = 3;

/// Runs one projection: catch-up in batches, then tailing, under leases.
pub struct ProjectionWorker<P> {
    projection: Arc<P>,
    events: Arc<dyn EventStore>,
    store: Arc<dyn ProjectionStore>,
    options: WorkerOptions,
    supervisor: Supervisor,
    stall: StallWatch,
    /// The name its checkpoints, leases and dead letters are stored under.
    scope: String,
}

impl<P: Projection> ProjectionWorker<P> {
    /// A worker reading `events` and writing through `store`.
    pub fn new(projection: P, events: Arc<dyn EventStore>, store: Arc<dyn ProjectionStore>) -> Self {
        Self::assemble(Arc::new(projection), events, store, WorkerOptions::default())
    }

    pub(crate) fn assemble(
        projection: Arc<P>,
        events: Arc<dyn EventStore>,
        store: Arc<dyn ProjectionStore>,
        options: WorkerOptions,
    ) -> Self {
        let stall = StallWatch::new(("projection", P::NAME.to_owned()), options.poll_interval, options.stall_warning);
        let scope = match &options.tenant {
            Some(tenant) => format!("{}@{tenant}", P::NAME),
            None => P::NAME.to_owned(),
        };
        ProjectionWorker {
            projection,
            events,
            store,
            options,
            supervisor: Supervisor::new("projection", P::NAME),
            stall,
            scope,
        }
    }

    /// Sets the options.
    pub fn with_options(self, mut options: WorkerOptions) -> Self {
        options.partitions = options.partitions.max(1);
        options.batch_size = options.batch_size.max(1);
        Self::assemble(self.projection, self.events, self.store, options)
    }

    /// The options in force.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// The name this worker's checkpoints, leases and dead letters are stored under: the
    /// projection's name, or `"{name}@{tenant}"` for a worker of one tenant.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Events after `after` in this worker's read scope (every tenant, or one).
    async fn read(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        match &self.options.tenant {
            Some(tenant) => self.events.read_tenant(Some(tenant), after, limit).await,
            None => self.events.read_all(after, limit).await,
        }
    }

    /// How [`ProjectionWorker::run`] is doing, now (readable from any task while it runs).
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    /// Every change of [`ProjectionWorker::health`], to await.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<WorkerHealth> {
        self.supervisor.watch()
    }

    /// Runs until `shutdown` completes: takes the lease of each partition it can, applies
    /// batches while it holds it, and waits for new events when caught up. Leases are
    /// released when it returns.
    ///
    /// A round that fails with a transient error (see [`Error::is_transient`]: a store
    /// that cannot be reached, a lost connection) is retried after
    /// [`WorkerOptions::outage_backoff`], and [`ProjectionWorker::health`] says so. It
    /// returns early only with an error that retrying cannot heal:
    /// - [`Error::Projection`]: the projection failed on an event (applying it, or
    ///   writing what it changed) and the error policy is [`ErrorPolicy::Stop`], or
    ///   [`ErrorPolicy::Retry`] ran out of attempts;
    /// - an error the store does not call transient while reading events or
    ///   checkpoints, such as [`Error::CorruptRow`] for a row that cannot be decoded.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let result = self
            .supervisor
            .run(
                &self.options.outage_backoff,
                shutdown,
                self.options.poll_interval,
                self.options.wake.as_deref(),
                || Box::pin(self.round()),
            )
            .await;
        for partition in 0..self.options.partitions {
            let _ = self.store.release_lease(&self.scope, partition, &self.options.owner).await;
        }
        result
    }

    /// Drains every partition whose lease it can take; busy when it applied anything
    /// (events may have come in meanwhile), idle otherwise.
    async fn round(&self) -> Result<Pace> {
        let mut worked = false;
        let mut short_read = false;
        for partition in 0..self.options.partitions {
            let (w, s) = self.drain_with_lease(partition).await?;
            worked |= w;
            short_read |= s;
        }
        self.report_lag().await;
        if short_read {
            self.stall.check(&*self.events).await;
        }
        Ok(if worked { Pace::Busy } else { Pace::Idle })
    }

    /// Applies batches of one partition while this worker holds (and renews) its lease,
    /// until a read comes back short. Returns whether it read anything and whether the
    /// last read was short (caught up, or held back by the read horizon).
    async fn drain_with_lease(&self, partition: u32) -> Result<(bool, bool)> {
        let mut worked = false;
        while self.store.acquire_lease(&self.scope, partition, &self.options.owner, self.options.lease_ttl).await? {
            let step = self.step(partition).await?;
            self.supervisor.beat();
            step.count::<P>();
            worked |= step.read > 0;
            if step.read < self.options.batch_size {
                return Ok((worked, true));
            }
        }
        Ok((worked, false))
    }

    /// Applies everything up to the head, on every partition, without leases (for tests,
    /// tools, and rebuilds); returns the number of events applied.
    pub async fn catch_up(&self) -> Result<u64> {
        self.catch_up_with(|_| ControlFlow::Continue(())).await.map(|p| p.applied)
    }

    /// Applies batches up to the head, telling `progress` after each; stops after the
    /// batch for which `progress` breaks (the batch is committed with its checkpoint).
    pub(crate) async fn catch_up_with(&self, progress: impl FnMut(&Progress) -> ControlFlow<()>) -> Result<Progress> {
        self.catch_up_partitions(0..self.options.partitions, progress).await
    }

    /// [`ProjectionWorker::catch_up_with`] on some partitions only.
    async fn catch_up_partitions(
        &self,
        partitions: std::ops::Range<u32>,
        mut progress: impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Progress> {
        let head = self.events.head().await?;
        let mut done = Progress::default();
        for partition in partitions.clone() {
            let from = match (self.store.checkpoint(&self.scope, partition).await?, self.options.start_from) {
                (Some(c), _) => c.position,
                (None, StartFrom::Beginning) => 0,
                (None, StartFrom::Head) => head.position,
            };
            done.total += head.position.saturating_sub(from);
        }
        for partition in partitions {
            loop {
                let step = self.step(partition).await?;
                step.count::<P>();
                if step.read == 0 {
                    break;
                }
                done.read += step.read as u64;
                done.applied += step.applied as u64;
                done.total = done.total.max(done.read);
                if progress(&done).is_break() {
                    done.stopped = true;
                    return Ok(done);
                }
            }
        }
        done.total = done.read;
        Ok(done)
    }

    /// Drops the read model (`#[reset]`), forgets the checkpoints, and applies all events
    /// again; `progress` is told the number applied so far after each batch.
    pub async fn rebuild(&self, mut progress: impl FnMut(u64)) -> Result<u64> {
        let done = self
            .rebuild_with(|p| {
                progress(p.applied);
                ControlFlow::Continue(())
            })
            .await?;
        Ok(done.applied)
    }

    /// [`ProjectionWorker::rebuild`], telling `progress` how far it is after each batch
    /// and stopping after the batch for which it breaks.
    pub(crate) async fn rebuild_with(&self, progress: impl FnMut(&Progress) -> ControlFlow<()>) -> Result<Progress> {
        let mut tx = ProjectionTx::new(self.store.begin().await?);
        self.projection.reset(&mut tx).await?;
        tx.txn().reset_checkpoints(&self.scope).await?;
        tx.finish().await?.commit().await?;
        // A rebuild covers all history, whatever a fresh worker would start from.
        let worker = Self::assemble(
            self.projection.clone(),
            self.events.clone(),
            self.store.clone(),
            WorkerOptions { start_from: StartFrom::Beginning, ..self.options.clone() },
        );
        worker.catch_up_with(progress).await
    }

    /// Rebuilds one partition: its checkpoint goes back to the start and its events are
    /// applied again over the documents as they are (the read model is not reset, so this
    /// suits projections whose handlers set documents from the event rather than add to
    /// them). Errors: [`Error::Missing`] for a partition the projection does not have.
    pub(crate) async fn rebuild_partition_with(
        &self,
        partition: u32,
        progress: impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Progress> {
        if partition >= self.options.partitions {
            return Err(Error::Missing {
                what: format!(
                    "partition {partition} of projection `{}` (it has {})",
                    self.scope, self.options.partitions
                ),
            });
        }
        let current = self.store.checkpoint(&self.scope, partition).await?;
        if current.is_some() {
            let mut tx = self.store.begin().await?;
            tx.save_checkpoint(&self.scope, partition, current, Cursor::START).await?;
            tx.commit().await?;
        }
        let worker = Self::assemble(
            self.projection.clone(),
            self.events.clone(),
            self.store.clone(),
            WorkerOptions { start_from: StartFrom::Beginning, ..self.options.clone() },
        );
        worker.catch_up_partitions(partition..partition + 1, progress).await
    }

    /// Applies a dead-lettered event again (after the projection or the data was fixed)
    /// and removes its letter. On failure the letter stays and the error is returned.
    pub async fn retry_dead_letter(&self, event_id: Uuid) -> Result<()> {
        let letters = self.store.dead_letters(&self.scope).await?;
        let letter = letters.iter().find(|l| l.event_id == event_id).ok_or_else(|| Error::Missing {
            what: format!("dead letter of event {event_id} in projection `{}`", self.scope),
        })?;
        let before = Cursor { commit: letter.commit, position: letter.position.saturating_sub(1) };
        let event = self
            .read(before, 1)
            .await?
            .into_iter()
            .find(|e| e.event_id == event_id)
            .ok_or_else(|| Error::Missing { what: format!("event {event_id} (of a dead letter) in the store") })?;
        let mut tx = ProjectionTx::new(self.store.begin().await?);
        if let Err(e) = super::apply_in(&*self.projection, &event, &mut tx).await {
            tx.abandon().rollback().await?;
            return Err(e);
        }
        tx.finish().await?.commit().await?;
        self.store.remove_dead_letter(&self.scope, event_id).await
    }

    /// The events this projection gave up on, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.store.dead_letters(&self.scope).await
    }

    /// Forgets a dead letter without applying its event (the read model goes on
    /// without it).
    /// Errors: [`Error::Missing`] when the projection has no such letter.
    pub async fn skip_dead_letter(&self, event_id: Uuid) -> Result<()> {
        let letters = self.store.dead_letters(&self.scope).await?;
        if !letters.iter().any(|l| l.event_id == event_id) {
            return Err(Error::Missing {
                what: format!("dead letter of event {event_id} in projection `{}`", self.scope),
            });
        }
        self.store.remove_dead_letter(&self.scope, event_id).await
    }

    /// Checkpoints, head, lag, dead letters, what holds the read horizon back, and the
    /// health of [`ProjectionWorker::run`].
    pub async fn status(&self) -> Result<ProjectionStatus> {
        let (checkpoints, head, lag) = self.positions().await?;
        Ok(ProjectionStatus {
            name: P::NAME,
            checkpoints,
            head,
            lag,
            dead_letters: self.store.dead_letters(&self.scope).await?.len(),
            read_stall: self.events.read_stall().await?,
            health: self.health(),
        })
    }

    /// Events between the slowest checkpoint and the head; also set as the
    /// `cqrs_ddd_projection_lag` gauge.
    pub async fn lag(&self) -> Result<u64> {
        let (_, _, lag) = self.positions().await?;
        #[allow(clippy::cast_precision_loss)] // a gauge
        metrics::gauge!(crate::metrics::PROJECTION_LAG, "projection" => P::NAME).set(lag as f64);
        Ok(lag)
    }

    /// The checkpoints, the head, and the lag between the slowest and the head.
    async fn positions(&self) -> Result<(Vec<Option<Cursor>>, Cursor, u64)> {
        let mut checkpoints = Vec::new();
        for partition in 0..self.options.partitions {
            checkpoints.push(self.store.checkpoint(&self.scope, partition).await?);
        }
        let head = self.events.head().await?;
        let slowest = checkpoints.iter().map(|c| c.map_or(0, |c| c.position)).min().unwrap_or(0);
        Ok((checkpoints, head, head.position.saturating_sub(slowest)))
    }

    async fn report_lag(&self) {
        if let Err(e) = self.lag().await {
            tracing::warn!(projection = P::NAME, error = %e, "cannot measure projection lag");
        }
    }

    fn in_partition(&self, event: &StoredEvent) -> u32 {
        partition_of(event, self.options.partitions)
    }

    /// One batch of one partition, in one transaction with its checkpoint. When writing
    /// the batch fails, it is applied again one event per transaction, to find the event
    /// whose writes fail and hand it to the error policy.
    async fn step(&self, partition: u32) -> Result<Step> {
        let expected = self.store.checkpoint(&self.scope, partition).await?;
        let from = match (expected, self.options.start_from) {
            (Some(c), _) => c,
            (None, StartFrom::Beginning) => Cursor::START,
            (None, StartFrom::Head) => {
                let head = self.events.head().await?;
                let mut tx = self.store.begin().await?;
                tx.save_checkpoint(&self.scope, partition, None, head).await?;
                tx.commit().await?;
                return Ok(Step::default());
            }
        };
        let batch = match self.read(from, self.options.batch_size).await {
            Ok(batch) => batch,
            Err(Error::CorruptRow { stream, version, reason, at: Some(at) }) if at > from => {
                return self.past_corrupt_row(partition, expected, at, CorruptRow { stream, version, reason }).await;
            }
            Err(e) => return Err(e),
        };
        let Some(last) = batch.last() else { return Ok(Step::default()) };
        let to = last.cursor();
        let mine: Vec<&StoredEvent> = batch
            .iter()
            .filter(|e| P::EVENT_TYPES.contains(&e.event_type.as_str()) && self.in_partition(e) == partition)
            .collect();
        let lost = |applied| {
            tracing::info!(projection = P::NAME, partition, "another worker applied this batch");
            Ok(Step { read: batch.len(), applied })
        };

        let mut given_up = GivenUp::default();
        loop {
            let todo: Vec<&StoredEvent> =
                mine.iter().copied().filter(|e| !given_up.skipped.contains(&e.event_id)).collect();
            match self.attempt(&todo, given_up.letters.clone(), partition, expected, to).await {
                Ok(()) => return Ok(Step { read: batch.len(), applied: todo.len() }),
                Err(Attempt::Lost) => return lost(0),
                Err(Attempt::Store(e)) => return Err(e),
                // A batch that failed while another worker moved the checkpoint failed
                // for that race (its typed tables may hold the other worker's rows, so a
                // unique key trips before the checkpoint move would): not the event's fault.
                Err(Attempt::Apply(..) | Attempt::Write(_)) if self.moved_since(partition, expected).await => {
                    return lost(0);
                }
                Err(Attempt::Apply(event, e)) => self.failed_on(event, e, &mut given_up).await?,
                Err(Attempt::Write(e)) => {
                    if e.is_transient() && !self.store_answers().await {
                        return Err(e);
                    }
                    tracing::info!(
                        projection = P::NAME, partition, error = %e,
                        "writing a batch failed; applying it one event per transaction to find the event at fault"
                    );
                    break;
                }
            }
        }

        // One event per transaction, each moving the checkpoint past itself.
        let mut at = expected;
        let mut applied = 0;
        for &event in &mine {
            loop {
                if let Some(i) = given_up.letters.iter().position(|l| l.event_id == event.event_id) {
                    let letter = given_up.letters.swap_remove(i);
                    match self.attempt(&[], vec![letter], partition, at, event.cursor()).await {
                        Ok(()) => at = Some(event.cursor()),
                        Err(Attempt::Lost) => return lost(applied),
                        Err(Attempt::Store(e) | Attempt::Write(e) | Attempt::Apply(_, e)) => return Err(e),
                    }
                }
                if given_up.skipped.contains(&event.event_id) {
                    break;
                }
                match self.attempt(&[event], Vec::new(), partition, at, event.cursor()).await {
                    Ok(()) => {
                        at = Some(event.cursor());
                        applied += 1;
                        break;
                    }
                    Err(Attempt::Lost) => return lost(applied),
                    Err(Attempt::Store(e)) => return Err(e),
                    Err(Attempt::Apply(..) | Attempt::Write(_)) if self.moved_since(partition, at).await => {
                        return lost(applied);
                    }
                    Err(Attempt::Apply(_, e) | Attempt::Write(e)) => self.failed_on(event, e, &mut given_up).await?,
                }
            }
        }
        if at == Some(to) {
            return Ok(Step { read: batch.len(), applied });
        }
        // The rest of the batch holds no event of this partition's projection.
        match self.attempt(&[], Vec::new(), partition, at, to).await {
            Ok(()) => Ok(Step { read: batch.len(), applied }),
            Err(Attempt::Lost) => lost(applied),
            Err(Attempt::Store(e) | Attempt::Write(e) | Attempt::Apply(_, e)) => Err(e),
        }
    }

    /// Applies `events` in one transaction, then writes their documents and `letters` and
    /// moves the checkpoint from `expected` to `to`; rolls back if any of it fails.
    async fn attempt<'e>(
        &self,
        events: &[&'e StoredEvent],
        letters: Vec<DeadLetter>,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<(), Attempt<'e>> {
        let mut tx = ProjectionTx::new(self.store.begin().await.map_err(Attempt::Store)?);
        let mut applied = async {
            if !P::PREFETCH.is_empty() {
                // Stream ids per tenant: documents keyed by stream id are kept per tenant.
                let mut streams: HashMap<Option<&str>, Vec<String>> = HashMap::new();
                for e in events {
                    streams.entry(e.stream.tenant_id.as_deref()).or_default().push(e.stream.stream_id.clone());
                }
                for (tenant, ids) in &mut streams {
                    ids.sort_unstable();
                    ids.dedup();
                    tx.set_tenant(*tenant);
                    for collection in P::PREFETCH {
                        tx.prefetch(collection, ids.clone()).await.map_err(Attempt::Store)?;
                    }
                }
            }
            for &event in events {
                super::apply_in(&*self.projection, event, &mut tx).await.map_err(|e| Attempt::Apply(event, e))?;
            }
            Ok(())
        }
        .await;
        if applied.is_ok() {
            applied = tx.flush().await.map_err(Attempt::Write);
        }
        let mut txn = tx.abandon();
        let written = async {
            applied?;
            for letter in letters {
                txn.dead_letter(letter).await.map_err(Attempt::Write)?;
            }
            // The checkpoint moves only from where this worker found it: a store reports
            // a race at the flush, the move or the commit.
            txn.save_checkpoint(&self.scope, partition, expected, to).await.map_err(Attempt::Write)
        }
        .await;
        let outcome = match written {
            Ok(()) => txn.commit().await.map_err(Attempt::Write),
            Err(failure) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::debug!(projection = P::NAME, error = %rollback, "rollback failed");
                }
                Err(failure)
            }
        };
        outcome.map_err(|failure| match failure {
            Attempt::Write(Error::Conflict { .. }) => Attempt::Lost,
            other => other,
        })
    }

    /// Whether the projection store answers (a transaction opens and rolls back).
    async fn store_answers(&self) -> bool {
        match self.store.begin().await {
            Ok(tx) => tx.rollback().await.is_ok(),
            Err(_) => false,
        }
    }

    /// Whether the checkpoint of `partition` is no longer `expected` (another worker
    /// applied the batch); `false` when the store cannot tell.
    async fn moved_since(&self, partition: u32, expected: Option<Cursor>) -> bool {
        self.store.checkpoint(&self.scope, partition).await.is_ok_and(|now| now != expected)
    }

    /// A row the store cannot decode sits next in the global order (the store read every
    /// good event before it). Under [`ErrorPolicy::Stop`] and [`ErrorPolicy::Retry`] the
    /// run stops with the row's [`Error::CorruptRow`] (a retry would read the same bytes);
    /// under [`ErrorPolicy::Skip`] the checkpoint moves past it; under
    /// [`ErrorPolicy::RetryThenDeadLetter`] it also leaves a dead letter naming the row
    /// (event id derived from its place, type `(corrupt row)`).
    async fn past_corrupt_row(
        &self,
        partition: u32,
        expected: Option<Cursor>,
        at: Cursor,
        row: CorruptRow,
    ) -> Result<Step> {
        let CorruptRow { stream, version, reason } = row;
        let letter = match self.options.error_policy {
            ErrorPolicy::Stop | ErrorPolicy::Retry { .. } => {
                return Err(Error::CorruptRow { stream, version, reason, at: Some(at) });
            }
            ErrorPolicy::Skip => None,
            ErrorPolicy::RetryThenDeadLetter { .. } => Some(DeadLetter {
                projection: self.scope.clone(),
                event_id: Uuid::from_u64_pair(at.commit, at.position),
                position: at.position,
                commit: at.commit,
                stream: StreamKey::new("(corrupt row)", stream.clone()),
                version: u64::try_from(version).unwrap_or(0),
                event_type: "(corrupt row)".to_owned(),
                error: reason.clone(),
                failed_at: Utc::now(),
            }),
        };
        tracing::warn!(
            projection = P::NAME, partition, %stream, version, position = at.position, error = %reason,
            "passing a corrupt row"
        );
        metrics::counter!(crate::metrics::PROJECTION_FAILURES_TOTAL, "projection" => P::NAME).increment(1);
        let mut tx = self.store.begin().await?;
        let moved = async {
            if let Some(letter) = letter {
                tx.dead_letter(letter).await?;
            }
            tx.save_checkpoint(&self.scope, partition, expected, at).await
        }
        .await;
        match moved {
            Ok(()) => tx.commit().await?,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
        Ok(Step { read: 1, applied: 0 })
    }

    /// Decides whose failure `error` on `event` is. The store's (it is transient and the
    /// store does not answer) is returned, for the caller to retry the batch later; the
    /// event's goes to the error policy, which retries, gives the event up (recorded in
    /// `given_up`), or stops with [`Error::Projection`] naming the event.
    async fn failed_on(&self, event: &StoredEvent, error: Error, given_up: &mut GivenUp) -> Result<()> {
        if error.is_transient() && !self.store_answers().await {
            return Err(error);
        }
        let failures = given_up.failures.entry(event.event_id).or_insert(0);
        *failures += 1;
        let failures = *failures;
        if error.is_transient() && failures < TRANSIENT_REPEATS {
            tracing::debug!(projection = P::NAME, event = %event.event_id, error = %error, "retrying an event after a transient failure");
            tokio::time::sleep(self.options.outage_backoff.delay(failures)).await;
            return Ok(());
        }
        metrics::counter!(crate::metrics::PROJECTION_FAILURES_TOTAL, "projection" => P::NAME).increment(1);
        let reason = error.to_string();
        let named = || {
            format!(
                "event `{}` {} (version {} of `{}`, position {})",
                event.event_type, event.event_id, event.version, event.stream, event.position
            )
        };
        match self.options.error_policy {
            ErrorPolicy::Skip => {
                tracing::warn!(projection = P::NAME, event = %named(), error = %reason, "skipping an event the projection failed on");
                given_up.skipped.insert(event.event_id);
            }
            ErrorPolicy::Retry { attempts, backoff } | ErrorPolicy::RetryThenDeadLetter { attempts, backoff }
                if failures <= attempts =>
            {
                tokio::time::sleep(Backoff::linear(backoff, Duration::MAX).with_jitter(0.0).delay(failures)).await;
            }
            ErrorPolicy::Stop | ErrorPolicy::Retry { .. } => {
                return Err(Error::Projection {
                    projection: P::NAME,
                    stream: event.stream.to_string(),
                    version: event.version,
                    position: event.position,
                    event_type: event.event_type.clone(),
                    reason,
                });
            }
            ErrorPolicy::RetryThenDeadLetter { .. } => {
                tracing::warn!(projection = P::NAME, event = %named(), error = %reason, "dead-lettering an event");
                given_up.skipped.insert(event.event_id);
                given_up.letters.push(DeadLetter {
                    projection: self.scope.clone(),
                    event_id: event.event_id,
                    position: event.position,
                    commit: event.commit,
                    stream: event.stream.clone(),
                    version: event.version,
                    event_type: event.event_type.clone(),
                    error: reason,
                    failed_at: Utc::now(),
                });
            }
        }
        Ok(())
    }
}

/// What the store said of a row it cannot decode.
struct CorruptRow {
    stream: String,
    version: i64,
    reason: String,
}

/// The partition of an event: a stable hash (FNV-1a) of its stream, so every event of a
/// stream lands in the same partition, in order, on every platform and release.
pub(crate) fn partition_of(event: &StoredEvent, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = &event.stream;
    for part in [key.tenant_id.as_deref().unwrap_or(""), "\u{0}", &key.stream_type, "\u{0}", &key.stream_id] {
        for b in part.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    u32::try_from(hash % u64::from(partitions)).unwrap_or(0)
}
