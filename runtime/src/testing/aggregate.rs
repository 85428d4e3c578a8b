//! Given / when / then for aggregates: the `#[handle]` and `#[apply]` methods the macros
//! wire, without a store or a mediator.

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
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    version: u64,
    outcome: Option<Result<Vec<A::Event>, Error>>,
}

impl<A: Aggregate> Default for AggregateFixture<A> {
    fn default() -> Self {
        AggregateFixture { state: A::default(), version: 0, outcome: None }
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
        let outcome = self.decide(&cmd);
        if let Ok(events) = &outcome {
            for event in events {
                self.state.apply(event);
                self.version += 1;
            }
        }
        self.outcome = Some(outcome);
        self
    }

    fn decide<C>(&self, cmd: &C) -> Result<Vec<A::Event>, Error>
    where
        A: Handle<C>,
    {
        let stream = || format!("{}/(the fixture)", A::TYPE);
        match (<A as Handle<C>>::POLICY, self.version) {
            (CreationPolicy::MustExist, 0) => return Err(Error::NotFound { stream: stream() }),
            (CreationPolicy::Create, v) if v > 0 => return Err(Error::AlreadyExists { stream: stream(), version: v }),
            _ => {}
        }
        let events = self.state.handle(cmd).map_err(|e| {
            let fields = A::error_fields(&e);
            Error::Domain(DomainError::with_fields(e, fields))
        })?;
        for event in &events {
            check_storable::<A>(event)?;
        }
        Ok(events)
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
