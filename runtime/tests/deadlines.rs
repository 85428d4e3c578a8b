//! Aggregate deadlines on the in-memory store: scheduled and cancelled with the
//! command's events, fired by the scheduler as a command on the aggregate, per tenant,
//! and the test kit's clock.

#![allow(missing_docs)]

use std::time::Duration;

use cqrs_ddd::deadline::deadline_id;
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{Clock, DeadlineWrite, EventStore, ScheduleStore, ScheduledCommand, StreamKey, TenantScope};
use cqrs_ddd::prelude::*;
use cqrs_ddd::scheduling::{Scheduler, SchedulerReport};
use cqrs_ddd::testing::AggregateFixture;
use cqrs_ddd::{MemoryStore, RequestContext};
use futures::TryStreamExt;

#[allow(clippy::duration_suboptimal_units)] // `from_hours` is `const` only after the MSRV
const DAY: Duration = Duration::from_secs(86_400);

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lent {
    pub member: String,
}
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extended;
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Returned;
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reminded {
    pub member: String,
}
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredLost;

/// What the reminder carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReminderDue {
    pub member: String,
}

/// What the loss deadline carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossDue;

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LoanError {
    #[error("a loan needs a member")]
    NoMember,
    #[error("the book is not out")]
    NotOut,
}

#[aggregate(id = String, events(Lent, Extended, Returned, Reminded, DeclaredLost), error = LoanError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Loan {
    member: String,
    out: bool,
    lost: bool,
}

#[aggregate]
impl Loan {
    #[handle(create)]
    fn lend(&self, cmd: &Lend, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, LoanError> {
        if cmd.member.is_empty() {
            return Err(LoanError::NoMember);
        }
        deadlines.schedule(14 * DAY, ReminderDue { member: cmd.member.clone() });
        deadlines.schedule(30 * DAY, LossDue);
        Ok(vec![Lent { member: cmd.member.clone() }.into()])
    }

    /// Pushes the reminder back: scheduling a name again replaces it.
    #[handle]
    fn extend(&self, _cmd: &Extend, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, LoanError> {
        deadlines.schedule(21 * DAY, ReminderDue { member: self.member.clone() });
        Ok(vec![Extended.into()])
    }

    #[handle]
    fn give_back(&self, _cmd: &GiveBack, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, LoanError> {
        if !self.out {
            return Err(LoanError::NotOut);
        }
        deadlines.cancel::<ReminderDue>();
        deadlines.cancel::<LossDue>();
        Ok(vec![Returned.into()])
    }

    #[deadline]
    fn remind(&self, due: &ReminderDue) -> Result<Vec<LoanEvent>, LoanError> {
        Ok(if self.out { vec![Reminded { member: due.member.clone() }.into()] } else { vec![] })
    }

    /// Named otherwise than the method; refuses when the book is back.
    #[deadline(name = "lost")]
    fn declare_lost(&self, _due: &LossDue) -> Result<Vec<LoanEvent>, LoanError> {
        if !self.out {
            return Err(LoanError::NotOut);
        }
        Ok(vec![DeclaredLost.into()])
    }

    #[apply]
    fn lent(&mut self, e: &Lent) {
        self.member.clone_from(&e.member);
        self.out = true;
    }
    #[apply]
    fn extended(&mut self, _: &Extended) {}
    #[apply]
    fn returned(&mut self, _: &Returned) {
        self.out = false;
    }
    #[apply]
    fn reminded(&mut self, _: &Reminded) {}
    #[apply]
    fn declared_lost(&mut self, _: &DeclaredLost) {
        self.lost = true;
    }
}

#[command(aggregate = Loan)]
pub struct Lend {
    #[id]
    pub loan: String,
    pub member: String,
}
#[command(aggregate = Loan)]
pub struct Extend {
    #[id]
    pub loan: String,
}
#[command(aggregate = Loan)]
pub struct GiveBack {
    #[id]
    pub loan: String,
}

struct Library {
    app: Mediator,
    store: MemoryStore,
    clock: ManualClock,
}

impl Library {
    fn new() -> Self {
        let store = MemoryStore::new();
        let clock = ManualClock::default();
        let app = App::builder()
            .event_store(store.clone())
            .saga_store(store.saga_store())
            .clock(clock.clone())
            .build()
            .unwrap();
        Library { app, store, clock }
    }

    async fn lend(&self, loan: &str) {
        self.app.send(Lend { loan: loan.into(), member: "ada".into() }).await.unwrap();
    }

    async fn fire_due(&self) -> SchedulerReport {
        Scheduler::new(self.app.clone()).run_once().await.unwrap()
    }

    async fn scheduled(&self) -> Vec<ScheduledCommand> {
        self.app.schedule_store().scheduled(TenantScope::All, false, 100).await.unwrap()
    }

    async fn events(&self, tenant: Option<&str>, loan: &str) -> Vec<String> {
        let key = StreamKey::new("Loan", loan).with_tenant(tenant.map(str::to_owned));
        let stream = self.store.read_stream(&key, 0).await.unwrap();
        stream.map_ok(|e| e.event_type).try_collect().await.unwrap()
    }
}

#[tokio::test]
async fn a_command_stores_its_deadlines_with_its_events_in_the_event_stores_schedule() {
    let lib = Library::new();
    let start = lib.clock.now();
    lib.lend("l-1").await;
    let scheduled = lib.scheduled().await;
    let due: Vec<_> = scheduled.iter().map(|c| (c.id, c.due_at.timestamp_millis())).collect();
    assert_eq!(
        due,
        [
            (deadline_id("Loan", "l-1", "remind"), (start + 14 * DAY).timestamp_millis()),
            (deadline_id("Loan", "l-1", "lost"), (start + 30 * DAY).timestamp_millis()),
        ]
    );
    // The application's schedule is the event store's own.
    assert_eq!(lib.store.schedule_store().scheduled(TenantScope::All, false, 100).await.unwrap(), scheduled);
}

#[tokio::test]
async fn a_due_deadline_runs_its_method_as_a_command_and_is_removed() {
    let lib = Library::new();
    lib.lend("l-1").await;
    assert_eq!(lib.fire_due().await, SchedulerReport::default(), "nothing is due yet");

    lib.clock.advance(14 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    assert_eq!(lib.events(None, "l-1").await, ["Lent", "Reminded"]);
    let left: Vec<_> = lib.scheduled().await.iter().map(|c| c.id).collect();
    assert_eq!(left, [deadline_id("Loan", "l-1", "lost")], "the fired deadline is gone");
    assert_eq!(lib.fire_due().await, SchedulerReport::default(), "a deadline fires once");

    lib.clock.advance(16 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    assert_eq!(lib.events(None, "l-1").await, ["Lent", "Reminded", "DeclaredLost"]);
    assert!(lib.scheduled().await.is_empty());
}

#[tokio::test]
async fn a_fired_deadline_keeps_the_correlation_of_the_command_that_scheduled_it() {
    let lib = Library::new();
    let correlation = cqrs_ddd::new_correlation_id();
    let meta = Metadata { correlation_id: Some(correlation), ..Metadata::default() };
    lib.app.send_with(Lend { loan: "l-1".into(), member: "ada".into() }, Some(meta)).await.unwrap();
    lib.clock.advance(14 * DAY);
    lib.fire_due().await;
    let events = lib.store.read_all(cqrs_ddd::ports::Cursor::START, 10).await.unwrap();
    let reminded = events.iter().find(|e| e.event_type == "Reminded").unwrap();
    assert_eq!(reminded.metadata.correlation_id, Some(correlation));
}

#[tokio::test]
async fn returning_the_book_cancels_both_deadlines_and_nothing_fires() {
    let lib = Library::new();
    lib.lend("l-1").await;
    lib.app.send(GiveBack { loan: "l-1".into() }).await.unwrap();
    assert!(lib.scheduled().await.is_empty());
    lib.clock.advance(31 * DAY);
    assert_eq!(lib.fire_due().await, SchedulerReport::default());
    assert_eq!(lib.events(None, "l-1").await, ["Lent", "Returned"]);
}

#[tokio::test]
async fn scheduling_a_name_again_replaces_its_deadline() {
    let lib = Library::new();
    let start = lib.clock.now();
    lib.lend("l-1").await;
    lib.app.send(Extend { loan: "l-1".into() }).await.unwrap();
    let reminders: Vec<_> = lib
        .scheduled()
        .await
        .into_iter()
        .filter(|c| c.id == deadline_id("Loan", "l-1", "remind"))
        .map(|c| c.due_at.timestamp_millis())
        .collect();
    assert_eq!(reminders, [(start + 21 * DAY).timestamp_millis()]);
    lib.clock.advance(14 * DAY);
    assert_eq!(lib.fire_due().await.sent, 0, "the first reminder is gone");
    lib.clock.advance(7 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    assert_eq!(lib.events(None, "l-1").await, ["Lent", "Extended", "Reminded"]);
}

#[tokio::test]
async fn a_refused_command_schedules_nothing() {
    let lib = Library::new();
    let err = lib.app.send(Lend { loan: "l-1".into(), member: String::new() }).await.unwrap_err();
    assert!(matches!(err.domain_error::<LoanError>(), Some(LoanError::NoMember)));
    assert!(lib.scheduled().await.is_empty());
}

#[tokio::test]
async fn a_conflicting_commit_writes_no_deadline() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).saga_store(store.saga_store()).build().unwrap();
    app.send(Lend { loan: "l-1".into(), member: "ada".into() }).await.unwrap();
    let before = store.schedule_store().scheduled(TenantScope::All, false, 10).await.unwrap();
    // A writer that loaded the loan before it was lent: its batch conflicts.
    let stale = cqrs_ddd::ports::CommitBatch {
        appends: vec![cqrs_ddd::ports::StreamAppend {
            stream: StreamKey::new("Loan", "l-1"),
            expected_version: 0,
            events: vec![],
        }],
        deadlines: vec![DeadlineWrite::Cancel { tenant_id: None, id: deadline_id("Loan", "l-1", "remind") }],
        ..Default::default()
    };
    assert!(store.commit(stale).await.unwrap_err().is_conflict());
    assert_eq!(store.schedule_store().scheduled(TenantScope::All, false, 10).await.unwrap(), before);
}

#[tokio::test]
async fn a_deadline_whose_method_refuses_is_dropped() {
    let lib = Library::new();
    lib.lend("l-1").await;
    lib.clock.advance(14 * DAY);
    lib.fire_due().await;
    // The book comes back without cancelling the loss deadline (a direct return).
    let key = StreamKey::new("Loan", "l-1");
    let version = lib.store.stream_version(&key).await.unwrap();
    let back = cqrs_ddd::ports::NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type: "Returned",
        schema_version: 1,
        payload: "null".into(),
        metadata: Metadata::default(),
        occurred_at: lib.clock.now(),
    };
    let append = cqrs_ddd::ports::StreamAppend { stream: key, expected_version: version, events: vec![back] };
    lib.store.commit(cqrs_ddd::ports::CommitBatch { appends: vec![append], ..Default::default() }).await.unwrap();
    lib.clock.advance(16 * DAY);
    let report = lib.fire_due().await;
    assert_eq!(report, SchedulerReport { sent: 1, retried: 0, dead: 0 }, "refused, and not retried");
    assert!(lib.scheduled().await.is_empty());
    assert_eq!(lib.events(None, "l-1").await, ["Lent", "Reminded", "Returned"]);
}

#[tokio::test]
async fn a_deadline_of_an_aggregate_without_events_does_nothing() {
    let lib = Library::new();
    let ghost = StreamKey::new("Loan", "ghost");
    let payload = r#"{"aggregate":"Loan","id":"ghost","name":"remind","due":{"member":"ada"}}"#;
    let cmd = ScheduledCommand {
        id: deadline_id("Loan", "ghost", "remind"),
        command_type: "cqrs_ddd.aggregate_deadline".into(),
        payload: payload.into(),
        due_at: lib.clock.now(),
        metadata: Metadata { causation_id: Some(cqrs_ddd::new_id()), ..Metadata::default() },
        attempts: 0,
        last_error: None,
        created_at: lib.clock.now(),
    };
    let batch = cqrs_ddd::ports::CommitBatch { deadlines: vec![DeadlineWrite::Schedule(cmd)], ..Default::default() };
    lib.store.commit(batch).await.unwrap();
    assert_eq!(lib.fire_due().await.sent, 1);
    assert!(lib.scheduled().await.is_empty());
    assert_eq!(lib.store.stream_version(&ghost).await.unwrap(), 0);
}

#[tokio::test]
async fn deadlines_are_kept_and_fired_per_tenant() {
    let lib = Library::new();
    let acme = RequestContext::new().with_tenant("acme");
    let globex = RequestContext::new().with_tenant("globex");
    acme.clone().scope(lib.lend("l-1")).await;
    globex.clone().scope(lib.lend("l-1")).await;
    let tenants: Vec<_> = lib.scheduled().await.into_iter().map(|c| (c.metadata.tenant_id, c.id)).collect();
    assert_eq!(tenants.len(), 4, "one id per tenant: {tenants:?}");

    // Globex returns its book: acme's deadlines stay.
    globex.scope(lib.app.send(GiveBack { loan: "l-1".into() })).await.unwrap();
    let left: Vec<_> = lib.scheduled().await.into_iter().map(|c| c.metadata.tenant_id).collect();
    assert_eq!(left, [Some("acme".to_owned()), Some("acme".to_owned())]);
    // Globex cannot cancel acme's deadline by its id either.
    let id = deadline_id("Loan", "l-1", "remind");
    assert!(!lib.app.schedule_store().cancel(Some("globex"), id).await.unwrap());

    lib.clock.advance(14 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    assert_eq!(lib.events(Some("acme"), "l-1").await, ["Lent", "Reminded"]);
    assert_eq!(lib.events(Some("globex"), "l-1").await, ["Lent", "Returned"]);
}

#[test]
fn the_fixture_keeps_deadlines_and_fires_them_when_time_moves() {
    let mut loan = AggregateFixture::<Loan>::new();
    let start = loan.now();
    loan.when(Lend { loan: "l-1".into(), member: "ada".into() }).then_events(&["Lent"]);
    assert_eq!(loan.then_deadline_scheduled("remind"), start + 14 * DAY);
    assert_eq!(loan.then_deadline_scheduled("lost"), start + 30 * DAY);

    loan.advance(13 * DAY).then_nothing();
    loan.advance(DAY).then_events(&["Reminded"]);
    assert_eq!(loan.events_of::<Reminded>(), [Reminded { member: "ada".into() }]);
    assert_eq!(loan.deadlines(), [("lost", start + 30 * DAY)]);
    loan.advance(16 * DAY).then_events(&["DeclaredLost"]);
    assert!(loan.state().lost);
    assert!(loan.deadlines().is_empty());
}

#[test]
fn the_fixture_cancels_deadlines_and_keeps_them_of_refused_commands_out() {
    let mut loan = AggregateFixture::<Loan>::new();
    loan.when(Lend { loan: "l-1".into(), member: String::new() });
    assert_eq!(loan.then_error::<LoanError>(), &LoanError::NoMember);
    assert!(loan.deadlines().is_empty(), "a refused command schedules nothing");

    loan.when(Lend { loan: "l-1".into(), member: "ada".into() });
    loan.when(GiveBack { loan: "l-1".into() }).then_deadline_cancelled("remind").then_deadline_cancelled("lost");
    loan.advance(31 * DAY).then_nothing();
    assert!(!loan.state().lost);
}

#[test]
fn given_events_schedule_nothing_the_commands_after_them_do() {
    let mut loan = AggregateFixture::<Loan>::new().given([Lent { member: "ada".into() }]);
    loan.advance(31 * DAY).then_nothing();
    loan.when(Extend { loan: "l-1".into() });
    loan.advance(21 * DAY).then_events(&["Reminded"]);
}

// ---- a saga's own deadlines: armed by a step, fired by time, disarmed, ended with it ----

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookOut {
    pub loan: String,
}
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookIn {
    pub loan: String,
}

#[command]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendReminder {
    pub loan: String,
}
#[command]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkLost {
    pub loan: String,
}

#[command_handler]
async fn send_reminder(_cmd: SendReminder) -> Result<()> {
    Ok(())
}
#[command_handler]
async fn mark_lost(_cmd: MarkLost) -> Result<()> {
    Ok(())
}

#[saga(name = "loan_watch", associate = loan)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LoanWatch {
    loan: String,
}

#[saga]
impl LoanWatch {
    #[step(start, arm = [remind, lost])]
    fn out(&mut self, e: &BookOut) {
        self.loan.clone_from(&e.loan);
    }

    #[step(disarm = [remind, lost], complete)]
    fn back(&mut self, _e: &BookIn) {}

    /// Day 14: a reminder; the loss deadline stays armed.
    #[deadline(after = "14d", send = SendReminder)]
    fn remind(&mut self) -> SendReminder {
        SendReminder { loan: self.loan.clone() }
    }

    /// Day 30: the book is lost and the saga ends.
    #[deadline(after = "30d", send = MarkLost, complete)]
    fn lost(&mut self) -> MarkLost {
        MarkLost { loan: self.loan.clone() }
    }
}

#[test]
fn a_sagas_deadlines_fire_in_the_fixture_when_time_moves() {
    use cqrs_ddd::ports::SagaStatus;
    use cqrs_ddd::testing::SagaFixture;
    let mut watch = SagaFixture::<LoanWatch>::new();
    let start = watch.now();
    watch.when(BookOut { loan: "l-1".into() }).then_sends(&[]);
    assert_eq!(watch.then_deadline_armed("remind"), start + 14 * DAY);
    assert_eq!(watch.then_deadline_armed("lost"), start + 30 * DAY);
    watch.advance(13 * DAY).then_sends(&[]);
    watch.advance(DAY).then_sends(&["SendReminder"]).then_deadline_not_armed("remind");
    assert_eq!(watch.sent_of::<SendReminder>(), [SendReminder { loan: "l-1".into() }]);
    watch.advance(16 * DAY).then_sends(&["MarkLost"]).then_status(SagaStatus::Completed);
}

#[test]
fn a_returned_book_disarms_the_sagas_deadlines() {
    use cqrs_ddd::ports::SagaStatus;
    use cqrs_ddd::testing::SagaFixture;
    let mut watch = SagaFixture::<LoanWatch>::new();
    watch.when(BookOut { loan: "l-1".into() });
    watch.when(BookIn { loan: "l-1".into() }).then_status(SagaStatus::Completed);
    watch.then_deadline_not_armed("remind").then_deadline_not_armed("lost");
    watch.advance(31 * DAY).then_sends(&[]);
}

#[tokio::test]
async fn a_sagas_deadlines_are_scheduled_fired_and_cancelled_by_the_runtime() {
    use cqrs_ddd::ports::SagaStatus;
    use cqrs_ddd::testing::envelope;
    let lib = Library::new();
    let sagas = lib.app.sagas();
    sagas.handle::<LoanWatch, _>(&envelope(BookOut { loan: "kept".into() })).await.unwrap();
    sagas.handle::<LoanWatch, _>(&envelope(BookOut { loan: "back".into() })).await.unwrap();
    assert_eq!(lib.scheduled().await.len(), 4, "two deadlines per saga");
    sagas.handle::<LoanWatch, _>(&envelope(BookIn { loan: "back".into() })).await.unwrap();
    let back = sagas.find::<LoanWatch>("back").await.unwrap().unwrap();
    assert_eq!(back.status(), SagaStatus::Completed);
    assert!(back.deadlines().is_empty());
    assert_eq!(lib.scheduled().await.len(), 2, "the returned book's deadlines are cancelled");

    lib.clock.advance(14 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    let kept = sagas.find::<LoanWatch>("kept").await.unwrap().unwrap();
    let sent: Vec<&str> = kept.commands().iter().map(|c| c.command_type.as_str()).collect();
    assert_eq!(sent, ["SendReminder"]);
    assert!(kept.commands().iter().all(|c| c.dispatched));
    lib.clock.advance(16 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    let kept = sagas.find::<LoanWatch>("kept").await.unwrap().unwrap();
    assert_eq!(kept.status(), SagaStatus::Completed);
    assert!(lib.scheduled().await.is_empty());
}

// ---- a saga written by hand arms a deadline with `Step::arm` and answers `on_deadline` ----

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HandWatch {
    loan: String,
}

impl cqrs_ddd::saga::Saga for HandWatch {
    const NAME: &'static str = "hand_watch";

    fn send<'a>(
        m: &'a Mediator,
        c: &'a cqrs_ddd::saga::SagaCommand,
        meta: Metadata,
    ) -> cqrs_ddd::BoxFuture<'a, Result<()>> {
        cqrs_ddd::saga::send_command::<SendReminder>(m, c, meta)
    }

    fn on_deadline(&mut self, name: &str) -> Option<cqrs_ddd::saga::Step> {
        (name == "nag").then(|| cqrs_ddd::saga::Step::new("nag").send(&SendReminder { loan: self.loan.clone() }))
    }
}

impl cqrs_ddd::saga::SagaHandles<BookOut> for HandWatch {
    const STARTS: bool = true;
    fn associate(e: &Envelope<BookOut>) -> Option<String> {
        Some(e.loan.clone())
    }
    fn on_event(&mut self, e: &Envelope<BookOut>) -> cqrs_ddd::saga::Step {
        self.loan.clone_from(&e.loan);
        cqrs_ddd::saga::Step::new("out").arm("nag", DAY)
    }
}

#[tokio::test]
async fn a_hand_written_sagas_deadline_fires_its_on_deadline_step() {
    use cqrs_ddd::testing::envelope;
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let app = App::builder()
        .event_store(store.clone())
        .saga_store(store.saga_store())
        .saga::<HandWatch>()
        .clock(clock.clone())
        .build()
        .unwrap();
    app.sagas().handle::<HandWatch, _>(&envelope(BookOut { loan: "l-1".into() })).await.unwrap();
    clock.advance(DAY);
    assert_eq!(Scheduler::new(app.clone()).run_once().await.unwrap().sent, 1);
    let watch = app.sagas().find::<HandWatch>("l-1").await.unwrap().unwrap();
    let sent: Vec<(&str, bool)> = watch.commands().iter().map(|c| (c.command_type.as_str(), c.dispatched)).collect();
    assert_eq!(sent, [("SendReminder", true)]);
}

#[tokio::test]
async fn a_sagas_deadlines_are_kept_per_tenant() {
    use cqrs_ddd::testing::envelope;
    let lib = Library::new();
    let sagas = lib.app.sagas();
    for tenant in ["acme", "globex"] {
        let mut out = envelope(BookOut { loan: "l-1".into() });
        out.header.metadata.tenant_id = Some(tenant.into());
        sagas.handle::<LoanWatch, _>(&out).await.unwrap();
    }
    let mut back = envelope(BookIn { loan: "l-1".into() });
    back.header.metadata.tenant_id = Some("globex".into());
    sagas.handle::<LoanWatch, _>(&back).await.unwrap();
    let left: Vec<_> = lib.scheduled().await.into_iter().map(|c| c.metadata.tenant_id).collect();
    assert_eq!(left, [Some("acme".to_owned()), Some("acme".to_owned())], "globex's return disarms only its own");
    lib.clock.advance(14 * DAY);
    assert_eq!(lib.fire_due().await.sent, 1);
    let acme = RequestContext::new().with_tenant("acme").scope(sagas.find::<LoanWatch>("l-1")).await.unwrap().unwrap();
    assert_eq!(acme.commands().iter().map(|c| c.command_type.as_str()).collect::<Vec<_>>(), ["SendReminder"]);
    let globex =
        RequestContext::new().with_tenant("globex").scope(sagas.find::<LoanWatch>("l-1")).await.unwrap().unwrap();
    assert!(globex.commands().is_empty());
}

#[tokio::test]
async fn a_fired_deadline_that_conflicts_is_decided_again() {
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let app = App::builder()
        .event_store(store.clone())
        .saga_store(store.saga_store())
        .aggregate_cache(16)
        .clock(clock.clone())
        .build()
        .unwrap();
    app.send(Lend { loan: "l-1".into(), member: "ada".into() }).await.unwrap();
    // Another process extends the loan: the cached loan is stale, the fire's commit conflicts.
    let extended = cqrs_ddd::ports::NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type: "Extended",
        schema_version: 1,
        payload: "null".into(),
        metadata: Metadata::default(),
        occurred_at: clock.now(),
    };
    let key = StreamKey::new("Loan", "l-1");
    let append = cqrs_ddd::ports::StreamAppend { stream: key.clone(), expected_version: 1, events: vec![extended] };
    store.commit(cqrs_ddd::ports::CommitBatch { appends: vec![append], ..Default::default() }).await.unwrap();
    clock.advance(14 * DAY);
    assert_eq!(Scheduler::new(app.clone()).run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    let types: Vec<String> =
        store.read_stream(&key, 0).await.unwrap().map_ok(|e| e.event_type).try_collect().await.unwrap();
    assert_eq!(types, ["Lent", "Extended", "Reminded"]);
    let left: Vec<_> = app.schedule_store().scheduled(TenantScope::All, false, 10).await.unwrap();
    assert_eq!(left.iter().map(|c| c.id).collect::<Vec<_>>(), [deadline_id("Loan", "l-1", "lost")]);
}
