//! What operators see and do, in one place: the projections with their lag and dead
//! letters, the outbox's dead rows, saga instances, scheduled commands, background jobs,
//! the event log and the tenants. The command-line tool (`cqrs-ddd-cli`) and the admin page of
//! `cqrs-ddd-axum` are both written on it; a team's own tooling can be too.
//!
//! [`Mediator::admin`] gives an [`Admin`] over every tenant;
//! [`Admin::for_tenant`] narrows it to one. Every listing answers views that serialize
//! to JSON (payloads as JSON values, cursors and times as text), so a tool can print them
//! or hand them on as they are.
//!
//! ```
//! # async fn run() -> cqrs_ddd::Result<()> {
//! use cqrs_ddd::prelude::*;
//!
//! let app = App::builder().build()?;
//! let admin = app.admin().for_tenant(Some("acme".to_owned()));
//! for event in admin.latest(20).await? {
//!     println!("{} {} {}/{}", event.cursor, event.event_type, event.stream_type, event.stream_id);
//! }
//! assert!(admin.tenants().await?.is_empty());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! Acting on a projection (a rebuild with progress, a catch-up, a dead letter retried)
//! goes through its [`ProjectionControl`] from
//! [`Admin::projection`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::broker::headers;
use crate::cqrs::Mediator;
use crate::error::{Error, Result, the_one};
use crate::host::ProjectionControl;
use crate::ports::{
    Cursor, DeadLetter, JobFilter, JobProgress, JobRecord, JobStats, JobStatus, JobStore, Outbox, OutboxCounts,
    OutboxRecord, OutboxStatus, ReadStall, SagaFilter, SagaKey, SagaStatus, ScheduledCommand, StoredEvent, StreamEvent,
    StreamKey, TenantScope, UndoLogEntry,
};
use crate::saga::{SagaCommand, SagaInstance, UndoEntry};

/// The most rows a lookup by id reads when the tenant is not given.
const LOOKUP_ROWS: usize = 10_000;

impl Mediator {
    /// What operators see and do, over every tenant; see the [module docs](crate::admin).
    pub fn admin(&self) -> Admin {
        Admin { app: self.clone(), tenant: None }
    }
}

/// Operators' listings and actions over an application; see the [module docs](self).
#[derive(Clone)]
pub struct Admin {
    app: Mediator,
    tenant: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

/// A registered projection, where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionView {
    /// Its name.
    pub name: &'static str,
    /// The name its checkpoints are kept under (`name@tenant` for one tenant's worker).
    pub scope: String,
    /// The tenant whose events it reads (`None`: every tenant's).
    pub tenant: Option<String>,
    /// Each partition's checkpoint (`commit.position` or `position`; `None`: never ran).
    pub checkpoints: Vec<Option<String>>,
    /// The newest event readers can see.
    pub head: String,
    /// Events between the slowest partition and the head.
    pub lag: u64,
    /// Events it gave up on.
    pub dead_letters: usize,
    /// What holds the read horizon back now, if anything.
    pub read_stall: Option<ReadStall>,
}

/// An event a projection gave up on, with its payload.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    /// The projection (its checkpoint scope).
    pub projection: String,
    /// The event.
    pub event_id: Uuid,
    /// Its cursor.
    pub cursor: String,
    /// Its stream's tenant.
    pub tenant: Option<String>,
    /// Its stream's type.
    pub stream_type: String,
    /// Its stream's id.
    pub stream_id: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// Why the projection failed.
    pub error: String,
    /// When.
    pub failed_at: DateTime<Utc>,
    /// The event's payload (`None` when the event is no longer in the store).
    pub payload: Option<Value>,
}

/// An event as operators read it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Its cursor (`commit.position` or `position`): give it to [`Admin::events_after`].
    pub cursor: String,
    /// Its global position.
    pub position: u64,
    /// Its stream's tenant.
    pub tenant: Option<String>,
    /// Its stream's type.
    pub stream_type: String,
    /// Its stream's id.
    pub stream_id: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its id.
    pub event_id: Uuid,
    /// Its stable type name.
    pub event_type: String,
    /// Its payload's shape version.
    pub schema_version: u32,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Its correlation id.
    pub correlation_id: Option<Uuid>,
    /// The id of the command that caused it.
    pub causation_id: Option<Uuid>,
    /// Who asked for it.
    pub principal: Option<String>,
    /// Its headers.
    pub headers: BTreeMap<String, String>,
    /// Its payload (as text when it is not JSON).
    pub payload: Value,
    #[serde(skip)]
    at: Cursor,
}

impl EventView {
    /// Its cursor, to read on after it.
    pub fn at(&self) -> Cursor {
        self.at
    }
}

/// An event of one stream ([`Admin::stream`]).
#[derive(Debug, Clone, Serialize)]
pub struct StreamEventView {
    /// Its version in the stream.
    pub version: u64,
    /// Its stable type name.
    pub event_type: String,
    /// Its payload's shape version.
    pub schema_version: u32,
    /// Its payload (as text when it is not JSON).
    pub payload: Value,
}

/// An outbox row.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxView {
    /// Its id.
    pub id: Uuid,
    /// Where it goes.
    pub topic: String,
    /// `pending`, `published` or `dead`.
    pub status: &'static str,
    /// Failed publish attempts.
    pub attempts: u32,
    /// The last publish error.
    pub last_error: Option<String>,
    /// When it was staged.
    pub created_at: DateTime<Utc>,
    /// The tenant of its event (its `tenant-id` header).
    pub tenant: Option<String>,
    /// Its event type (its `event-type` header).
    pub event_type: Option<String>,
    /// Its headers.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub payload: Value,
}

/// A saga instance, with what it sent and what would undo it.
#[derive(Debug, Clone, Serialize)]
pub struct SagaView {
    /// Its tenant.
    pub tenant: Option<String>,
    /// Its saga type.
    pub saga_type: String,
    /// Its association value.
    pub saga_id: String,
    /// Where it stands.
    pub status: SagaStatus,
    /// Saves so far.
    pub version: u64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When a suspended instance times out.
    pub timeout_at: Option<DateTime<Utc>>,
    /// Failed sends in a row.
    pub retries: u32,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The correlation id of its business transaction.
    pub correlation_id: Option<Uuid>,
    /// The saga's own state.
    pub state: Value,
    /// Its commands in order: actions, confirmations, compensations, cancels, each
    /// marked sent or not: its history.
    pub commands: Vec<SagaCommand>,
    /// What would undo the actions sent so far, newest last.
    pub undo: Vec<UndoEntry>,
}

/// A scheduled command.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// Its id (to cancel it).
    pub id: Uuid,
    /// Its tenant.
    pub tenant: Option<String>,
    /// The command's name.
    pub command_type: String,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Whether it gave up.
    pub dead: bool,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
    /// The command.
    pub payload: Value,
}

/// A background job as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Its id (to cancel or retry it).
    pub id: Uuid,
    /// Its tenant.
    pub tenant: Option<String>,
    /// The job type's stored name.
    pub job_type: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Attempts started.
    pub attempt: u32,
    /// Attempts it has in all.
    pub max_attempts: u32,
    /// When it is due (again).
    pub run_at: DateTime<Utc>,
    /// The worker running it.
    pub lease_owner: Option<String>,
    /// When that worker's lease runs out.
    pub lease_until: Option<DateTime<Utc>>,
    /// When that worker last said it was alive.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// What it last reported of its progress.
    pub progress: JobProgress,
    /// Whether a cancel was requested while it ran.
    pub cancel_requested: bool,
    /// Its result, once completed.
    pub result: Option<Value>,
    /// The last failure.
    pub error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The job's input.
    pub payload: Value,
}

/// What a bulk action on jobs did ([`Admin::cancel_jobs`], [`Admin::retry_jobs`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BulkOutcome {
    /// Jobs it acted on.
    pub done: u64,
    /// Jobs it left as they were: not in a state it applies to, unknown, or of another
    /// tenant.
    pub skipped: u64,
}

impl Admin {
    /// Narrows every listing and action to one tenant's (`None`: every tenant's).
    /// Projections shown are then the ones whose workers read only that tenant.
    pub fn for_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// The tenant it is narrowed to.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The application.
    pub fn app(&self) -> &Mediator {
        &self.app
    }

    fn scope(&self) -> TenantScope<'_> {
        match &self.tenant {
            Some(t) => TenantScope::Only(Some(t)),
            None => TenantScope::All,
        }
    }

    fn admits(&self, tenant: Option<&str>) -> bool {
        self.scope().admits(tenant)
    }

    // ---- projections -------------------------------------------------------------

    /// The registered projections (of the tenant, when narrowed), with their status.
    pub async fn projections(&self) -> Result<Vec<ProjectionView>> {
        let mut views = Vec::new();
        for control in self.controls() {
            views.push(view_projection(&control).await?);
        }
        Ok(views)
    }

    /// One registered projection, to rebuild, catch up, or retry its dead letters: the
    /// one whose checkpoint scope is `name` (`balances`, `balances@acme`), else the one
    /// named `name`. Errors: [`Error::UnknownMessage`] for a name no projection has (or
    /// one of another tenant when narrowed); [`Error::Ambiguous`] for a name several
    /// tenants' workers share (name the scope).
    pub fn projection(&self, name: &str) -> Result<ProjectionControl> {
        crate::host::pick_projection(self.controls(), name)
    }

    /// The projection's status.
    pub async fn projection_status(&self, name: &str) -> Result<ProjectionView> {
        view_projection(&self.projection(name)?).await
    }

    fn controls(&self) -> Vec<ProjectionControl> {
        let controls = self.app.projections();
        match &self.tenant {
            None => controls,
            Some(t) => controls.into_iter().filter(|c| c.tenant() == Some(t.as_str())).collect(),
        }
    }

    /// A projection's dead letters, oldest first, each with its event's payload.
    pub async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetterView>> {
        let control = self.projection(projection)?;
        let events = self.app.event_store();
        let mut views = Vec::new();
        for letter in control.dead_letters().await? {
            let payload = event_at(&*events, &letter).await?.map(|e| json_or_text(&e.payload));
            views.push(DeadLetterView {
                projection: letter.projection,
                event_id: letter.event_id,
                cursor: Cursor { commit: letter.commit, position: letter.position }.to_string(),
                tenant: letter.stream.tenant_id,
                stream_type: letter.stream.stream_type,
                stream_id: letter.stream.stream_id,
                version: letter.version,
                event_type: letter.event_type,
                error: letter.error,
                failed_at: letter.failed_at,
                payload,
            });
        }
        Ok(views)
    }

    // ---- outbox ------------------------------------------------------------------

    fn outbox_port(&self) -> Result<Arc<dyn Outbox>> {
        self.app.outbox().ok_or(Error::NotWired {
            part: "outbox",
            hint: "give `App::builder()` an event store that keeps one (the SQL and memory stores do) or `.outbox(..)`",
        })
    }

    /// Rows waiting and rows given up on: counted in the store, or, when narrowed to a
    /// tenant, among the rows listed (up to 100,001 pending).
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        if self.tenant.is_none() {
            return self.outbox_port()?.counts().await;
        }
        Ok(OutboxCounts {
            pending: self.outbox_pending(100_001).await?.len() as u64,
            dead: self.outbox_dead().await?.len() as u64,
        })
    }

    /// Up to `limit` pending rows (of the tenant, when narrowed), oldest first.
    pub async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxView>> {
        let rows = self.outbox_port()?.pending(limit).await?;
        Ok(rows.into_iter().map(view_outbox).filter(|v| self.admits(v.tenant.as_deref())).collect())
    }

    /// The rows given up on (of the tenant, when narrowed), oldest first.
    pub async fn outbox_dead(&self) -> Result<Vec<OutboxView>> {
        let rows = self.outbox_port()?.dead().await?;
        Ok(rows.into_iter().map(view_outbox).filter(|v| self.admits(v.tenant.as_deref())).collect())
    }

    /// Puts dead rows back to be published (`ids`, or every dead row of the scope when
    /// empty); answers how many. Errors: [`Error::Missing`] for an id that is not a dead
    /// row of the scope (nothing is retried then).
    pub async fn retry_outbox(&self, ids: &[Uuid]) -> Result<u64> {
        let dead: Vec<Uuid> = self.outbox_dead().await?.into_iter().map(|v| v.id).collect();
        let chosen = if ids.is_empty() {
            dead
        } else {
            if let Some(id) = ids.iter().find(|id| !dead.contains(id)) {
                return Err(Error::Missing { what: format!("dead outbox row {id}") });
            }
            ids.to_vec()
        };
        if chosen.is_empty() {
            return Ok(0);
        }
        self.outbox_port()?.retry_dead(&chosen).await
    }

    // ---- sagas -------------------------------------------------------------------

    /// Up to `limit` saga instances of `saga_type` (any when `None`) in `statuses` (any
    /// when empty), oldest first.
    pub async fn sagas(&self, saga_type: Option<&str>, statuses: &[SagaStatus], limit: usize) -> Result<Vec<SagaView>> {
        let filter = SagaFilter { saga_type, statuses, tenant: self.scope(), limit };
        Ok(self.app.sagas().list(&filter).await?.iter().map(view_saga).collect())
    }

    /// One saga instance by its association value, of `saga_type` (any type when `None`:
    /// the one type that has it) in the admin's tenant (any tenant when not narrowed:
    /// the one that has it). Errors: [`Error::Missing`]; [`Error::Ambiguous`] when
    /// several types or tenants have such an instance.
    pub async fn saga(&self, saga_type: Option<&str>, saga_id: &str) -> Result<SagaView> {
        let key = self.saga_key(saga_type, saga_id).await?;
        self.saga_after(&key).await
    }

    /// Sends the instance's unsent commands again now (a failed compensation included);
    /// answers the instance after.
    pub async fn retry_saga(&self, saga_type: Option<&str>, saga_id: &str) -> Result<SagaView> {
        let key = self.saga_key(saga_type, saga_id).await?;
        self.app.sagas().retry(&key).await?;
        self.saga_after(&key).await
    }

    /// Fails the instance and runs its compensations; answers the instance after.
    pub async fn compensate_saga(&self, saga_type: Option<&str>, saga_id: &str, reason: &str) -> Result<SagaView> {
        let key = self.saga_key(saga_type, saga_id).await?;
        self.app.sagas().compensate(&key, reason).await?;
        self.saga_after(&key).await
    }

    async fn saga_after(&self, key: &SagaKey) -> Result<SagaView> {
        let instance = self.app.sagas().get(key).await?.ok_or_else(|| missing_saga(key))?;
        Ok(view_saga(&instance))
    }

    /// The key of an instance: of the type and tenant given, else the one that has it.
    async fn saga_key(&self, saga_type: Option<&str>, saga_id: &str) -> Result<SagaKey> {
        if let Some(t) = saga_type {
            let direct = SagaKey::new(t, saga_id).with_tenant(self.tenant.clone());
            if self.tenant.is_some() || self.app.sagas().get(&direct).await?.is_some() {
                return Ok(direct);
            }
        }
        let filter = SagaFilter { saga_type, tenant: self.scope(), limit: LOOKUP_ROWS, ..SagaFilter::default() };
        let found = self.app.sagas().list(&filter).await?;
        let found = found.iter().filter(|i| i.key().saga_id == saga_id).map(|i| (i.key().to_string(), i.key().clone()));
        the_one(
            found.collect(),
            || format!("saga `{saga_id}`"),
            || Error::Missing {
                what: format!("saga `{}{saga_id}`", saga_type.map(|t| format!("{t}/")).unwrap_or_default()),
            },
        )
    }

    // ---- scheduled commands ------------------------------------------------------

    /// Up to `limit` scheduled commands waiting to be sent (`dead`: that gave up),
    /// earliest due first.
    pub async fn schedules(&self, dead: bool, limit: usize) -> Result<Vec<ScheduleView>> {
        let found = self.app.schedule_store().scheduled(self.scope(), dead, limit).await?;
        Ok(found.into_iter().map(|c| view_schedule(c, dead)).collect())
    }

    /// Cancels a scheduled command (in the admin's tenant, else the one tenant that has
    /// it). Errors: [`Error::Missing`].
    pub async fn cancel_schedule(&self, id: Uuid) -> Result<()> {
        let store = self.app.schedule_store();
        let tenant = match &self.tenant {
            Some(t) => Some(t.clone()),
            None if store.get(None, id).await?.is_some() => None,
            None => {
                let mut tenants = Vec::new();
                for dead in [false, true] {
                    let found = store.scheduled(TenantScope::All, dead, LOOKUP_ROWS).await?;
                    tenants.extend(found.into_iter().filter(|c| c.id == id).map(|c| {
                        let tenant = c.metadata.tenant_id;
                        (format!("tenant {}", tenant.as_deref().unwrap_or("(none)")), tenant)
                    }));
                }
                the_one(tenants, || format!("scheduled command {id}"), || missing_schedule(id))?
            }
        };
        if store.cancel(tenant.as_deref(), id).await? { Ok(()) } else { Err(missing_schedule(id)) }
    }

    // ---- background jobs ---------------------------------------------------------

    fn job_store(&self) -> Result<Arc<dyn JobStore>> {
        self.app.job_store().ok_or(Error::NotWired {
            part: "job store",
            hint: "use an event store that keeps jobs (every store of cqrs-ddd does)",
        })
    }

    /// Up to `limit` jobs in one of `statuses` (any when empty), after skipping `offset`,
    /// most recently changed first.
    pub async fn jobs(&self, statuses: &[JobStatus], limit: usize, offset: usize) -> Result<Vec<JobView>> {
        let filter = JobFilter { statuses, tenant: self.scope(), limit, offset, ..JobFilter::default() };
        Ok(self.job_store()?.list_jobs(&filter).await?.into_iter().map(view_job).collect())
    }

    /// One job. Errors: [`Error::Missing`] (also for another tenant's when narrowed).
    pub async fn job(&self, id: Uuid) -> Result<JobView> {
        let job = self.job_store()?.job(self.scope(), id).await?;
        job.map(view_job).ok_or_else(|| Error::Missing { what: format!("job {id}") })
    }

    /// How many jobs are in each status.
    pub async fn job_stats(&self) -> Result<JobStats> {
        self.job_store()?.job_stats(self.scope()).await
    }

    /// Cancels jobs: a pending one at once, a running one by asking it to stop (see
    /// [`crate::jobs`], "Cancellation").
    pub async fn cancel_jobs(&self, ids: &[Uuid]) -> Result<BulkOutcome> {
        let now = self.app.clock().now();
        let done = self.job_store()?.cancel_jobs(self.scope(), ids, now).await?;
        Ok(bulk(ids, done))
    }

    /// Runs failed or cancelled jobs again, their attempts reset.
    pub async fn retry_jobs(&self, ids: &[Uuid]) -> Result<BulkOutcome> {
        let now = self.app.clock().now();
        let done = self.job_store()?.retry_jobs(self.scope(), ids, now).await?;
        Ok(bulk(ids, done))
    }

    /// Deletes the completed and cancelled jobs last changed before `before`; how many.
    pub async fn purge_jobs(&self, before: DateTime<Utc>) -> Result<u64> {
        self.job_store()?.purge_jobs(self.scope(), before).await
    }

    // ---- events ------------------------------------------------------------------

    /// The newest `limit` events, oldest first.
    pub async fn latest(&self, limit: usize) -> Result<Vec<EventView>> {
        let events = self.app.event_store().latest(self.scope(), limit).await?;
        Ok(events.iter().map(view_event).collect())
    }

    /// Up to `limit` events after `after`, in the order readers of all events see them
    /// (gap-safe: following a tail with it misses nothing).
    pub async fn events_after(&self, after: Cursor, limit: usize) -> Result<Vec<EventView>> {
        let store = self.app.event_store();
        let events = match &self.tenant {
            Some(t) => store.read_tenant(Some(t), after, limit).await?,
            None => store.read_all(after, limit).await?,
        };
        Ok(events.iter().map(view_event).collect())
    }

    /// A stream's events, oldest first, as stored (before upcasting): in the admin's
    /// tenant, else the stream of no tenant, else the one tenant that has it. Errors:
    /// [`Error::Missing`] for a stream with no event; [`Error::Ambiguous`] when several
    /// tenants have one so named.
    pub async fn stream(&self, stream_type: &str, stream_id: &str) -> Result<Vec<StreamEventView>> {
        let store = self.app.event_store();
        let read = |tenant: Option<String>| {
            let store = store.clone();
            let key = StreamKey::new(stream_type, stream_id).with_tenant(tenant);
            async move {
                let events: Vec<StreamEvent> = store.read_stream(&key, 0).await?.try_collect().await?;
                Ok::<_, Error>((key, events))
            }
        };
        let (key, mut events) = read(self.tenant.clone()).await?;
        let missing = || Error::Missing { what: format!("stream `{key}`") };
        if events.is_empty() && self.tenant.is_none() {
            let mut found = Vec::new();
            for tenant in store.tenants().await? {
                let (key, events) = read(Some(tenant)).await?;
                if !events.is_empty() {
                    found.push((key.to_string(), events));
                }
            }
            events = the_one(found, || format!("stream `{stream_type}/{stream_id}`"), missing)?;
        }
        if events.is_empty() {
            return Err(missing());
        }
        Ok(events
            .into_iter()
            .map(|e| StreamEventView {
                version: e.version,
                event_type: e.event_type,
                schema_version: e.schema_version,
                payload: json_or_text(&e.payload),
            })
            .collect())
    }

    /// The undo log of one event ([`crate::undo`]), oldest first: in the admin's tenant,
    /// or, not narrowed, in whichever tenant has the event.
    pub async fn undo_log(&self, event_id: Uuid) -> Result<Vec<UndoLogEntry>> {
        let store = self.app.event_store();
        if self.tenant.is_some() {
            return store.undo_log(self.tenant.as_deref(), event_id).await;
        }
        let mut entries = store.undo_log(None, event_id).await?;
        for tenant in store.tenants().await? {
            entries.extend(store.undo_log(Some(&tenant), event_id).await?);
        }
        Ok(entries)
    }

    /// The tenants that have events (just the admin's, when narrowed and it has some).
    pub async fn tenants(&self) -> Result<Vec<String>> {
        let tenants = self.app.event_store().tenants().await?;
        Ok(match &self.tenant {
            Some(t) => tenants.into_iter().filter(|x| x == t).collect(),
            None => tenants,
        })
    }
}

async fn view_projection(control: &ProjectionControl) -> Result<ProjectionView> {
    let status = control.status().await?;
    Ok(ProjectionView {
        name: control.name(),
        scope: control.scope(),
        tenant: control.tenant().map(str::to_owned),
        checkpoints: status.checkpoints.iter().map(|c| c.map(|c| c.to_string())).collect(),
        head: status.head.to_string(),
        lag: status.lag,
        dead_letters: status.dead_letters,
        read_stall: status.read_stall,
    })
}

/// The event a dead letter names, if the store still has it.
async fn event_at(events: &dyn crate::ports::EventStore, letter: &DeadLetter) -> Result<Option<StoredEvent>> {
    let before = Cursor { commit: letter.commit, position: letter.position.saturating_sub(1) };
    let page = match letter.stream.tenant_id.as_deref() {
        Some(t) => events.read_tenant(Some(t), before, 16).await?,
        None => events.read_all(before, 16).await?,
    };
    Ok(page.into_iter().find(|e| e.event_id == letter.event_id))
}

fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn view_event(e: &StoredEvent) -> EventView {
    EventView {
        cursor: e.cursor().to_string(),
        position: e.position,
        tenant: e.stream.tenant_id.clone(),
        stream_type: e.stream.stream_type.clone(),
        stream_id: e.stream.stream_id.clone(),
        version: e.version,
        event_id: e.event_id,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        occurred_at: e.occurred_at,
        correlation_id: e.metadata.correlation_id,
        causation_id: e.metadata.causation_id,
        principal: e.metadata.principal.clone(),
        headers: e.metadata.headers.clone(),
        payload: json_or_text(&e.payload),
        at: e.cursor(),
    }
}

fn view_outbox(r: OutboxRecord) -> OutboxView {
    let m = r.message;
    OutboxView {
        id: m.id,
        topic: m.topic,
        status: match r.status {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Published => "published",
            OutboxStatus::Dead => "dead",
        },
        attempts: r.attempts,
        last_error: r.last_error,
        created_at: m.created_at,
        tenant: m.headers.get(headers::TENANT).cloned(),
        event_type: m.headers.get(headers::EVENT_TYPE).cloned(),
        payload: json_or_text(&m.payload),
        headers: m.headers,
    }
}

fn view_saga(i: &SagaInstance) -> SagaView {
    let key = i.key();
    SagaView {
        tenant: key.tenant_id.clone(),
        saga_type: key.saga_type.clone(),
        saga_id: key.saga_id.clone(),
        status: i.status(),
        version: i.version(),
        created_at: i.created_at(),
        timeout_at: i.timeout_at(),
        retries: i.retries(),
        error: i.error().map(str::to_owned),
        correlation_id: i.correlation_id(),
        state: i.state::<Value>().unwrap_or(Value::Null),
        commands: i.commands().to_vec(),
        undo: i.undo_stack().to_vec(),
    }
}

fn view_schedule(c: ScheduledCommand, dead: bool) -> ScheduleView {
    ScheduleView {
        id: c.id,
        tenant: c.metadata.tenant_id,
        command_type: c.command_type,
        due_at: c.due_at,
        attempts: c.attempts,
        last_error: c.last_error,
        dead,
        created_at: c.created_at,
        payload: json_or_text(&c.payload),
    }
}

fn view_job(j: JobRecord) -> JobView {
    JobView {
        id: j.id,
        tenant: j.metadata.tenant_id,
        job_type: j.job_type,
        status: j.status,
        attempt: j.attempt,
        max_attempts: j.max_attempts,
        run_at: j.run_at,
        lease_owner: j.lease_owner,
        lease_until: j.lease_until,
        heartbeat_at: j.heartbeat_at,
        progress: j.progress,
        cancel_requested: j.cancel_requested,
        result: j.result.as_deref().map(json_or_text),
        error: j.error,
        created_at: j.created_at,
        updated_at: j.updated_at,
        payload: json_or_text(&j.payload),
    }
}

/// `done` of `ids` (counted without repeats), the rest skipped.
fn bulk(ids: &[Uuid], done: u64) -> BulkOutcome {
    let asked = ids.iter().collect::<std::collections::HashSet<_>>().len() as u64;
    BulkOutcome { done, skipped: asked.saturating_sub(done) }
}

fn missing_saga(key: &SagaKey) -> Error {
    Error::Missing { what: format!("saga `{key}`") }
}

fn missing_schedule(id: Uuid) -> Error {
    Error::Missing { what: format!("scheduled command {id}") }
}
