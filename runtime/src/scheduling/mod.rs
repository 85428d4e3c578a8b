//! Scheduled commands: send a command at a given time, cancel it, and a worker that
//! sends due commands through the mediator.
//!
//! A scheduled command is stored (with its id, type name, JSON payload and metadata)
//! until it has been sent. The [`Scheduler`] claims due commands (with `SKIP LOCKED` on
//! Postgres, so workers never share one), sends each with an idempotency key made of
//! its id and the time it was scheduled (a command re-sent after a crash is not
//! applied twice; scheduling the same id again is a new command), deletes it on
//! success, and
//! on failure retries it with exponential backoff until it is dead after
//! [`SchedulerOptions::max_attempts`]. Saga timeouts, TCC deadlines and the deadlines
//! of sagas and aggregates ([`mod@crate::deadline`]) are scheduled here too: the runtime
//! fires those itself rather than by name. An aggregate's deadline is written with the
//! events of the command that scheduled it, and removed in the commit of its firing.
//!
//! A due command is sent by its stored name ([`Mediator::dispatch_by_name`]): any
//! process whose program has the `#[command]` type sends it, whether or not it ever
//! scheduled one. A name the program does not know ([`Error::UnknownMessage`]: the type
//! was renamed or removed, or its crate is not linked) is logged at ERROR and retried
//! like any failure, since during a rolling deployment another process may know it; it
//! is dead after the last attempt, its error naming the type. Dead commands are listed
//! by `ScheduleStore::dead` and sent again by scheduling them under their id.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::cqrs::{CommandHandler, Mediator};
use crate::domain::{Metadata, new_id};
use crate::error::{Error, Result};
use crate::memory::MemoryScheduleStore;
use crate::ports::{Clock, ScheduleStore, ScheduledCommand, SystemClock};
use crate::worker::{Pace, Supervisor, WorkerHealth};

/// A scheduled command the runtime sends itself rather than by name (a saga or an
/// aggregate deadline): handed the stored command.
pub(crate) type InternalCommand = for<'a> fn(&'a Mediator, &'a ScheduledCommand) -> BoxFuture<'a, Result<Completion>>;

/// What is left to do with a scheduled command the runtime handled itself.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Handled: the scheduler deletes it.
    Done,
    /// Handled, and already removed in the handler's own commit (an aggregate deadline):
    /// the scheduler leaves the schedule alone (the id may be scheduled again already).
    Removed,
}

/// The schedule the application installs into the mediator: where scheduled commands
/// wait, the clock that says when they are due, and the commands the runtime handles
/// itself, by stored command type.
pub(crate) struct Schedules {
    pub(crate) store: Arc<dyn ScheduleStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) internal: HashMap<&'static str, InternalCommand>,
}

impl Schedules {
    /// The schedule of `mediator`. One built by `App::build` always has one; another gets
    /// what `App::build` installs by default (in memory, on the system clock).
    pub(crate) fn of(mediator: &Mediator) -> &Schedules {
        static DEFAULT: OnceLock<Schedules> = OnceLock::new();
        mediator.extension::<Schedules>().unwrap_or_else(|| {
            DEFAULT.get_or_init(|| Schedules {
                store: Arc::new(MemoryScheduleStore::new()),
                clock: Arc::new(SystemClock),
                internal: HashMap::new(),
            })
        })
    }
}

impl Mediator {
    /// The clock of saga timeouts and schedules.
    pub fn clock(&self) -> &dyn Clock {
        &*Schedules::of(self).clock
    }

    /// Where scheduled commands wait.
    pub fn schedule_store(&self) -> Arc<dyn ScheduleStore> {
        Schedules::of(self).store.clone()
    }

    /// Schedules `cmd` to be sent at `at` by a [`Scheduler`]; returns its id (to cancel it).
    pub async fn schedule<C>(&self, cmd: &C, at: DateTime<Utc>) -> Result<Uuid>
    where
        C: CommandHandler + Serialize + DeserializeOwned,
    {
        let id = new_id();
        self.schedule_with_id(id, cmd, at).await?;
        Ok(id)
    }

    /// Schedules `cmd` under a chosen id; scheduling again with the same id replaces it.
    /// It is sent with the current request's correlation id, tenant and principal.
    ///
    /// The command is stored by name, so it must be sendable by name: a `#[command]`
    /// type always is; a type implementing `Command` by hand must be registered with
    /// `AppBuilder::schedulable`, else this fails with [`Error::UnknownMessage`] (rather
    /// than storing a command no scheduler could send).
    pub async fn schedule_with_id<C>(&self, id: Uuid, cmd: &C, at: DateTime<Utc>) -> Result<()>
    where
        C: CommandHandler + Serialize + DeserializeOwned,
    {
        match self.named_command(C::NAME) {
            Some(named) if named.type_id == TypeId::of::<C>() => {}
            Some(_) => {
                return Err(Error::handler(format!(
                    "cannot schedule `{}`: its name `{}` is registered by another command type; give it a unique name",
                    std::any::type_name::<C>(),
                    C::NAME
                )));
            }
            None => return Err(Error::UnknownMessage { kind: "command", name: C::NAME.to_owned() }),
        }
        let payload =
            crate::domain::encode_checked(cmd).map_err(|source| Error::Encode { what: C::NAME.to_owned(), source })?;
        let request = crate::RequestContext::current();
        let metadata = request
            .map(|r| Metadata {
                correlation_id: Some(r.correlation_id),
                causation_id: r.causation_id,
                tenant_id: r.tenant_id,
                principal: r.principal,
                headers: r.headers,
            })
            .unwrap_or_default();
        let now = self.clock().now();
        let scheduled = ScheduledCommand {
            id,
            command_type: C::NAME.to_owned(),
            payload,
            due_at: at,
            metadata,
            attempts: 0,
            last_error: None,
            created_at: now,
        };
        self.schedule_store().schedule(&scheduled).await
    }

    /// Cancels a scheduled command of the current tenant that has not been sent; whether
    /// there was one.
    pub async fn cancel_scheduled(&self, id: Uuid) -> Result<bool> {
        let tenant = crate::RequestContext::current().and_then(|r| r.tenant_id);
        self.schedule_store().cancel(tenant.as_deref(), id).await
    }
}

/// How a [`Scheduler`] works.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Its name in claims.
    pub worker: String,
    /// Commands claimed per round.
    pub batch_size: usize,
    /// How long a claim lasts (a crashed worker's claims expire after it).
    pub lease: Duration,
    /// Sleep between rounds when nothing was due.
    pub poll_interval: Duration,
    /// Failed sends before a command is dead.
    pub max_attempts: u32,
    /// Delay after the first failure; doubled per attempt.
    pub backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
    /// How long [`Scheduler::run`] waits before its next round after one failed with a
    /// transient error (the schedule store unreachable, a connection lost). Not to be
    /// confused with `backoff`, which spaces the attempts at sending one command.
    pub outage_backoff: Backoff,
}

impl SchedulerOptions {
    /// The waits between attempts at sending one command: `backoff` doubling up to
    /// `max_backoff`, exactly.
    fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.backoff, self.max_backoff).with_jitter(0.0)
    }
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            worker: format!("scheduler-{}", new_id()),
            batch_size: 100,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            outage_backoff: Backoff::default(),
        }
    }
}

/// What one round of a [`Scheduler`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerReport {
    /// Commands sent and deleted (deadlines included).
    pub sent: usize,
    /// Commands that failed and were rescheduled (an unknown command name included).
    pub retried: usize,
    /// Commands that failed for the last time and are kept as dead rows.
    pub dead: usize,
}

/// Sends due scheduled commands (and fires saga deadlines) through the mediator.
pub struct Scheduler {
    mediator: Mediator,
    options: SchedulerOptions,
    supervisor: Supervisor,
}

impl Scheduler {
    /// A scheduler with default options.
    pub fn new(mediator: Mediator) -> Self {
        Self::with_options(mediator, SchedulerOptions::default())
    }

    /// A scheduler with the given options.
    pub fn with_options(mediator: Mediator, options: SchedulerOptions) -> Self {
        let supervisor = Supervisor::new("scheduler", options.worker.clone());
        Scheduler { mediator, options, supervisor }
    }

    pub(crate) fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    /// How [`Scheduler::run`] is doing, now (readable from any task while it runs).
    pub fn health(&self) -> WorkerHealth {
        self.supervisor.health()
    }

    /// Every change of [`Scheduler::health`], to await.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<WorkerHealth> {
        self.supervisor.watch()
    }

    /// Claims and sends what is due now, once.
    pub async fn run_once(&self) -> Result<SchedulerReport> {
        let store = self.mediator.schedule_store();
        let now = self.mediator.clock().now();
        let o = &self.options;
        let claimed = store.claim_due(&o.worker, now, o.batch_size, o.lease).await?;
        let mut report = SchedulerReport::default();
        for cmd in claimed {
            match self.send(&cmd).await {
                Ok(Completion::Removed) => report.sent += 1,
                Ok(Completion::Done) | Err(Error::AlreadyProcessed { .. }) => {
                    store.complete(cmd.metadata.tenant_id.as_deref(), cmd.id).await?;
                    report.sent += 1;
                }
                Err(e) if cmd.attempts + 1 >= o.max_attempts => {
                    tracing::error!(command = %cmd.command_type, id = %cmd.id, attempts = cmd.attempts + 1, error = %e, "scheduled command failed for the last time; it is dead");
                    store.mark_dead(cmd.metadata.tenant_id.as_deref(), cmd.id, &e.to_string()).await?;
                    report.dead += 1;
                }
                Err(e) => {
                    let delay = o.retry_backoff().delay(cmd.attempts.saturating_add(1));
                    if matches!(e, Error::UnknownMessage { .. }) {
                        // A wiring problem of this program, not a passing failure.
                        tracing::error!(command = %cmd.command_type, id = %cmd.id, error = %e, ?delay, "scheduled command has an unknown name; retrying later");
                    } else {
                        tracing::warn!(command = %cmd.command_type, id = %cmd.id, error = %e, ?delay, "scheduled command failed; retrying later");
                    }
                    let due = crate::ports::after(self.mediator.clock().now(), delay);
                    store.retry_later(cmd.metadata.tenant_id.as_deref(), cmd.id, &e.to_string(), due).await?;
                    report.retried += 1;
                }
            }
        }
        metrics::counter!(crate::metrics::SCHEDULED_SENT_TOTAL).increment(report.sent as u64);
        metrics::counter!(crate::metrics::SCHEDULED_RETRIED_TOTAL).increment(report.retried as u64);
        metrics::counter!(crate::metrics::SCHEDULED_DEAD_TOTAL).increment(report.dead as u64);
        Ok(report)
    }

    /// Hands a command the runtime sends itself (a deadline) to its handler, or
    /// sends the command by its stored name.
    async fn send(&self, cmd: &ScheduledCommand) -> Result<Completion> {
        if let Some(internal) = Schedules::of(&self.mediator).internal.get(cmd.command_type.as_str()) {
            return internal(&self.mediator, cmd).await;
        }
        let key = idempotency_key(cmd);
        let metadata = Some(cmd.metadata.clone());
        self.mediator.dispatch_by_name_idempotent(&cmd.command_type, &cmd.payload, key, metadata).await?;
        Ok(Completion::Done)
    }

    /// Runs rounds until `shutdown` resolves; a round that found work is followed at
    /// once by the next.
    ///
    /// A round that fails with a transient error (see [`Error::is_transient`]: the store
    /// unreachable, a lost connection) is retried after
    /// [`SchedulerOptions::outage_backoff`], and [`Scheduler::health`] says so; a command
    /// that fails to send is retried on its own schedule and never stops the scheduler.
    /// It returns early only with an error the store does not call transient (such as
    /// [`Error::CorruptRow`] for a row that cannot be decoded): retrying would fail the
    /// same way.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let poll = self.options.poll_interval;
        self.supervisor
            .run(&self.options.outage_backoff, shutdown, poll, None, || {
                Box::pin(async {
                    let r = self.run_once().await?;
                    Ok(if r.sent + r.retried + r.dead > 0 { Pace::Busy } else { Pace::Idle })
                })
            })
            .await
    }
}

/// The key a scheduled command is sent with: its id mixed with when it was scheduled,
/// so a retry after a crash is recognised, but scheduling the same id again (a
/// recurring job) is a new command.
fn idempotency_key(cmd: &ScheduledCommand) -> Uuid {
    let scheduled_ms = u64::try_from(cmd.created_at.timestamp_millis()).unwrap_or_default();
    Uuid::from_u128(cmd.id.as_u128() ^ u128::from(scheduled_ms))
}
