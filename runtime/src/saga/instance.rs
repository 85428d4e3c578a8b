//! One saga instance and the pure transitions the runtime and the test kit share.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::ports::{SagaKey, SagaRecord, SagaStatus};
use crate::saga::step::{PlannedCommand, Step, Transition, Undo};

/// Why a saga command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// A step's command (a TCC try included).
    Action,
    /// The confirmation of a TCC try.
    Confirm,
    /// Undoes an action after a failure.
    Compensation,
    /// Cancels a TCC try after a failure or a passed deadline.
    Cancel,
}

impl CommandKind {
    fn undoes(self) -> bool {
        matches!(self, CommandKind::Compensation | CommandKind::Cancel)
    }
}

/// A command a saga sends: stored with the instance first, marked dispatched once sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaCommand {
    /// Its id, also the idempotency key it is sent with.
    pub id: Uuid,
    /// The step that planned it.
    pub step: String,
    /// The command's stable name.
    pub command_type: String,
    /// The command as JSON text.
    pub payload: String,
    /// Why it is sent.
    pub kind: CommandKind,
    /// Commands of one group are sent at once; groups are sent in order.
    pub group: u64,
    /// Whether it has been sent (and handled).
    pub dispatched: bool,
    /// The event that led to it.
    pub caused_by: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) undo: Option<StoredUndo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredUndo {
    Compensate { command_type: String, payload: String },
    Tcc { confirm: (String, String), cancel: (String, String), deadline_ms: Option<u64> },
}

/// What undoes a command that was sent: a compensation or a TCC cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoKind {
    /// A compensating command.
    Compensation,
    /// A TCC try awaiting confirmation.
    TccTry,
}

/// An entry of the compensation stack, pushed when its command was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoEntry {
    /// The step whose command it undoes.
    pub step: String,
    /// Compensation or TCC try.
    pub kind: UndoKind,
    /// The command sent on failure (the compensation, or the TCC cancel).
    pub undo_type: String,
    /// Its JSON text.
    pub undo_payload: String,
    /// The TCC confirmation (type, JSON text).
    pub confirm: Option<(String, String)>,
    /// When an unconfirmed TCC try is cancelled.
    pub deadline: Option<DateTime<Utc>>,
    /// The scheduled deadline's id.
    pub deadline_id: Option<Uuid>,
}

/// A deadline the runtime schedules: a suspension timeout or a TCC try's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deadline {
    pub(crate) key: SagaKey,
    pub(crate) id: Uuid,
    pub(crate) at: DateTime<Utc>,
}

/// A timeout of a suspended instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SuspendTimeout {
    pub(crate) step: String,
    pub(crate) id: Uuid,
    pub(crate) at: DateTime<Utc>,
}

/// A deadline of the saga itself (`#[deadline]` steps), armed by a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timer {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Body {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    timers: Vec<Timer>,
    state: serde_json::Value,
    correlation_id: Option<Uuid>,
    processed: Vec<Uuid>,
    commands: Vec<SagaCommand>,
    undo: Vec<UndoEntry>,
    tcc_open: bool,
    complete_when_sent: bool,
    timeout: Option<SuspendTimeout>,
    retries: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    error: Option<String>,
    next_group: u64,
}

/// One saga instance: its state, status, commands and compensation stack.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaInstance {
    key: SagaKey,
    status: SagaStatus,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    body: Body,
}

/// What a transition asks of the runtime besides saving: deadlines to schedule
/// (before the save) and to cancel (after it).
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) schedule: Vec<Deadline>,
    pub(crate) cancel: Vec<Uuid>,
}

impl SagaInstance {
    pub(crate) fn new(key: SagaKey, correlation_id: Option<Uuid>, now: DateTime<Utc>) -> Self {
        SagaInstance {
            key,
            status: SagaStatus::Pending,
            version: 0,
            created_at: now,
            updated_at: now,
            body: Body { correlation_id, state: serde_json::Value::Null, ..Body::default() },
        }
    }

    pub(crate) fn from_record(record: SagaRecord) -> Result<Self> {
        let body: Body = serde_json::from_str(&record.data).map_err(|source| Error::Serialization {
            stream: record.key.to_string(),
            version: record.version,
            event_type: "saga instance".to_owned(),
            source,
        })?;
        Ok(SagaInstance {
            key: record.key,
            status: record.status,
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
            body,
        })
    }

    /// The record of the next version, stamped `now`.
    pub(crate) fn to_record(&self, now: DateTime<Utc>) -> Result<SagaRecord> {
        let data = serde_json::to_string(&self.body)
            .map_err(|source| Error::Encode { what: format!("saga instance {}", self.key), source })?;
        Ok(SagaRecord {
            key: self.key.clone(),
            status: self.status,
            version: self.version + 1,
            wake_at: self.wake_at(now),
            data,
            created_at: self.created_at,
            updated_at: now,
        })
    }

    pub(crate) fn saved(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }

    /// Which instance this is.
    pub fn key(&self) -> &SagaKey {
        &self.key
    }

    /// Where it stands.
    pub fn status(&self) -> SagaStatus {
        self.status
    }

    /// Its stored version (0 before the first save).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The saga's own state.
    pub fn state<S: DeserializeOwned + Default>(&self) -> Result<S> {
        if self.body.state.is_null() {
            return Ok(S::default());
        }
        S::deserialize(&self.body.state).map_err(|source| Error::Serialization {
            stream: self.key.to_string(),
            version: self.version,
            event_type: "saga state".to_owned(),
            source,
        })
    }

    pub(crate) fn set_state<S: Serialize>(&mut self, state: &S) -> Result<()> {
        self.body.state = serde_json::to_value(state)
            .map_err(|source| Error::Encode { what: format!("saga state {}", self.key), source })?;
        Ok(())
    }

    /// Every command planned so far, sent or not, in order.
    pub fn commands(&self) -> &[SagaCommand] {
        &self.body.commands
    }

    /// The compensation stack, oldest first (undone last-first).
    pub fn undo_stack(&self) -> &[UndoEntry] {
        &self.body.undo
    }

    /// Why it failed or is compensating.
    pub fn error(&self) -> Option<&str> {
        self.body.error.as_deref()
    }

    /// Failed attempts at sending the current command.
    pub fn retries(&self) -> u32 {
        self.body.retries
    }

    /// The correlation id its commands are sent with.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.body.correlation_id
    }

    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When the suspended instance times out.
    pub fn timeout_at(&self) -> Option<DateTime<Utc>> {
        self.body.timeout.as_ref().map(|t| t.at)
    }

    /// The saga's armed deadlines (`#[deadline]` steps) by name, with when each fires.
    pub fn deadlines(&self) -> Vec<(&str, DateTime<Utc>)> {
        self.body.timers.iter().map(|t| (t.name.as_str(), t.at)).collect()
    }

    /// Takes the armed deadline `id` off the instance when it may still fire (the
    /// instance takes events): its name.
    pub(crate) fn take_timer(&mut self, id: Uuid) -> Option<String> {
        if !self.accepts_events() {
            return None;
        }
        let i = self.body.timers.iter().position(|t| t.id == id)?;
        Some(self.body.timers.remove(i).name)
    }

    /// Cancels every armed deadline once the instance no longer takes events
    /// (completed, compensating, compensated, failed).
    pub(crate) fn end_timers(&mut self, fx: &mut Effects) {
        if !self.accepts_events() {
            fx.cancel.extend(self.body.timers.drain(..).map(|t| t.id));
        }
    }

    /// Disarms, then arms, the deadlines a step names.
    fn arm(&mut self, step: &Step, now: DateTime<Utc>, fx: &mut Effects) {
        let names = step.disarms.iter().copied().chain(step.arms.iter().map(|(name, _)| *name));
        for name in names {
            if let Some(i) = self.body.timers.iter().position(|t| t.name == name) {
                fx.cancel.push(self.body.timers.remove(i).id);
            }
        }
        for (name, after) in &step.arms {
            let (id, at) = (new_id(), crate::ports::after(now, *after));
            self.body.timers.push(Timer { name: (*name).to_owned(), id, at });
            fx.schedule.push(Deadline { key: self.key.clone(), id, at });
        }
    }

    /// Whether the event was already processed.
    pub fn has_processed(&self, event_id: Uuid) -> bool {
        self.body.processed.contains(&event_id)
    }

    /// When the recovery worker should look at it: while a command waits to be sent.
    pub(crate) fn wake_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.status.is_finished() || !self.body.commands.iter().any(|c| !c.dispatched) {
            return None;
        }
        // Without a time set (compensations just queued), it is due at once.
        Some(self.body.next_attempt_at.unwrap_or(now))
    }

    /// The commands of the next group to send, if any.
    pub(crate) fn next_group(&self) -> Vec<SagaCommand> {
        let Some(group) = self.body.commands.iter().filter(|c| !c.dispatched).map(|c| c.group).min() else {
            return Vec::new();
        };
        self.body.commands.iter().filter(|c| !c.dispatched && c.group == group).cloned().collect()
    }

    fn queue(
        &mut self,
        step: &str,
        planned: PlannedCommand,
        kind: CommandKind,
        group: u64,
        undo: Option<StoredUndo>,
        caused_by: Option<Uuid>,
    ) {
        self.body.commands.push(SagaCommand {
            id: new_id(),
            step: step.to_owned(),
            command_type: planned.command_type.to_owned(),
            payload: planned.payload,
            kind,
            group,
            dispatched: false,
            caused_by,
            undo,
        });
    }

    fn queue_raw(&mut self, step: &str, (command_type, payload): (String, String), kind: CommandKind) {
        let group = self.take_group();
        self.body.commands.push(SagaCommand {
            id: new_id(),
            step: step.to_owned(),
            command_type,
            payload,
            kind,
            group,
            dispatched: false,
            caused_by: None,
            undo: None,
        });
    }

    fn take_group(&mut self) -> u64 {
        self.body.next_group += 1;
        self.body.next_group
    }

    /// Records a step's outcome for `event_id`. `grace` is how long the runtime has to
    /// send the new commands before the recovery worker takes over.
    pub(crate) fn apply_step(&mut self, step: Step, event_id: Uuid, now: DateTime<Utc>, grace: Duration) -> Effects {
        let mut fx = Effects::default();
        self.body.processed.push(event_id);
        if let Some(t) = self.body.timeout.take() {
            fx.cancel.push(t.id);
        }
        self.status = SagaStatus::Running;
        if let Some(e) = step.error {
            self.fail(format!("step `{}` could not plan its commands: {e}", step.name), &mut fx);
            return fx;
        }
        self.arm(&step, now, &mut fx);
        if step.tcc_begin {
            self.body.tcc_open = true;
        }
        let mut group = self.take_group();
        let sends = step.sends.len();
        for (i, (planned, undo)) in step.sends.into_iter().enumerate() {
            let stored = match undo {
                Undo::None => None,
                Undo::Compensate(k) => {
                    Some(StoredUndo::Compensate { command_type: k.command_type.to_owned(), payload: k.payload })
                }
                Undo::Tcc { confirm, cancel, deadline } => Some(StoredUndo::Tcc {
                    confirm: (confirm.command_type.to_owned(), confirm.payload),
                    cancel: (cancel.command_type.to_owned(), cancel.payload),
                    deadline_ms: deadline.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }),
            };
            self.queue(step.name, planned, CommandKind::Action, group, stored, Some(event_id));
            if !step.parallel && i + 1 < sends {
                group = self.take_group();
            }
        }
        if step.tcc_confirm {
            let (tries, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.body.undo).into_iter().partition(|u| u.kind == UndoKind::TccTry);
            self.body.undo = rest;
            for t in tries {
                fx.cancel.extend(t.deadline_id);
                if let Some(confirm) = t.confirm {
                    self.queue_raw(step.name, confirm, CommandKind::Confirm);
                }
            }
            self.body.tcc_open = false;
        }
        match step.transition {
            Transition::Continue => {}
            Transition::Complete => self.body.complete_when_sent = true,
            Transition::Suspend(timeout) => {
                self.status = SagaStatus::Suspended;
                if let Some(t) = timeout {
                    let at = crate::ports::after(now, t);
                    let id = new_id();
                    self.body.timeout = Some(SuspendTimeout { step: step.name.to_owned(), id, at });
                    fx.schedule.push(Deadline { key: self.key.clone(), id, at });
                }
            }
            Transition::Fail(reason) => self.fail(reason, &mut fx),
        }
        self.body.retries = 0;
        self.body.next_attempt_at = Some(crate::ports::after(now, grace));
        self.settle();
        fx
    }

    /// Starts compensating: unsent actions are dropped, the compensation stack is queued
    /// last-first. With nothing to undo the instance is `Failed` at once (there is
    /// nothing for `Compensated` to say was undone).
    pub(crate) fn fail(&mut self, reason: String, fx: &mut Effects) {
        if matches!(self.status, SagaStatus::Compensating) || self.status.is_finished() {
            return;
        }
        tracing::warn!(saga = %self.key, reason = %reason, "saga failed; compensating");
        self.body.error = Some(reason);
        self.body.commands.retain(|c| c.dispatched || c.kind.undoes());
        if let Some(t) = self.body.timeout.take() {
            fx.cancel.push(t.id);
        }
        fx.cancel.extend(self.body.timers.drain(..).map(|t| t.id));
        let undo = std::mem::take(&mut self.body.undo);
        for entry in undo.into_iter().rev() {
            fx.cancel.extend(entry.deadline_id);
            let kind = match entry.kind {
                UndoKind::Compensation => CommandKind::Compensation,
                UndoKind::TccTry => CommandKind::Cancel,
            };
            self.queue_raw(&entry.step, (entry.undo_type, entry.undo_payload), kind);
        }
        self.body.tcc_open = false;
        self.body.complete_when_sent = false;
        self.body.retries = 0;
        self.body.next_attempt_at = None;
        let undoing = self.body.commands.iter().any(|c| !c.dispatched && c.kind.undoes());
        self.status = if undoing { SagaStatus::Compensating } else { SagaStatus::Failed };
        self.settle();
    }

    /// Records that `id` was sent: its undo goes on the stack (TCC deadlines are
    /// returned to be scheduled).
    pub(crate) fn dispatched(&mut self, sent: &SagaCommand, now: DateTime<Utc>, fx: &mut Effects) {
        let Some(cmd) = self.body.commands.iter_mut().find(|c| c.id == sent.id) else {
            self.sent_after_failure(sent);
            return;
        };
        if cmd.dispatched {
            return;
        }
        cmd.dispatched = true;
        let step = cmd.step.clone();
        match cmd.undo.take() {
            None => {}
            Some(StoredUndo::Compensate { command_type, payload }) => self.body.undo.push(UndoEntry {
                step,
                kind: UndoKind::Compensation,
                undo_type: command_type,
                undo_payload: payload,
                confirm: None,
                deadline: None,
                deadline_id: None,
            }),
            Some(StoredUndo::Tcc { confirm, cancel, deadline_ms }) => {
                let deadline = deadline_ms.map(|ms| crate::ports::after(now, Duration::from_millis(ms)));
                let deadline_id = deadline.map(|at| {
                    let id = new_id();
                    fx.schedule.push(Deadline { key: self.key.clone(), id, at });
                    id
                });
                self.body.undo.push(UndoEntry {
                    step,
                    kind: UndoKind::TccTry,
                    undo_type: cancel.0,
                    undo_payload: cancel.1,
                    confirm: Some(confirm),
                    deadline,
                    deadline_id,
                });
            }
        }
        self.settle();
    }

    /// An action was handled while (in another process) the saga failed and dropped it
    /// from its queue: what undoes it is sent too. A saga that failed on a compensation
    /// keeps that status: the undo waits in its queue for a manual retry.
    fn sent_after_failure(&mut self, sent: &SagaCommand) {
        if sent.kind != CommandKind::Action
            || !matches!(self.status, SagaStatus::Compensating | SagaStatus::Compensated | SagaStatus::Failed)
        {
            return;
        }
        let failed_compensation =
            self.status == SagaStatus::Failed && self.body.commands.iter().any(|c| !c.dispatched && c.kind.undoes());
        let undo = match &sent.undo {
            Some(StoredUndo::Compensate { command_type, payload }) => {
                ((command_type.clone(), payload.clone()), CommandKind::Compensation)
            }
            Some(StoredUndo::Tcc { cancel, .. }) => (cancel.clone(), CommandKind::Cancel),
            None => return,
        };
        self.queue_raw(&sent.step, undo.0, undo.1);
        if !failed_compensation {
            self.status = SagaStatus::Compensating;
        }
    }

    /// Every command of the group was handled: the retry count starts over.
    pub(crate) fn group_sent(&mut self) {
        self.body.retries = 0;
    }

    /// Records that sending `cmd` failed for good: an action fails the saga, a failing
    /// compensation leaves it failed.
    pub(crate) fn rejected(&mut self, cmd: &SagaCommand, error: &str, fx: &mut Effects) {
        if cmd.kind.undoes() {
            self.body.error = Some(format!(
                "{}; then the {} `{}` of step `{}` failed: {error}",
                self.body.error.as_deref().unwrap_or("compensating"),
                if cmd.kind == CommandKind::Cancel { "TCC cancel" } else { "compensation" },
                cmd.command_type,
                cmd.step
            ));
            self.body.next_attempt_at = None;
            self.status = SagaStatus::Failed;
            for t in self.body.undo.drain(..) {
                fx.cancel.extend(t.deadline_id);
            }
        } else {
            self.fail(format!("`{}` of step `{}` failed: {error}", cmd.command_type, cmd.step), fx);
        }
    }

    /// Records a transient failure: retried after `backoff` (returns `true`), or a
    /// rejection once `max_retries` is reached (returns `false`).
    pub(crate) fn failed_attempt(
        &mut self,
        cmd: &SagaCommand,
        error: &str,
        now: DateTime<Utc>,
        max_retries: u32,
        backoff: Duration,
        fx: &mut Effects,
    ) -> bool {
        self.body.retries += 1;
        if self.body.retries >= max_retries {
            let msg = format!("gave up after {} attempts: {error}", self.body.retries);
            self.body.retries = 0;
            self.rejected(cmd, &msg, fx);
            false
        } else {
            self.body.next_attempt_at = Some(crate::ports::after(now, backoff));
            true
        }
    }

    /// A deadline fired: a suspension timeout or a TCC try's deadline, unless stale.
    pub(crate) fn deadline(&mut self, id: Uuid, fx: &mut Effects) -> bool {
        if self.body.timeout.as_ref().is_some_and(|t| t.id == id) && self.status == SagaStatus::Suspended {
            let step = self.body.timeout.as_ref().map(|t| t.step.clone()).unwrap_or_default();
            self.fail(format!("suspended after step `{step}` and timed out"), fx);
            return true;
        }
        if let Some(entry) = self.body.undo.iter().find(|u| u.deadline_id == Some(id)) {
            let msg = format!("the TCC try of step `{}` was not confirmed before its deadline", entry.step);
            self.fail(msg, fx);
            return true;
        }
        false
    }

    /// Manual retry: the next send is due now, a failed compensation is tried again.
    pub(crate) fn retry_now(&mut self, now: DateTime<Utc>) {
        self.body.retries = 0;
        self.body.next_attempt_at = Some(now);
        if self.status == SagaStatus::Failed && self.body.commands.iter().any(|c| !c.dispatched && c.kind.undoes()) {
            self.status = SagaStatus::Compensating;
        }
    }

    /// Moves to a final status once nothing is left to send.
    pub(crate) fn settle(&mut self) {
        if self.body.commands.iter().any(|c| !c.dispatched) {
            return;
        }
        self.body.next_attempt_at = None;
        match self.status {
            SagaStatus::Compensating => self.status = SagaStatus::Compensated,
            SagaStatus::Running | SagaStatus::Pending if self.body.complete_when_sent => {
                self.status = SagaStatus::Completed;
            }
            _ => {}
        }
    }

    /// Whether the instance may react to events (not finished, not compensating).
    pub(crate) fn accepts_events(&self) -> bool {
        !self.status.is_finished() && self.status != SagaStatus::Compensating
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(command_type: &'static str) -> PlannedCommand {
        PlannedCommand { command_type, payload: "{}".to_owned() }
    }

    fn running_with_unsent_action() -> (SagaInstance, SagaCommand) {
        let now = Utc::now();
        let mut inst = SagaInstance::new(SagaKey::new("s", "1"), None, now);
        let mut step = Step::new("reserve");
        step.sends.push((planned("Reserve"), Undo::Compensate(planned("Release"))));
        inst.apply_step(step, new_id(), now, Duration::ZERO);
        let action = inst.next_group().remove(0);
        (inst, action)
    }

    #[test]
    fn an_action_handled_after_the_saga_failed_elsewhere_is_compensated_too() {
        let (mut inst, action) = running_with_unsent_action();
        let mut fx = Effects::default();
        inst.fail("failed in another process".to_owned(), &mut fx);
        assert_eq!(inst.status(), SagaStatus::Failed, "nothing was sent yet, so nothing to undo");
        inst.dispatched(&action, Utc::now(), &mut fx);
        assert_eq!(inst.status(), SagaStatus::Compensating);
        let queued = inst.next_group();
        assert_eq!((queued[0].command_type.as_str(), queued[0].kind), ("Release", CommandKind::Compensation));
    }

    #[test]
    fn a_handled_action_puts_its_compensation_on_the_stack_once() {
        let (mut inst, action) = running_with_unsent_action();
        let mut fx = Effects::default();
        inst.dispatched(&action, Utc::now(), &mut fx);
        inst.dispatched(&action, Utc::now(), &mut fx);
        assert_eq!(inst.undo_stack().len(), 1);
        assert!(inst.next_group().is_empty());
    }
}
