//! Projections: read models kept in step with the event log, exactly once.
//!
//! A [`ProjectionWorker`] reads all events from its checkpoint in batches ([`Cursor`](crate::ports::Cursor)
//! order, gap-safe), hands each event a projection handles to it inside one
//! [`ProjectionTx`], and moves the checkpoint in the same transaction. The checkpoint
//! move is conditional on where the worker found it, so a crash never applies an event
//! twice or skips one, and two workers can never both apply a batch: the second commit
//! is a conflict and rolls back. Leases keep one worker active per projection partition;
//! another takes over when the lease expires.

mod tx;
mod worker;

pub use tx::{Docs, ProjectionTx};
pub use worker::{ErrorPolicy, Progress, ProjectionStatus, ProjectionWorker, StartFrom, WorkerOptions};

use futures::future::BoxFuture;

use crate::error::Result;
use crate::ports::StoredEvent;

/// A read model fed by events. Implemented by `#[projection]` on an impl block whose
/// `#[on]` methods take `(&self, &Envelope<E>, &mut ProjectionTx)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a projection",
    label = "not a type with a `#[projection]` impl block",
    note = "a query's `reads = [..]` lists the projections whose read models it reads"
)]
pub trait Projection: Send + Sync + 'static {
    /// The projection's stable name (its checkpoints are stored under it).
    const NAME: &'static str;
    /// The stored names of the events it handles.
    const EVENT_TYPES: &'static [&'static str];
    /// Collections whose documents are keyed by stream id (`#[projection(prefetch =
    /// "..")]`): the worker loads a batch's documents of them with one query up front.
    const PREFETCH: &'static [&'static str] = &[];

    /// Applies one event it handles inside the transaction.
    fn apply<'a>(&'a self, event: &'a StoredEvent, tx: &'a mut ProjectionTx) -> BoxFuture<'a, Result<()>>;

    /// Drops the read model before a rebuild (`#[reset]`); by default nothing.
    fn reset<'a>(&'a self, tx: &'a mut ProjectionTx) -> BoxFuture<'a, Result<()>> {
        let _ = tx;
        Box::pin(async { Ok(()) })
    }
}

/// Applies `event` with the transaction's documents scoped to the event's tenant.
pub(crate) async fn apply_in<P: Projection>(projection: &P, event: &StoredEvent, tx: &mut ProjectionTx) -> Result<()> {
    tx.set_tenant(event.stream.tenant_id.as_deref());
    projection.apply(event, tx).await
}
