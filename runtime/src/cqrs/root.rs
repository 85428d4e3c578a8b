//! A root command: its own unit of work, committed at the end, with the events it
//! commits dispatched to their handlers; and what a conflict at commit does.

use std::time::Duration;

use uuid::Uuid;

use crate::backoff::{Backoff, Growth};
use crate::context::{self, RequestContext};
use crate::cqrs::context::{CommandContext, Decision};
use crate::cqrs::mediator::{Mediator, downcast_reply};
use crate::cqrs::message::CommandHandler;
use crate::error::{Error, Result};
use crate::middleware::Reply;
use crate::ports::{CommitBatch, CommitReceipt, UndoLogEntry};
use crate::uow::{self, UnitOfWork};

/// How a root command on an aggregate is retried after a version conflict: it is
/// reloaded and decided again, which is safe because `#[handle]` methods are pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: a conflict is returned at once).
    pub max_retries: u32,
    /// Delay before the first retry; doubled each time, with jitter.
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// No retry: conflicts reach the caller.
    pub const NONE: RetryPolicy = RetryPolicy { max_retries: 0, base_delay: Duration::ZERO };

    /// Up to `max_retries` retries starting at 1 ms.
    pub fn retries(max_retries: u32) -> Self {
        RetryPolicy { max_retries, base_delay: Duration::from_millis(1) }
    }

    /// The waits between retries: `base_delay`, doubling up to 1024 × `base_delay`,
    /// with up to half of each wait taken off at random.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.base_delay, self.base_delay.saturating_mul(1024)).with_jitter(0.5)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::NONE
    }
}

/// How root aggregate commands retry a transient failure: the store or the broker
/// unreachable, a lost connection, a timeout ([`Error::is_transient`], conflicts
/// aside: those are decided again under [`RetryPolicy`]). The command is decided again
/// in a fresh unit of work after each wait.
///
/// A commit whose answer was lost may have gone through. So that a retry cannot apply
/// the command twice, a command retried this way is committed under an idempotency
/// key (one per send, the caller's if it gave one): when the earlier attempt did
/// commit, the retry meets [`Error::AlreadyProcessed`] and the send reports success.
/// That costs one more row per commit while the policy is on. Only commands an
/// aggregate decides are retried (the runtime keeps them to decide again); a
/// `#[command_handler]`'s command is returned its error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransientRetry {
    /// Retries after the first attempt (0: a transient error reaches the caller).
    pub max_retries: u32,
    /// The waits between attempts.
    pub backoff: Backoff,
}

impl TransientRetry {
    /// No retry.
    pub const NONE: TransientRetry = TransientRetry {
        max_retries: 0,
        backoff: Backoff { initial: Duration::ZERO, max: Duration::ZERO, jitter: 0.0, growth: Growth::Doubling },
    };

    /// Up to `max_retries` retries, waiting `initial`, doubling up to `max`, with up to
    /// half of each wait taken off at random.
    pub fn exponential(max_retries: u32, initial: Duration, max: Duration) -> Self {
        TransientRetry { max_retries, backoff: Backoff::new(initial, max).with_jitter(0.5) }
    }

    /// Up to `max_retries` retries, `delay` apart.
    pub fn fixed(max_retries: u32, delay: Duration) -> Self {
        TransientRetry { max_retries, backoff: Backoff::new(delay, delay) }
    }

    /// Whether it retries at all.
    pub fn retries(&self) -> bool {
        self.max_retries > 0
    }
}

impl Default for TransientRetry {
    fn default() -> Self {
        Self::NONE
    }
}

/// A failure worth another attempt later (a conflict is decided again instead).
fn is_transient(e: &Error) -> bool {
    e.is_transient() && !e.is_conflict()
}

/// A root command run: its own unit of work, committed at the end.
pub(crate) struct Root {
    mediator: Mediator,
    request: RequestContext,
    idempotency_key: Option<Uuid>,
    /// Committed in every unit of work of this run: the command undoes (or redoes) an
    /// event (see [`crate::undo`]).
    undo_log: Option<Box<UndoLogEntry>>,
}

impl Root {
    pub(super) fn new(mediator: Mediator, request: RequestContext, idempotency_key: Option<Uuid>) -> Self {
        Root { mediator, request, idempotency_key, undo_log: None }
    }

    /// The same run, committing `entry` with the command's events.
    pub(super) fn logging_undo(mut self, entry: Option<Box<UndoLogEntry>>) -> Self {
        self.undo_log = entry;
        self
    }

    pub(super) fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    pub(super) fn request(&self) -> &RequestContext {
        &self.request
    }

    pub(super) fn begin(&self, name: &'static str) -> (UnitOfWork, CommandContext) {
        let uow = UnitOfWork::with_idempotency_key(self.idempotency_key);
        if let Some(entry) = &self.undo_log {
            uow.stage_undo(UndoLogEntry::clone(entry));
        }
        let ctx = CommandContext::new(self.mediator.clone(), uow.clone(), self.request.clone(), name);
        (uow, ctx)
    }

    /// Handles the command in a fresh unit of work and commits it. An aggregate command
    /// whose commit meets a version conflict is reloaded and decided again, as the retry
    /// policy allows (see [`Decision`]).
    pub(super) async fn run<C: CommandHandler>(&self, cmd: C) -> Result<C::Response> {
        let (uow, mut ctx) = self.begin(C::NAME);
        ctx.keep_decision();
        let result = uow.enter(self.request.clone(), cmd.handle(&mut ctx)).await;
        let failure = match self.finish(&uow, result).await {
            Err(e) if e.is_conflict() || (is_transient(&e) && self.mediator.transient_retry(C::NAME).retries()) => e,
            other => return other,
        };
        let transient = self.mediator.transient_retry(C::NAME);
        let Some(decision) = ctx.take_decision() else { return Err(failure) };
        // Boxed: the retry loop's state (a fresh context, a commit, a backoff sleep) is
        // larger than the rest of this future, and every `send` would carry it inline.
        let reply = Box::pin(self.decide_again(C::NAME, &*decision, failure, uow.used_cache(), transient)).await;
        downcast_reply::<C::Response>(reply, C::NAME)
    }

    /// Decides `decision` again in fresh units of work after `failure`. After a
    /// conflict: once more at any rate when the aggregate came from the cache (the
    /// cached state was stale and is gone from the cache now), then as many times as the
    /// conflict policy allows. After a transient failure: as many times as `transient`
    /// allows; a retry that finds the command already committed (its answer was lost)
    /// succeeds.
    async fn decide_again(
        &self,
        name: &'static str,
        decision: &dyn Decision,
        mut failure: Error,
        mut used_cache: bool,
        transient: TransientRetry,
    ) -> Result<Reply> {
        let policy = self.mediator.rt.retry;
        let backoff = policy.backoff();
        let (mut conflicts, mut outages) = (0, 0);
        let mut stale_cache_retried = false;
        loop {
            if !failure.is_conflict() {
                if outages >= transient.max_retries {
                    return Err(failure);
                }
                metrics::counter!(crate::metrics::TRANSIENT_RETRIES_TOTAL, "command" => name).increment(1);
                outages += 1;
                tracing::info!(command = name, attempt = outages, error = %failure, "retrying after a transient failure");
                tokio::time::sleep(transient.backoff.delay(outages)).await;
            } else if used_cache && !stale_cache_retried {
                stale_cache_retried = true;
            } else if conflicts < policy.max_retries {
                metrics::counter!(crate::metrics::CONFLICT_RETRIES_TOTAL, "command" => name).increment(1);
                tokio::time::sleep(backoff.delay(conflicts + 1)).await;
                conflicts += 1;
            } else {
                return Err(failure);
            }
            let (uow, mut ctx) = self.begin(name);
            let result = uow.enter(self.request.clone(), decision.decide(&mut ctx)).await;
            match self.finish(&uow, result).await {
                // An attempt after an outage found its key recorded: the attempt whose
                // answer was lost had committed. A decision answers nothing but `()`.
                Err(Error::AlreadyProcessed { .. }) if outages > 0 => return Ok(Box::new(())),
                Err(e) if e.is_conflict() || (transient.retries() && is_transient(&e)) => {
                    failure = e;
                    used_cache = uow.used_cache();
                }
                other => return other,
            }
        }
    }

    pub(super) async fn finish<R>(&self, uow: &UnitOfWork, result: Result<R>) -> Result<R> {
        match result {
            Ok(r) => {
                self.commit(uow).await?;
                Ok(r)
            }
            Err(e) => {
                uow.rollback();
                Err(e)
            }
        }
    }

    /// Commits the unit of work, then dispatches its events and runs its hooks.
    async fn commit(&self, uow: &UnitOfWork) -> Result<()> {
        let rt = &self.mediator.rt;
        let request = &self.request;
        let async_handlers = &rt.async_handlers;
        let to_outbox = |t| async_handlers.contains_key(&t);
        let Some(uow::Taken { mut batch, base, mut streams, hooks }) = uow.take_batch(&to_outbox)? else {
            return Ok(());
        };
        batch.tenant_id.clone_from(&request.tenant_id);
        if !batch.deadlines.is_empty() && rt.store.clone().schedule().is_none() {
            uow.mark_failed();
            return Err(Error::store(
                "this event store keeps no schedule, so it cannot store deadlines (`EventStore::schedule` is `None`)",
            ));
        }
        let receipt = if batch.is_empty() {
            CommitReceipt::default()
        } else {
            let committed = match base {
                None => rt.store.commit(batch).await,
                Some(base) => self.commit_merging(batch, base, &mut streams, &to_outbox).await,
            };
            match committed {
                Ok(r) => {
                    rt.committed.notify_waiters();
                    if let Some(cursor) = r.cursor() {
                        crate::cqrs::catalog::committed(cursor);
                    }
                    uow::count_appended(&streams);
                    r
                }
                Err(e) => {
                    uow.mark_failed();
                    uow::count_conflict(&streams, &e);
                    return Err(e);
                }
            }
        };
        let handlers = &rt.event_handlers;
        let env =
            uow::CommitEnv { wanted: &|t| handlers.contains_key(&t), cache: rt.cache.as_ref(), loader: &rt.loader };
        let after = uow::after_commit(streams, hooks, &receipt.positions, &env);
        if let Some(store) = &rt.loader.snapshots {
            for snapshot in after.snapshots {
                if let Err(e) = store.save(snapshot).await {
                    tracing::warn!(error = %e, "cannot save a snapshot; loading replays more events until the next one");
                }
            }
        }
        if after.events.is_empty() && after.hooks.is_empty() {
            return Ok(());
        }
        context::enter(request.clone(), None, async {
            for event in after.events {
                for (name, result) in self.mediator.dispatch_event(event.type_id, &*event.envelope).await {
                    if let Err(e) = result {
                        metrics::counter!(crate::metrics::EVENT_HANDLER_FAILURES_TOTAL, "handler" => name).increment(1);
                        tracing::error!(handler = name, error = %e, "event handler failed after commit");
                    }
                }
            }
            for hook in after.hooks {
                hook.await;
            }
        })
        .await;
        Ok(())
    }
}

impl Root {
    /// Commits `batch`, merging a conflict on a stream whose aggregate merges
    /// ([`crate::Aggregate::on_conflict`]): its state is merged with the stored one, it
    /// moves onto the stored version and the batch is written again (from `base`, the
    /// batch without the streams' rows), at most [`MAX_MERGES`] times. A conflict on any
    /// other stream is returned, to be decided again.
    async fn commit_merging(
        &self,
        mut batch: CommitBatch,
        base: CommitBatch,
        streams: &mut [Box<dyn uow::StagedStream>],
        to_outbox: &(dyn Fn(std::any::TypeId) -> bool + Sync),
    ) -> Result<CommitReceipt> {
        let store = &self.mediator.rt.store;
        let mut merges = 0;
        loop {
            let conflict = match store.commit(batch).await {
                Err(e @ Error::Conflict { .. }) => e,
                other => return other,
            };
            let Error::Conflict { stream, .. } = &conflict else { return Err(conflict) };
            let Some(staged) =
                streams.iter_mut().find(|s| s.merge_strategy().is_some() && s.key().to_string() == *stream)
            else {
                return Err(conflict);
            };
            if merges == MAX_MERGES {
                return Err(conflict);
            }
            let Some(stored) = store.load_state(staged.key()).await? else { return Err(conflict) };
            staged.rebase(stored)?;
            merges += 1;
            metrics::counter!(crate::metrics::CONFLICT_MERGES_TOTAL, "stream_type" => staged.stream_type())
                .increment(1);
            let base = CommitBatch { tenant_id: self.request.tenant_id.clone(), ..base.clone() };
            batch = uow::write_streams(base, streams, to_outbox)?;
        }
    }
}

/// Merges one root command tries before its conflict is returned: each follows a write
/// by another writer that came in between.
pub(crate) const MAX_MERGES: u32 = 3;

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::cqrs::message::Command;

    struct Ping;

    impl Command for Ping {
        const NAME: &'static str = "Ping";
        type Response = ();
    }

    impl CommandHandler for Ping {
        async fn handle(self, _ctx: &mut CommandContext) -> Result<()> {
            Ok(())
        }
    }

    struct Again;

    impl Decision for Again {
        fn decide<'a>(&'a self, _ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
            Box::pin(async { Ok(Box::new(()) as Reply) })
        }
    }

    #[test]
    fn a_root_run_does_not_carry_the_conflict_retry_inline() {
        let root = Root::new(crate::App::builder().build().unwrap(), RequestContext::new(), None);
        let conflict = Error::Conflict { stream: "Ping/1".to_owned(), expected: 0, actual: 1 };
        let retry = root.decide_again(Ping::NAME, &Again, conflict, false, TransientRetry::NONE);
        let run = root.run(Ping);
        assert!(
            std::mem::size_of_val(&run) < std::mem::size_of_val(&retry),
            "a root run's future ({} bytes) holds the retry loop's ({} bytes)",
            std::mem::size_of_val(&run),
            std::mem::size_of_val(&retry),
        );
    }
}
