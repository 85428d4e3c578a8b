use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Projection, ProjectionTx};
use crate::error::{Error, Result};
use crate::ports::{Cursor, DeadLetter, EventStore, ProjectionStore, StoredEvent};

/// Where a projection without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// From the first event (the default): the read model covers all history.
    #[default]
    Beginning,
    /// From the events committed after it first runs.
    Head,
}

/// What a worker does when the projection fails on an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop with the error (the default); the checkpoint stays before the event.
    #[default]
    Stop,
    /// Retry the batch up to `attempts` more times, waiting `backoff` × attempt, then stop.
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
    /// What to do when the projection fails.
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
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Step {
    /// Events read (0: caught up).
    read: usize,
    /// Events the projection applied.
    applied: usize,
}

/// Runs one projection: catch-up in batches, then tailing, under leases.
pub struct ProjectionWorker<P> {
    projection: Arc<P>,
    events: Arc<dyn EventStore>,
    store: Arc<dyn ProjectionStore>,
    options: WorkerOptions,
}

impl<P: Projection> ProjectionWorker<P> {
    /// A worker reading `events` and writing through `store`.
    pub fn new(projection: P, events: Arc<dyn EventStore>, store: Arc<dyn ProjectionStore>) -> Self {
        ProjectionWorker { projection: Arc::new(projection), events, store, options: WorkerOptions::default() }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self.options.partitions = self.options.partitions.max(1);
        self.options.batch_size = self.options.batch_size.max(1);
        self
    }

    /// The options in force.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// Runs until `shutdown` completes: takes the lease of each partition it can, applies
    /// batches while it holds it, and waits for new events when caught up. An error under
    /// [`ErrorPolicy::Stop`] ends the run (leases are released first).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let result = async {
            loop {
                let mut worked = false;
                for partition in 0..self.options.partitions {
                    worked |= self.drain_with_lease(partition).await?;
                }
                self.report_lag().await;
                if worked {
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
        .await;
        for partition in 0..self.options.partitions {
            let _ = self.store.release_lease(P::NAME, partition, &self.options.owner).await;
        }
        result
    }

    /// Applies batches of one partition while this worker holds (and renews) its lease.
    async fn drain_with_lease(&self, partition: u32) -> Result<bool> {
        let mut worked = false;
        while self.store.acquire_lease(P::NAME, partition, &self.options.owner, self.options.lease_ttl).await? {
            let step = self.step(partition).await?;
            if step.read == 0 {
                break;
            }
            worked = true;
        }
        Ok(worked)
    }

    /// Applies everything up to the head, on every partition, without leases (for tests,
    /// tools, and rebuilds); returns the number of events applied.
    pub async fn catch_up(&self) -> Result<u64> {
        self.catch_up_with(|_| {}).await
    }

    async fn catch_up_with(&self, mut progress: impl FnMut(u64)) -> Result<u64> {
        let mut applied = 0;
        for partition in 0..self.options.partitions {
            loop {
                let step = self.step(partition).await?;
                if step.read == 0 {
                    break;
                }
                applied += step.applied as u64;
                progress(applied);
            }
        }
        Ok(applied)
    }

    /// Drops the read model (`#[reset]`), forgets the checkpoints, and applies all events
    /// again; `progress` is told the number applied so far after each batch.
    pub async fn rebuild(&self, progress: impl FnMut(u64)) -> Result<u64> {
        let mut tx = ProjectionTx::new(self.store.begin().await?);
        self.projection.reset(&mut tx).await?;
        tx.txn().reset_checkpoints(P::NAME).await?;
        tx.finish().await?.commit().await?;
        // A rebuild covers all history, whatever a fresh worker would start from.
        let worker = ProjectionWorker {
            projection: self.projection.clone(),
            events: self.events.clone(),
            store: self.store.clone(),
            options: WorkerOptions { start_from: StartFrom::Beginning, ..self.options.clone() },
        };
        worker.catch_up_with(progress).await
    }

    /// Applies a dead-lettered event again (after the projection or the data was fixed)
    /// and removes its letter. On failure the letter stays and the error is returned.
    pub async fn retry_dead_letter(&self, event_id: Uuid) -> Result<()> {
        let letters = self.store.dead_letters(P::NAME).await?;
        let letter = letters.iter().find(|l| l.event_id == event_id).ok_or_else(|| {
            Error::handler(format!("projection `{}` has no dead letter for event {event_id}", P::NAME))
        })?;
        let before = Cursor { commit: letter.commit, position: letter.position.saturating_sub(1) };
        let event = self
            .events
            .read_all(before, 1)
            .await?
            .into_iter()
            .find(|e| e.event_id == event_id)
            .ok_or_else(|| Error::handler(format!("event {event_id} is no longer in the store")))?;
        let mut tx = ProjectionTx::new(self.store.begin().await?);
        if let Err(e) = super::apply_in(&*self.projection, &event, &mut tx).await {
            tx.abandon().rollback().await?;
            return Err(e);
        }
        tx.finish().await?.commit().await?;
        self.store.remove_dead_letter(P::NAME, event_id).await
    }

    /// Checkpoints, head, lag and dead letters.
    pub async fn status(&self) -> Result<ProjectionStatus> {
        let mut checkpoints = Vec::new();
        for partition in 0..self.options.partitions {
            checkpoints.push(self.store.checkpoint(P::NAME, partition).await?);
        }
        let head = self.events.head().await?;
        let slowest = checkpoints.iter().map(|c| c.map_or(0, |c| c.position)).min().unwrap_or(0);
        Ok(ProjectionStatus {
            name: P::NAME,
            checkpoints,
            head,
            lag: head.position.saturating_sub(slowest),
            dead_letters: self.store.dead_letters(P::NAME).await?.len(),
        })
    }

    /// Events between the slowest checkpoint and the head; also set as the
    /// `cqrs_ddd_projection_lag` gauge.
    pub async fn lag(&self) -> Result<u64> {
        let lag = self.status().await?.lag;
        #[allow(clippy::cast_precision_loss)] // a gauge
        metrics::gauge!("cqrs_ddd_projection_lag", "projection" => P::NAME).set(lag as f64);
        Ok(lag)
    }

    async fn report_lag(&self) {
        if let Err(e) = self.lag().await {
            tracing::warn!(projection = P::NAME, error = %e, "cannot measure projection lag");
        }
    }

    fn in_partition(&self, event: &StoredEvent) -> u32 {
        partition_of(event, self.options.partitions)
    }

    /// One batch of one partition, in one transaction with its checkpoint.
    async fn step(&self, partition: u32) -> Result<Step> {
        let expected = self.store.checkpoint(P::NAME, partition).await?;
        let from = match (expected, self.options.start_from) {
            (Some(c), _) => c,
            (None, StartFrom::Beginning) => Cursor::START,
            (None, StartFrom::Head) => {
                let head = self.events.head().await?;
                let mut tx = self.store.begin().await?;
                tx.save_checkpoint(P::NAME, partition, None, head).await?;
                tx.commit().await?;
                return Ok(Step::default());
            }
        };
        let batch = self.events.read_all(from, self.options.batch_size).await?;
        let Some(last) = batch.last() else { return Ok(Step::default()) };
        let to = last.cursor();
        let mine: Vec<&StoredEvent> = batch
            .iter()
            .filter(|e| P::EVENT_TYPES.contains(&e.event_type.as_str()) && self.in_partition(e) == partition)
            .collect();

        let mut skipped: HashSet<Uuid> = HashSet::new();
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut failures: HashMap<Uuid, u32> = HashMap::new();
        // Stream ids per tenant: documents keyed by stream id are kept per tenant.
        let mut streams: HashMap<Option<&str>, Vec<String>> = HashMap::new();
        for e in &mine {
            streams.entry(e.stream.tenant_id.as_deref()).or_default().push(e.stream.stream_id.clone());
        }
        for ids in streams.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        loop {
            let mut tx = ProjectionTx::new(self.store.begin().await?);
            for collection in P::PREFETCH {
                for (tenant, ids) in &streams {
                    tx.set_tenant(*tenant);
                    tx.prefetch(collection, ids.clone()).await?;
                }
            }
            let mut failed = None;
            for e in mine.iter().filter(|e| !skipped.contains(&e.event_id)) {
                if let Err(err) = super::apply_in(&*self.projection, e, &mut tx).await {
                    failed = Some((*e, err));
                    break;
                }
            }
            let Some((event, err)) = failed else {
                // The checkpoint moves only from where this worker found it: a store
                // reports a race at the flush, the move or the commit.
                return match self.finish_batch(tx, letters, partition, expected, to).await {
                    Ok(()) => Ok(Step { read: batch.len(), applied: mine.len() - skipped.len() }),
                    // Another worker moved the checkpoint: nothing was applied twice.
                    Err(Error::Conflict { .. }) => {
                        tracing::info!(projection = P::NAME, partition, "another worker applied this batch");
                        Ok(Step { read: batch.len(), applied: 0 })
                    }
                    Err(e) => Err(e),
                };
            };
            tx.abandon().rollback().await?;
            let failures = failures.entry(event.event_id).or_insert(0);
            *failures += 1;
            let reason = err.to_string();
            let error = || Error::Projection {
                projection: P::NAME,
                stream: event.stream.to_string(),
                version: event.version,
                event_type: event.event_type.clone(),
                reason: reason.clone(),
            };
            metrics::counter!("cqrs_ddd_projection_failures_total", "projection" => P::NAME).increment(1);
            match self.options.error_policy {
                ErrorPolicy::Skip => {
                    tracing::warn!(projection = P::NAME, event = %event.event_id, error = %reason, "skipping an event the projection failed on");
                    skipped.insert(event.event_id);
                }
                ErrorPolicy::Retry { attempts, backoff } | ErrorPolicy::RetryThenDeadLetter { attempts, backoff }
                    if *failures <= attempts =>
                {
                    tokio::time::sleep(backoff.saturating_mul(*failures)).await;
                }
                ErrorPolicy::Stop | ErrorPolicy::Retry { .. } => return Err(error()),
                ErrorPolicy::RetryThenDeadLetter { .. } => {
                    tracing::warn!(projection = P::NAME, event = %event.event_id, error = %reason, "dead-lettering an event");
                    skipped.insert(event.event_id);
                    letters.push(DeadLetter {
                        projection: P::NAME.to_owned(),
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
        }
    }
}

impl<P: Projection> ProjectionWorker<P> {
    /// Flushes the read model, records dead letters, moves the checkpoint and commits;
    /// rolls back if any of it fails.
    async fn finish_batch(
        &self,
        tx: ProjectionTx,
        letters: Vec<DeadLetter>,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()> {
        let mut tx = tx;
        let flushed = tx.flush().await;
        let mut txn = tx.abandon();
        let written = async {
            flushed?;
            for letter in letters {
                txn.dead_letter(letter).await?;
            }
            txn.save_checkpoint(P::NAME, partition, expected, to).await
        }
        .await;
        match written {
            Ok(()) => txn.commit().await,
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(projection = P::NAME, error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }
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
