//! What one saga step decided: the commands to send, what undoes them, and where the
//! saga goes next. Built by the code `#[saga]` generates (or by hand).

use std::time::Duration;

use serde::Serialize;

use crate::cqrs::CommandHandler;
use crate::error::{Error, Result};

/// A command planned by a step, serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    /// The command's stable name.
    pub command_type: &'static str,
    /// The command as JSON text.
    pub payload: String,
}

impl PlannedCommand {
    fn of<C: CommandHandler + Serialize>(cmd: &C) -> Result<Self> {
        let payload = serde_json::to_string(cmd).map_err(|e| Error::Encode { what: C::NAME.to_owned(), source: e })?;
        Ok(PlannedCommand { command_type: C::NAME, payload })
    }
}

/// How a sent command is undone when the saga fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    /// Nothing undoes it.
    None,
    /// A compensating command, sent last-in-first-out on failure.
    Compensate(PlannedCommand),
    /// A TCC try: confirmed or cancelled later, cancelled when its deadline passes.
    Tcc { confirm: PlannedCommand, cancel: PlannedCommand, deadline: Option<Duration> },
}

/// Where the saga goes after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Keeps running, waiting for the next event.
    Continue,
    /// Completes once the step's commands are sent.
    Complete,
    /// Waits for the next event; fails and compensates if none comes within the timeout.
    Suspend(Option<Duration>),
    /// Fails now: compensations and TCC cancels run, last first.
    Fail(String),
}

/// The outcome of one step.
#[derive(Debug)]
pub struct Step {
    pub(crate) name: &'static str,
    pub(crate) sends: Vec<(PlannedCommand, Undo)>,
    pub(crate) parallel: bool,
    pub(crate) tcc_begin: bool,
    pub(crate) tcc_confirm: bool,
    pub(crate) transition: Transition,
    pub(crate) error: Option<Error>,
    /// Deadlines of the saga armed by this step: each fires its `#[deadline]` step
    /// after its delay, unless disarmed first.
    pub(crate) arms: Vec<(&'static str, Duration)>,
    /// Deadlines of the saga this step disarms (cancels).
    pub(crate) disarms: Vec<&'static str>,
}

impl Step {
    /// A step named `name` that sends nothing and keeps the saga running.
    pub fn new(name: &'static str) -> Self {
        Step {
            name,
            sends: Vec::new(),
            parallel: false,
            tcc_begin: false,
            tcc_confirm: false,
            transition: Transition::Continue,
            error: None,
            arms: Vec::new(),
            disarms: Vec::new(),
        }
    }

    /// Arms the saga's deadline `name` to fire `after` from now ([`crate::saga::Saga::on_deadline`]
    /// runs then), replacing it if it is armed already.
    pub fn arm(mut self, name: &'static str, after: Duration) -> Self {
        self.arms.push((name, after));
        self
    }

    /// Disarms the saga's deadline `name`, if it is armed: it will not fire.
    pub fn disarm(mut self, name: &'static str) -> Self {
        self.disarms.push(name);
        self
    }

    fn plan<C: CommandHandler + Serialize>(&mut self, cmd: &C) -> Option<PlannedCommand> {
        match PlannedCommand::of(cmd) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Sends `cmd` (after the commands added before it).
    pub fn send<C: CommandHandler + Serialize>(mut self, cmd: &C) -> Self {
        if let Some(p) = self.plan(cmd) {
            self.sends.push((p, Undo::None));
        }
        self
    }

    /// Sends `cmd`; once it has been handled, `compensation` undoes it if the saga fails.
    pub fn send_compensated<C: CommandHandler + Serialize, K: CommandHandler + Serialize>(
        mut self,
        cmd: &C,
        compensation: &K,
    ) -> Self {
        if let (Some(p), Some(k)) = (self.plan(cmd), self.plan(compensation)) {
            self.sends.push((p, Undo::Compensate(k)));
        }
        self
    }

    /// Sends this step's commands all at once instead of one after the other.
    pub fn send_all(mut self) -> Self {
        self.parallel = true;
        self
    }

    /// Opens a TCC transaction: the tries that follow are confirmed together by a
    /// step that calls [`Step::tcc_confirm`], or cancelled last-first on failure.
    pub fn tcc_begin(mut self) -> Self {
        self.tcc_begin = true;
        self
    }

    /// Sends the TCC try `cmd`; once handled, it is confirmed with `confirm` or
    /// cancelled with `cancel` (also when `deadline` passes before the confirmation).
    pub fn tcc_try<T, C, K>(mut self, cmd: &T, confirm: &C, cancel: &K, deadline: Option<Duration>) -> Self
    where
        T: CommandHandler + Serialize,
        C: CommandHandler + Serialize,
        K: CommandHandler + Serialize,
    {
        if let (Some(t), Some(c), Some(k)) = (self.plan(cmd), self.plan(confirm), self.plan(cancel)) {
            self.sends.push((t, Undo::Tcc { confirm: c, cancel: k, deadline }));
        }
        self
    }

    /// Confirms every TCC try so far (in the order tried) and closes the transaction.
    pub fn tcc_confirm(mut self) -> Self {
        self.tcc_confirm = true;
        self
    }

    /// Completes the saga once this step's commands are sent.
    pub fn complete(mut self) -> Self {
        self.transition = Transition::Complete;
        self
    }

    /// Suspends the saga until its next event; past `timeout`, it fails and compensates.
    pub fn suspend(mut self, timeout: Option<Duration>) -> Self {
        self.transition = Transition::Suspend(timeout);
        self
    }

    /// Fails the saga: compensations run, last first.
    pub fn fail(mut self, reason: impl Into<String>) -> Self {
        self.transition = Transition::Fail(reason.into());
        self
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The commands the step sends, in order.
    pub fn commands(&self) -> impl Iterator<Item = &PlannedCommand> {
        self.sends.iter().map(|(p, _)| p)
    }

    /// Where the saga goes next.
    pub fn transition(&self) -> &Transition {
        &self.transition
    }
}
