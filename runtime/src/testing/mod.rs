//! Given / when / then, without a database or a mediator: for aggregates
//! ([`AggregateFixture`]: given events, when a command, then events or a typed error),
//! projections ([`ProjectionFixture`]: given events, then documents and query answers)
//! and sagas ([`SagaFixture`]); and a TCP proxy ([`TcpProxy`]) that cuts a connection to
//! a server, for tests of faults.
//!
//! [`SagaFixture`] runs a saga's steps with the same state transitions as the runtime
//! (commands stored, then marked dispatched; compensations last-first; TCC; timeouts),
//! but "sends" commands by recording them. Commands succeed unless the fixture is told
//! to reject a type, and time moves only with [`SagaFixture::advance`].
//!
//! ```
//! use cqrs_ddd::prelude::*;
//! use cqrs_ddd::saga::{Saga, SagaHandles, SagaCommand, Step};
//! use cqrs_ddd::testing::SagaFixture;
//! # use cqrs_ddd::ports::SagaStatus;
//!
//! #[event]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Requested { pub id: u32 }
//!
//! #[command]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Ping { pub id: u32 }
//!
//! #[command_handler]
//! async fn ping(_cmd: Ping, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Pinger;
//!
//! impl Saga for Pinger {
//!     const NAME: &'static str = "pinger";
//!     fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> cqrs_ddd::BoxFuture<'a, Result<()>> {
//!         cqrs_ddd::saga::send_command::<Ping>(m, c, meta)
//!     }
//! }
//!
//! impl SagaHandles<Requested> for Pinger {
//!     const STARTS: bool = true;
//!     fn associate(e: &Envelope<Requested>) -> Option<String> { Some(e.id.to_string()) }
//!     fn on_event(&mut self, e: &Envelope<Requested>) -> Step {
//!         Step::new("requested").send(&Ping { id: e.id }).complete()
//!     }
//! }
//!
//! let mut saga = SagaFixture::<Pinger>::new();
//! saga.when(Requested { id: 7 });
//! assert_eq!(saga.sent(), ["Ping"]);
//! assert_eq!(saga.status(), SagaStatus::Completed);
//! ```

mod aggregate;
mod projection;
mod proxy;

pub use aggregate::AggregateFixture;
pub use projection::ProjectionFixture;
pub use proxy::TcpProxy;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::cqrs::Command;
use crate::domain::{Envelope, Event, EventHeader, Metadata, new_id};
use crate::ports::{SagaKey, SagaStatus};
use crate::saga::instance::{Deadline, Effects};
use crate::saga::{Saga, SagaCommand, SagaHandles, SagaInstance};

/// An envelope for `event` as if it had just been committed as the first event of a
/// stream: a fresh id, the current time, no metadata. To deliver an event by hand
/// (`mediator.sagas().handle::<S, E>(&envelope)`) or to a handler under test.
pub fn envelope<E: Event>(event: E) -> Envelope<E> {
    Envelope::new(
        EventHeader {
            event_id: new_id(),
            stream_type: "test".to_owned(),
            stream_id: String::new(),
            version: 1,
            position: 0,
            event_type: E::NAME.to_owned(),
            schema_version: E::VERSION,
            occurred_at: Utc::now(),
            metadata: Metadata::default(),
        },
        event,
    )
}

/// Runs one saga instance in memory: given events, when an event, then the commands
/// sent and the state. Panics (as test assertions do) on anything unexpected.
pub struct SagaFixture<S: Saga> {
    instance: Option<SagaInstance>,
    now: DateTime<Utc>,
    correlation_id: Uuid,
    rejecting: HashMap<String, String>,
    deadlines: Vec<Deadline>,
    sent: Vec<SagaCommand>,
    _saga: PhantomData<fn() -> S>,
}

impl<S: Saga> Default for SagaFixture<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Saga> SagaFixture<S> {
    /// No instance yet; the clock stands at the current time.
    pub fn new() -> Self {
        SagaFixture {
            instance: None,
            now: Utc::now(),
            correlation_id: new_id(),
            rejecting: HashMap::new(),
            deadlines: Vec::new(),
            sent: Vec::new(),
            _saga: PhantomData,
        }
    }

    /// Makes every later send of `C` fail with `reason` (as a handler rejecting it).
    pub fn rejecting<C: Command>(mut self, reason: impl Into<String>) -> Self {
        self.rejecting.insert(C::NAME.to_owned(), reason.into());
        self
    }

    /// Lets sends of `C` succeed again.
    pub fn accepting<C: Command>(&mut self) -> &mut Self {
        self.rejecting.remove(C::NAME);
        self
    }

    /// An envelope for `event` with a fresh id and this fixture's correlation id.
    pub fn envelope<E: Event>(&self, event: E) -> Envelope<E> {
        let mut envelope = envelope(event);
        envelope.header.occurred_at = self.now;
        envelope.header.metadata.correlation_id = Some(self.correlation_id);
        envelope
    }

    /// Handles `event` as history: what it sends is not kept for [`SagaFixture::sent`].
    pub fn given<E: Event>(mut self, event: E) -> Self
    where
        S: Saga + SagaHandles<E>,
    {
        self.when(event);
        self.sent.clear();
        self
    }

    /// Handles `event`; [`SagaFixture::sent`] then lists what it sent.
    pub fn when<E: Event>(&mut self, event: E) -> &mut Self
    where
        S: Saga + SagaHandles<E>,
    {
        let envelope = self.envelope(event);
        self.when_envelope(&envelope)
    }

    /// Handles an envelope (to deliver the same event twice, or with other metadata).
    pub fn when_envelope<E: Event>(&mut self, event: &Envelope<E>) -> &mut Self
    where
        S: Saga + SagaHandles<E>,
    {
        self.sent.clear();
        let Some(association) = S::associate(event) else { return self };
        let key = SagaKey::new(S::NAME, association).with_tenant(event.header.metadata.tenant_id.clone());
        let mut inst = match self.instance.take() {
            Some(inst) => {
                assert_eq!(inst.key(), &key, "the fixture runs one instance; this event belongs to another");
                inst
            }
            None if S::STARTS => SagaInstance::new(key, event.header.metadata.correlation_id, self.now),
            None => return self,
        };
        if !inst.has_processed(event.header.event_id) && inst.accepts_events() {
            let mut state: S = inst.state().expect("the saga state deserializes");
            let step = state.on_event(event);
            inst.set_state(&state).expect("the saga state serializes");
            let mut fx = inst.apply_step(step, event.header.event_id, self.now, Duration::ZERO);
            inst.end_timers(&mut fx);
            self.effects(fx);
        }
        self.instance = Some(inst);
        self.send_all();
        self
    }

    /// Moves time forward; deadlines that pass fire (suspension and TCC timeouts).
    pub fn advance(&mut self, by: Duration) -> &mut Self {
        self.sent.clear();
        self.now += chrono::Duration::from_std(by).expect("a representable duration");
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deadlines).into_iter().partition(|d| d.at <= self.now);
        self.deadlines = later;
        let mut due = due;
        due.sort_by_key(|d| d.at);
        for d in due {
            let now = self.now;
            let Some(inst) = self.instance.as_mut() else { continue };
            let mut fx = Effects::default();
            if let Some(name) = inst.take_timer(d.id) {
                let fire = crate::saga::deadline_fn(S::NAME).unwrap_or(crate::saga::on_deadline::<S>);
                let step = fire(inst, &name).expect("the saga state round-trips");
                let step = step.unwrap_or_else(|| panic!("saga `{}` has no deadline `{name}`", S::NAME));
                let mut fx = inst.apply_step(step, d.id, now, Duration::ZERO);
                inst.end_timers(&mut fx);
                self.effects(fx);
                // Its commands go out before the next deadline fires.
                self.send_all();
            } else if inst.deadline(d.id, &mut fx) {
                self.effects(fx);
            }
        }
        self.send_all();
        self
    }

    /// Moves time forward to `to` (see [`SagaFixture::advance`]).
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> &mut Self {
        let by = (to - self.now).to_std().unwrap_or_default();
        self.advance(by)
    }

    /// The fixture's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Asserts that the saga's deadline `name` is armed, and returns when it fires.
    #[track_caller]
    pub fn then_deadline_armed(&self, name: &str) -> DateTime<Utc> {
        let armed = self.instance.as_ref().map(SagaInstance::deadlines).unwrap_or_default();
        armed
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| panic!("deadline `{name}` is not armed; armed: {armed:?}"), |(_, at)| *at)
    }

    /// Asserts that the saga's deadline `name` is not armed (never was, fired, or was
    /// disarmed).
    #[track_caller]
    pub fn then_deadline_not_armed(&self, name: &str) -> &Self {
        let armed = self.instance.as_ref().map(SagaInstance::deadlines).unwrap_or_default();
        assert!(armed.iter().all(|(n, _)| *n != name), "deadline `{name}` is armed: {armed:?}");
        self
    }

    fn effects(&mut self, fx: Effects) {
        self.deadlines.retain(|d| !fx.cancel.contains(&d.id));
        self.deadlines.extend(fx.schedule);
    }

    fn send_all(&mut self) {
        loop {
            let Some(inst) = self.instance.as_mut() else { return };
            let group = inst.next_group();
            if group.is_empty() || inst.status().is_finished() {
                return;
            }
            let mut fx = Effects::default();
            for cmd in group {
                match self.rejecting.get(&cmd.command_type) {
                    Some(reason) => inst.rejected(&cmd, reason, &mut fx),
                    None => {
                        inst.dispatched(&cmd, self.now, &mut fx);
                        self.sent.push(cmd);
                    }
                }
            }
            inst.settle();
            inst.end_timers(&mut fx);
            self.effects(fx);
        }
    }

    /// The type names of the commands the last `when`/`advance` sent, in order
    /// (rejected ones are not listed).
    pub fn sent(&self) -> Vec<&str> {
        self.sent.iter().map(|c| c.command_type.as_str()).collect()
    }

    /// The commands of type `C` the last `when`/`advance` sent.
    pub fn sent_of<C: Command + DeserializeOwned>(&self) -> Vec<C> {
        self.sent
            .iter()
            .filter(|c| c.command_type == C::NAME)
            .map(|c| serde_json::from_str(&c.payload).expect("a sent command deserializes"))
            .collect()
    }

    /// The status of the instance (`Pending` when none was started).
    pub fn status(&self) -> SagaStatus {
        self.instance.as_ref().map_or(SagaStatus::Pending, SagaInstance::status)
    }

    /// The saga's state.
    pub fn state(&self) -> S {
        self.instance.as_ref().map_or_else(S::default, |i| i.state().expect("the saga state deserializes"))
    }

    /// The instance, once an event started it.
    pub fn instance(&self) -> Option<&SagaInstance> {
        self.instance.as_ref()
    }

    /// Asserts the commands the last `when`/`advance` sent.
    #[track_caller]
    pub fn then_sends(&self, expected: &[&str]) -> &Self {
        assert_eq!(self.sent(), expected, "commands sent");
        self
    }

    /// Asserts the instance's status.
    #[track_caller]
    pub fn then_status(&self, expected: SagaStatus) -> &Self {
        assert_eq!(
            self.status(),
            expected,
            "saga status (error: {:?})",
            self.instance.as_ref().and_then(|i| i.error())
        );
        self
    }
}
