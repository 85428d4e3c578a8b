//! Given / when / then for aggregates: the `#[handle]` and `#[apply]` methods the macros
//! wire, without a store or a mediator.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::deadline::{DeadlineChange, Deadlines, Decider, Deciders};
use crate::domain::{Aggregate, AggregateEvent, CreationPolicy, Event, Handle};
use crate::error::{DomainError, Error};

/// Runs an aggregate's decisions the way a command does: the creation policy of the
/// `#[handle]` method is checked against the events so far (a `#[handle]` on an
/// aggregate with no events is [`Error::NotFound`], a `#[handle(create)]` on one with
/// events is [`Error::AlreadyExists`]), the method decides, each event it returns must
/// serialize and read back as the store requires, and each is applied to the state.
///
/// ```rust,standalone_crate
/// use cqrs_ddd::prelude::*;
/// use cqrs_ddd::testing::AggregateFixture;
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Deposited { pub amount: u64 }
///
/// #[derive(Debug, PartialEq, thiserror::Error, Serialize)]
/// pub enum AccountError { #[error("amounts must be positive")] ZeroAmount }
///
/// #[aggregate(id = String, events(Deposited), error = AccountError)]
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct Account { balance: u64 }
///
/// #[aggregate]
/// impl Account {
///     #[handle(create_if_missing)]
///     fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
///         if cmd.amount == 0 { return Err(AccountError::ZeroAmount) }
///         Ok(vec![Deposited { amount: cmd.amount }.into()])
///     }
///     #[apply]
///     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
/// }
///
/// #[command(aggregate = Account)]
/// pub struct Deposit { #[id] pub account: String, pub amount: u64 }
///
/// let mut account = AggregateFixture::<Account>::new().given([Deposited { amount: 5 }]);
/// account.when(Deposit { account: "a-1".into(), amount: 7 });
/// account.then_events(&["Deposited"]);
/// assert_eq!(account.events_of::<Deposited>(), [Deposited { amount: 7 }]);
/// assert_eq!(account.version(), 2);
///
/// account.when(Deposit { account: "a-1".into(), amount: 0 });
/// assert_eq!(account.then_error::<AccountError>(), &AccountError::ZeroAmount);
/// assert_eq!(account.version(), 2, "a refused command changes nothing");
/// ```
///
/// Deadlines (see [`mod@crate::deadline`]) are kept by the fixture: a command's scheduled
/// and cancelled deadlines are checked with [`then_deadline_scheduled`](Self::then_deadline_scheduled)
/// and [`then_deadline_cancelled`](Self::then_deadline_cancelled); time stands still
/// until [`advance`](Self::advance) moves it, firing the deadlines that fall due, in
/// order, and the `then_` methods then look at what they caused.
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    version: u64,
    outcome: Option<Result<Vec<A::Event>, Error>>,
    now: DateTime<Utc>,
    /// Scheduled deadlines by name: when, what they carry, how they decide.
    deadlines: BTreeMap<&'static str, (DateTime<Utc>, String, Decider<A>)>,
    /// What the last command or advance did to the deadlines.
    changes: Vec<DeadlineChange>,
}

impl<A: Aggregate> Default for AggregateFixture<A> {
    fn default() -> Self {
        AggregateFixture {
            state: A::default(),
            version: 0,
            outcome: None,
            now: Utc::now(),
            deadlines: BTreeMap::new(),
            changes: Vec::new(),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for AggregateFixture<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateFixture")
            .field("version", &self.version)
            .field("outcome", &self.outcome.as_ref().map(|o| o.as_ref().map(Vec::len)))
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> AggregateFixture<A> {
    /// An aggregate with no events yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies past events (what the stream holds before the command).
    pub fn given<E: Into<A::Event>>(mut self, events: impl IntoIterator<Item = E>) -> Self {
        for event in events {
            self.state.apply(&event.into());
            self.version += 1;
        }
        self
    }

    /// Sends `cmd` to the aggregate; its events (or its error) are what the `then_`
    /// methods look at. Events are applied, so a second `when` continues from them.
    pub fn when<C>(&mut self, cmd: C) -> &mut Self
    where
        A: Handle<C>,
    {
        self.changes.clear();
        let outcome = self.decide(&cmd);
        let outcome = self.record(outcome);
        self.outcome = Some(outcome);
        self
    }

    /// Starts the fixture's clock at `now` (by default, the time it was made).
    pub fn starting_at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The fixture's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Moves time forward by `by`, firing the deadlines that fall due on the way, in
    /// the order they are due: each `#[deadline]` method decides (with the state its
    /// predecessors left) and its events are applied. The `then_` methods look at the
    /// events of all of them, or at the first error (the deadlines after it stay).
    pub fn advance(&mut self, by: Duration) -> &mut Self {
        let to = crate::ports::after(self.now, by);
        self.advance_to(to)
    }

    /// Moves time forward to `to` (see [`advance`](Self::advance)).
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> &mut Self {
        self.changes.clear();
        let mut caused = Vec::new();
        let mut failed = None;
        while let Some((&name, &(at, ..))) = self.deadlines.iter().filter(|(_, d)| d.0 <= to).min_by_key(|(_, d)| d.0) {
            let Some((_, payload, decide)) = self.deadlines.remove(name) else { break };
            self.now = self.now.max(at);
            if self.version == 0 {
                continue;
            }
            let mut deadlines = Deadlines::new(self.now);
            let outcome = decide(&self.state, &payload, &mut deadlines)
                .and_then(|events| Ok((events, deadlines.into_parts()?)))
                .and_then(|(events, parts)| {
                    events.iter().try_for_each(check_storable::<A>)?;
                    Ok((events, parts))
                })
                .map(|(events, (changes, deciders))| {
                    self.keep(changes, deciders);
                    events
                });
            match self.record_events(outcome) {
                Ok(events) => caused.extend(events),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            self.now = self.now.max(to);
        }
        self.outcome = Some(match failed {
            Some(e) => Err(e),
            None => Ok(caused),
        });
        self
    }

    /// Checks that the last command (or advance) scheduled the deadline `name`, and
    /// returns when it fires.
    pub fn then_deadline_scheduled(&self, name: &str) -> DateTime<Utc> {
        let at = self.changes.iter().rev().find_map(|c| match c {
            DeadlineChange::Schedule { name: n, at, .. } if *n == name => Some(*at),
            _ => None,
        });
        at.unwrap_or_else(|| panic!("deadline `{name}` was not scheduled; the changes were {:?}", self.changes))
    }

    /// Checks that the last command (or advance) cancelled the deadline `name`.
    pub fn then_deadline_cancelled(&self, name: &str) -> &Self {
        assert!(
            self.changes.iter().any(|c| matches!(c, DeadlineChange::Cancel { name: n } if *n == name)),
            "deadline `{name}` was not cancelled; the changes were {:?}",
            self.changes
        );
        self
    }

    /// The deadlines scheduled now, by name, with when they fire.
    pub fn deadlines(&self) -> Vec<(&'static str, DateTime<Utc>)> {
        self.deadlines.iter().map(|(name, (at, ..))| (*name, *at)).collect()
    }

    /// Applies the events of a decision that succeeded; the decision as it was.
    fn record_events(&mut self, outcome: Result<Vec<A::Event>, Error>) -> Result<Vec<A::Event>, Error> {
        if let Ok(events) = &outcome {
            for event in events {
                self.state.apply(event);
                self.version += 1;
            }
        }
        outcome
    }

    /// [`record_events`](Self::record_events) of a command's decision, keeping its
    /// deadlines when it succeeded.
    fn record(&mut self, outcome: Result<Decided<A>, Error>) -> Result<Vec<A::Event>, Error> {
        let outcome = outcome.map(|(events, changes, deciders)| {
            self.keep(changes, deciders);
            events
        });
        self.record_events(outcome)
    }

    /// Keeps what a decision did to the deadlines.
    fn keep(&mut self, changes: Vec<DeadlineChange>, deciders: Deciders<A>) {
        let mut deciders = deciders.into_iter();
        for change in &changes {
            match change {
                DeadlineChange::Schedule { name, at, payload } => {
                    if let Some((_, decide)) = deciders.next() {
                        self.deadlines.insert(name, (*at, payload.clone(), decide));
                    }
                }
                DeadlineChange::Cancel { name } => {
                    self.deadlines.remove(name);
                }
            }
        }
        self.changes.extend(changes);
    }

    #[allow(clippy::type_complexity)]
    fn decide<C>(&self, cmd: &C) -> Result<(Vec<A::Event>, Vec<DeadlineChange>, Vec<(&'static str, Decider<A>)>), Error>
    where
        A: Handle<C>,
    {
        let stream = || format!("{}/(the fixture)", A::TYPE);
        match (<A as Handle<C>>::POLICY, self.version) {
            (CreationPolicy::MustExist, 0) => return Err(Error::NotFound { stream: stream() }),
            (CreationPolicy::Create, v) if v > 0 => return Err(Error::AlreadyExists { stream: stream(), version: v }),
            _ => {}
        }
        let mut deadlines = Deadlines::new(self.now);
        let events = self.state.decide(cmd, &mut deadlines).map_err(|e| {
            let fields = A::error_fields(&e);
            Error::Domain(DomainError::with_fields(e, fields))
        })?;
        for event in &events {
            check_storable::<A>(event)?;
        }
        let (changes, deciders) = deadlines.into_parts()?;
        Ok((events, changes, deciders))
    }

    fn outcome(&self) -> &Result<Vec<A::Event>, Error> {
        self.outcome.as_ref().expect("call `when(command)` before asking what it did")
    }

    /// The events the last command caused. Panics if it failed.
    pub fn events(&self) -> &[A::Event] {
        match self.outcome() {
            Ok(events) => events,
            Err(e) => panic!("the command failed instead of causing events: {e}"),
        }
    }

    /// The last command's events of type `E`, decoded, in order. Panics if it failed.
    pub fn events_of<E: Event>(&self) -> Vec<E> {
        self.events()
            .iter()
            .filter(|e| e.event_type() == E::NAME)
            .map(|e| {
                let json = e.to_json().expect("checked when it was decided");
                E::from_json(&json).expect("an event of this type reads back as it")
            })
            .collect()
    }

    /// Checks the stored type names of the last command's events, in order.
    pub fn then_events(&self, expected: &[&str]) -> &Self {
        let names: Vec<&str> = self.events().iter().map(AggregateEvent::event_type).collect();
        assert_eq!(names, expected, "the events the command caused");
        self
    }

    /// Checks that the last command caused no event.
    pub fn then_nothing(&self) -> &Self {
        self.then_events(&[])
    }

    /// The last command's error. Panics if it succeeded.
    pub fn error(&self) -> &Error {
        match self.outcome() {
            Err(e) => e,
            Ok(events) => panic!(
                "the command succeeded with {:?} instead of failing",
                events.iter().map(AggregateEvent::event_type).collect::<Vec<_>>()
            ),
        }
    }

    /// The domain error of type `T` the last command failed with. Panics if it
    /// succeeded, or failed otherwise.
    pub fn then_error<T: std::error::Error + 'static>(&self) -> &T {
        let error = self.error();
        error.domain_error::<T>().unwrap_or_else(|| panic!("the command failed with another error: {error}"))
    }

    /// The state after the events so far.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The number of events so far (the stream's version).
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// What a command decided: its events, and what it did to the deadlines.
type Decided<A> = (Vec<<A as Aggregate>::Event>, Vec<DeadlineChange>, Deciders<A>);

/// An event must serialize and read back, as the store requires before anything is
/// written.
fn check_storable<A: Aggregate>(event: &A::Event) -> Result<(), Error> {
    let refused = |reason: String| Error::Unstorable { what: format!("event `{}`", event.event_type()), reason };
    let json = event.to_json().map_err(|e| refused(e.to_string()))?;
    match A::Event::from_json(event.event_type(), &json) {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(refused(e.to_string())),
        None => Err(refused("not one of the aggregate's events".to_owned())),
    }
}
