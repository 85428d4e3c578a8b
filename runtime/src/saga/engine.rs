//! The saga runtime: routes events to instances, persists them with their commands
//! first, then sends the commands and marks them dispatched.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::backoff::{Backoff, Growth};
use crate::cqrs::Mediator;
use crate::domain::{Envelope, Event, Metadata};
use crate::error::{Error, Result};
use crate::memory::MemorySagaStore;
use crate::ports::{DeadlineWrite, SagaFilter, SagaKey, SagaStatus, SagaStore, ScheduleStore, ScheduledCommand};
use crate::saga::instance::{Deadline, Effects, SagaCommand, SagaInstance};
use crate::saga::{Saga, SagaHandles};
use crate::scheduling::Schedules;

/// The erased `Saga::send` of a saga type.
pub(crate) type SagaSendFn = for<'a> fn(&'a Mediator, &'a SagaCommand, Metadata) -> BoxFuture<'a, Result<()>>;

/// The command type of scheduled saga deadlines.
pub(crate) const DEADLINE_COMMAND: &str = "cqrs_ddd.saga_deadline";

/// How sagas send and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SagaOptions {
    /// Attempts at sending one command that fails transiently (store unreachable,
    /// conflicts) before the saga fails and compensates.
    pub max_retries: u32,
    /// Delay before the first retry; doubled per attempt.
    pub backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// How long after storing new commands the recovery worker leaves them to the
    /// process that stored them.
    pub grace: Duration,
    /// Reloads after a concurrent update of one instance before giving up.
    pub max_conflict_retries: u32,
}

impl Default for SagaOptions {
    fn default() -> Self {
        SagaOptions {
            max_retries: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            grace: Duration::from_secs(10),
            max_conflict_retries: 50,
        }
    }
}

impl SagaOptions {
    /// The waits between attempts at sending one command: `backoff` doubling up to
    /// `max_backoff`, exactly.
    fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.backoff, self.max_backoff).with_jitter(0.0)
    }
}

/// The wait before reloading an instance another process updated meanwhile: 3 ms more
/// per attempt up to 30 ms, up to two thirds of it off at random (so two processes that
/// collided do not collide again).
const CONFLICT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(3),
    max: Duration::from_millis(30),
    jitter: 2.0 / 3.0,
    growth: Growth::Linear,
};

/// The saga runtime the application installs into the mediator (see `Mediator::sagas`):
/// where instances are kept, how commands are retried, and how each saga type sends
/// its commands. Deadlines wait in the schedule (`crate::scheduling`).
pub(crate) struct SagaRuntime {
    pub(crate) store: Arc<dyn SagaStore>,
    pub(crate) options: SagaOptions,
    pub(crate) types: HashMap<&'static str, SagaSendFn>,
    /// How each saga type fires its own deadlines (`#[deadline]` steps).
    pub(crate) deadlines: HashMap<&'static str, crate::saga::SagaDeadlineFn>,
}

impl SagaRuntime {
    /// The runtime of `mediator`. One built by `App::build` always has one; another gets
    /// what `App::build` installs by default (instances in memory, no saga type).
    fn of(mediator: &Mediator) -> &SagaRuntime {
        static DEFAULT: OnceLock<SagaRuntime> = OnceLock::new();
        mediator.extension::<SagaRuntime>().unwrap_or_else(|| {
            DEFAULT.get_or_init(|| SagaRuntime {
                store: Arc::new(MemorySagaStore::new()),
                options: SagaOptions::default(),
                types: HashMap::new(),
                deadlines: HashMap::new(),
            })
        })
    }
}

impl Mediator {
    /// The saga runtime: instances, manual control.
    pub fn sagas(&self) -> SagaManager {
        SagaManager::new(self.clone())
    }
}

/// Fires a saga deadline the scheduler found due (installed by `App::build` as the
/// handler of [`DEADLINE_COMMAND`]).
pub(crate) fn fire_deadline<'a>(
    mediator: &'a Mediator,
    cmd: &'a ScheduledCommand,
) -> BoxFuture<'a, Result<crate::scheduling::Completion>> {
    Box::pin(async move {
        mediator.sagas().fire_deadline(&cmd.payload).await?;
        Ok(crate::scheduling::Completion::Done)
    })
}

/// Manages saga instances: event routing, sending, deadlines and manual control.
/// Reached through [`Mediator::sagas`].
#[derive(Clone)]
pub struct SagaManager {
    mediator: Mediator,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DeadlinePayload {
    key: SagaKey,
    id: Uuid,
}

impl SagaManager {
    pub(crate) fn new(mediator: Mediator) -> Self {
        SagaManager { mediator }
    }

    fn rt(&self) -> &SagaRuntime {
        SagaRuntime::of(&self.mediator)
    }

    fn schedule(&self) -> &dyn ScheduleStore {
        &*Schedules::of(&self.mediator).store
    }

    fn now(&self) -> DateTime<Utc> {
        self.mediator.clock().now()
    }

    /// The instance behind `key`.
    pub async fn get(&self, key: &SagaKey) -> Result<Option<SagaInstance>> {
        self.rt().store.load(key).await?.map(SagaInstance::from_record).transpose()
    }

    /// The instance of saga `S` associated with `id` (in the current tenant).
    pub async fn find<S: Saga>(&self, id: impl ToString) -> Result<Option<SagaInstance>> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.get(&SagaKey::new(S::NAME, id.to_string()).with_tenant(tenant)).await
    }

    /// Instances still at work (pending, running, suspended, compensating), of one saga
    /// type or all, oldest first.
    pub async fn list_active(&self, saga_type: Option<&str>, limit: usize) -> Result<Vec<SagaInstance>> {
        self.list(&SagaFilter { saga_type, statuses: &SagaStatus::ACTIVE, limit, ..SagaFilter::default() }).await
    }

    /// The instances `filter` selects, oldest first.
    pub async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaInstance>> {
        self.rt().store.list(filter).await?.into_iter().map(SagaInstance::from_record).collect()
    }

    /// Handles an event for saga `S`: finds (or starts) its instance, records the step
    /// with its commands, then sends them. An event the instance already processed
    /// changes and sends nothing.
    pub async fn handle<S: Saga + SagaHandles<E>, E: Event>(&self, event: &Envelope<E>) -> Result<()> {
        let Some(association) = S::associate(event) else { return Ok(()) };
        let meta = &event.header.metadata;
        let key = SagaKey::new(S::NAME, association).with_tenant(meta.tenant_id.clone());
        let event_id = event.header.event_id;
        let handled = self
            .update(&key, |found, now, grace| {
                let mut inst = match found {
                    Some(inst) => inst,
                    None if S::STARTS => SagaInstance::new(key.clone(), meta.correlation_id, now),
                    None => {
                        tracing::debug!(saga = %key, event = E::NAME, "no saga instance for this event; ignored");
                        return Ok(None);
                    }
                };
                if inst.has_processed(event_id) || !inst.accepts_events() {
                    return Ok(None);
                }
                let mut state: S = inst.state()?;
                let step = state.on_event(event);
                inst.set_state(&state)?;
                let fx = inst.apply_step(step, event_id, now, grace);
                Ok(Some((inst, fx)))
            })
            .await?;
        match handled {
            Some(inst) => self.send_from(inst).await,
            None => Ok(()),
        }
    }

    /// Loads, changes and saves one instance, reloading on a concurrent update; returns
    /// the instance as saved. `change` returns `None` to leave the instance as it is.
    async fn update<F>(&self, key: &SagaKey, mut change: F) -> Result<Option<SagaInstance>>
    where
        F: FnMut(Option<SagaInstance>, DateTime<Utc>, Duration) -> Result<Option<(SagaInstance, Effects)>>,
    {
        let rt = self.rt();
        let mut attempt = 0;
        loop {
            let found = self.get(key).await?;
            let before = found.as_ref().map(SagaInstance::status);
            let now = self.now();
            let Some((mut inst, fx)) = change(found, now, rt.options.grace)? else { return Ok(None) };
            match self.save(&mut inst, fx, now).await {
                Ok(()) => {
                    if before != Some(inst.status()) {
                        count_transition(rt, key, inst.status());
                    }
                    return Ok(Some(inst));
                }
                Err(e) if e.is_conflict() && attempt < rt.options.max_conflict_retries => {
                    attempt += 1;
                    metrics::counter!(crate::metrics::SAGA_CONFLICTS_TOTAL, "saga" => key.saga_type.clone())
                        .increment(1);
                    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Saves the instance with the deadlines its transition scheduled and cancelled: in
    /// one transaction when the saga store keeps the schedule too
    /// ([`SagaStore::save_with_deadlines`]); else scheduled before the save and cancelled
    /// after it (a deadline the saved instance does not know is ignored when it fires).
    async fn save(&self, inst: &mut SagaInstance, mut fx: Effects, now: DateTime<Utc>) -> Result<()> {
        inst.end_timers(&mut fx);
        let rt = self.rt();
        if !fx.schedule.is_empty() || !fx.cancel.is_empty() {
            let tenant = &inst.key().tenant_id;
            let mut writes = Vec::with_capacity(fx.schedule.len() + fx.cancel.len());
            for d in &fx.schedule {
                writes.push(DeadlineWrite::Schedule(deadline_command(d, now)?));
            }
            writes.extend(fx.cancel.iter().map(|id| DeadlineWrite::Cancel { tenant_id: tenant.clone(), id: *id }));
            let record = inst.to_record(now)?;
            if rt.store.save_with_deadlines(&record, inst.version(), &writes).await? {
                inst.saved(now);
                return Ok(());
            }
        }
        for d in &fx.schedule {
            self.schedule().schedule(&deadline_command(d, now)?).await?;
        }
        let record = inst.to_record(now)?;
        rt.store.save(&record, inst.version()).await?;
        inst.saved(now);
        for id in fx.cancel {
            if let Err(e) = self.schedule().cancel(inst.key().tenant_id.as_deref(), id).await {
                tracing::debug!(error = %e, "cannot cancel a saga deadline; it will fire and be ignored");
            }
        }
        Ok(())
    }

    /// Sends the instance's unsent commands, group after group, marking each dispatched
    /// once handled. A transient failure leaves the rest for the recovery worker (after
    /// a backoff); a rejection fails the saga and queues its compensations.
    pub async fn send_pending(&self, key: &SagaKey) -> Result<()> {
        match self.get(key).await? {
            Some(inst) => self.send_from(inst).await,
            None => Ok(()),
        }
    }

    /// [`SagaManager::send_pending`] from an instance just loaded or saved.
    async fn send_from(&self, mut inst: SagaInstance) -> Result<()> {
        let rt = self.rt();
        let key = inst.key().clone();
        let key = &key;
        loop {
            let group = inst.next_group();
            if group.is_empty()
                || matches!(inst.status(), SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed)
            {
                return Ok(());
            }
            let send = *rt.types.get(key.saga_type.as_str()).ok_or_else(|| {
                Error::handler(format!(
                    "saga type `{}` is not registered in this program (a `#[saga]` in a crate that is not \
                         linked, or a hand-written saga missing `AppBuilder::saga`)",
                    key.saga_type
                ))
            })?;
            let metadata = |cmd: &SagaCommand| Metadata {
                correlation_id: inst.correlation_id(),
                causation_id: cmd.caused_by,
                tenant_id: key.tenant_id.clone(),
                principal: None,
                headers: std::collections::BTreeMap::from([("saga".to_owned(), key.to_string())]),
            };
            let results =
                futures::future::join_all(group.iter().map(|cmd| send(&self.mediator, cmd, metadata(cmd)))).await;
            let outcome: Vec<(SagaCommand, Result<()>)> = group.into_iter().zip(results).collect();
            for (cmd, r) in &outcome {
                if let Err(e) = r
                    && !matches!(e, Error::AlreadyProcessed { .. })
                {
                    tracing::warn!(saga = %key, command = %cmd.command_type, error = %e, "saga command failed");
                }
            }
            let options = rt.options;
            let mut stop = false;
            let saved = self
                .update(key, |found, now, _| {
                    let Some(mut inst) = found else { return Ok(None) };
                    let mut fx = Effects::default();
                    stop = false;
                    for (cmd, r) in &outcome {
                        match r {
                            Ok(()) | Err(Error::AlreadyProcessed { .. }) => inst.dispatched(cmd, now, &mut fx),
                            Err(e) if e.is_transient() => {
                                let backoff = options.retry_backoff().delay(inst.retries() + 1);
                                stop |= inst.failed_attempt(
                                    cmd,
                                    &e.to_string(),
                                    now,
                                    options.max_retries,
                                    backoff,
                                    &mut fx,
                                );
                            }
                            Err(e) => inst.rejected(cmd, &e.to_string(), &mut fx),
                        }
                    }
                    if !stop {
                        inst.group_sent();
                    }
                    inst.settle();
                    Ok(Some((inst, fx)))
                })
                .await?;
            match saved {
                Some(saved) if !stop => inst = saved,
                _ => return Ok(()),
            }
        }
    }

    /// Handles a fired deadline (scheduled by the runtime): a suspended instance past
    /// its timeout, or a TCC try past its deadline, fails and compensates. A deadline
    /// that no longer applies is ignored.
    pub(crate) async fn fire_deadline(&self, payload: &str) -> Result<()> {
        let d: DeadlinePayload = serde_json::from_str(payload).map_err(|source| Error::Serialization {
            stream: "<schedule>".to_owned(),
            version: 0,
            event_type: DEADLINE_COMMAND.to_owned(),
            source,
        })?;
        let fire = self.rt().deadlines.get(d.key.saga_type.as_str()).copied();
        let fired = self
            .update(&d.key, |found, now, grace| {
                let Some(mut inst) = found else { return Ok(None) };
                let mut fx = Effects::default();
                if let Some(name) = inst.take_timer(d.id) {
                    // A deadline of the saga itself: its step runs like an event's.
                    let step = match fire {
                        Some(fire) => fire(&mut inst, &name)?,
                        None => None,
                    };
                    let Some(step) = step else {
                        tracing::error!(saga = %d.key, deadline = %name, "the saga has no deadline of this name (renamed or removed); dropped");
                        return Ok(Some((inst, fx)));
                    };
                    let fx = inst.apply_step(step, d.id, now, grace);
                    return Ok(Some((inst, fx)));
                }
                Ok(inst.deadline(d.id, &mut fx).then_some((inst, fx)))
            })
            .await?;
        match fired {
            Some(inst) => self.send_from(inst).await,
            None => Ok(()),
        }
    }

    /// Sends the instance's unsent commands now, with its retry count reset; a failed
    /// compensation is tried again.
    pub async fn retry(&self, key: &SagaKey) -> Result<()> {
        let saved = self
            .update(key, |found, now, _| {
                let Some(mut inst) = found else { return Err(Error::NotFound { stream: key.to_string() }) };
                inst.retry_now(now);
                Ok(Some((inst, Effects::default())))
            })
            .await?
            .ok_or_else(|| Error::NotFound { stream: key.to_string() })?;
        self.send_from(saved).await
    }

    /// Fails the instance and runs its compensations.
    pub async fn compensate(&self, key: &SagaKey, reason: impl Into<String>) -> Result<()> {
        let reason = reason.into();
        let saved = self
            .update(key, |found, _, _| {
                let Some(mut inst) = found else { return Err(Error::NotFound { stream: key.to_string() }) };
                let mut fx = Effects::default();
                inst.fail(format!("compensation forced: {reason}"), &mut fx);
                Ok(Some((inst, fx)))
            })
            .await?
            .ok_or_else(|| Error::NotFound { stream: key.to_string() })?;
        self.send_from(saved).await
    }

    /// Instances with commands due to be re-sent, earliest first.
    pub(crate) async fn due(&self, limit: usize) -> Result<Vec<SagaKey>> {
        self.rt().store.due(self.now(), limit).await
    }
}

/// Counts an instance saved in a new status ([`crate::metrics::SAGA_TRANSITIONS_TOTAL`]),
/// labelled by the saga type's registered name when it has one (no copy).
fn count_transition(rt: &SagaRuntime, key: &SagaKey, status: SagaStatus) {
    let saga: metrics::SharedString = match rt.types.get_key_value(key.saga_type.as_str()) {
        Some((name, _)) => (*name).into(),
        None => key.saga_type.clone().into(),
    };
    metrics::counter!(crate::metrics::SAGA_TRANSITIONS_TOTAL, "saga" => saga, "state" => status.as_str()).increment(1);
}

fn deadline_command(d: &Deadline, now: DateTime<Utc>) -> Result<ScheduledCommand> {
    let payload = serde_json::to_string(&DeadlinePayload { key: d.key.clone(), id: d.id })
        .map_err(|source| Error::Encode { what: "saga deadline".to_owned(), source })?;
    Ok(ScheduledCommand {
        id: d.id,
        command_type: DEADLINE_COMMAND.to_owned(),
        payload,
        due_at: d.at,
        metadata: Metadata { tenant_id: d.key.tenant_id.clone(), ..Metadata::default() },
        attempts: 0,
        last_error: None,
        created_at: now,
    })
}
