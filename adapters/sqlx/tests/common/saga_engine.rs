//! The saga runtime (compensation, timeouts, TCC deadlines, recovery, concurrency, the
//! scheduler) on a real database: instances, deadlines and schedules in the adapter's
//! tables, and every command a saga sends applied as a committed event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::Mediator;
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::outbox::{InProcessPublisher, OutboxRelay};
use cqrs_ddd::ports::{Clock, Outbox, Publisher, SagaStatus, ScheduleStore};
use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::{SagaInstance, SagaOptions, SagaRecovery};
use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions, SchedulerReport};
use parking_lot::Mutex;

use super::{TestDb, app};

// ---- a journal: every command a saga sends appends one event to the order's journal ----

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub command: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Refused;

#[aggregate(id = String, events(Recorded), error = Refused)]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub entries: Vec<String>,
}

#[aggregate]
impl Journal {
    #[handle(create_if_missing)]
    fn record(&self, cmd: &Record) -> Result<Vec<JournalEvent>, Refused> {
        Ok(vec![Recorded { command: cmd.command.clone() }.into()])
    }

    #[apply]
    fn recorded(&mut self, e: &Recorded) {
        self.entries.push(e.command.clone());
    }
}

#[command(aggregate = Journal)]
pub struct Record {
    #[id]
    pub journal: String,
    pub command: String,
}

/// Makes named commands fail transiently (as if the store were down) a number of times.
#[derive(Default)]
pub struct Faults(Mutex<HashMap<String, u32>>);

impl Faults {
    pub fn fail(&self, command: &str, times: u32) {
        self.0.lock().insert(command.to_owned(), times);
    }

    fn check(&self, command: &str) -> Result<()> {
        if let Some(left) = self.0.lock().get_mut(command).filter(|left| **left > 0) {
            *left -= 1;
            return Err(Error::store(format!("{command}: connection refused")));
        }
        Ok(())
    }
}

macro_rules! commands {
    ($($name:ident => $handler:ident),* $(,)?) => {$(
        #[command]
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct $name {
            pub order: String,
        }

        /// Records the command in the order's journal, in the saga's unit of work.
        #[command_handler]
        async fn $handler(cmd: $name, ctx: &mut CommandContext, faults: Dep<Faults>) -> Result<()> {
            faults.check(stringify!($name))?;
            ctx.send(Record { journal: cmd.order, command: stringify!($name).to_owned() }).await?;
            Ok(())
        }
    )*};
}

commands! {
    Reserve => reserve, Release => release, Charge => charge, Refund => refund,
    AskApproval => ask_approval, Ship => ship,
    Hold => hold, ConfirmHold => confirm_hold, CancelHold => cancel_hold,
    Deliver => deliver,
}

// ---- the events: a trip aggregate emits the first three, the rest are delivered by hand ----

macro_rules! events {
    ($($name:ident),* $(,)?) => {$(
        #[event]
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct $name {
            pub order: String,
        }
    )*};
}

events!(TripPlaced, TripPaid, TripFailed, TripWaiting, TripShipped, TripBumped, TripHeld);

#[aggregate(id = String, events(TripPlaced, TripPaid, TripFailed), error = Refused)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Trip;

#[aggregate]
impl Trip {
    #[handle(create)]
    fn place(&self, c: &PlaceTrip) -> Result<Vec<TripEvent>, Refused> {
        Ok(vec![TripPlaced { order: c.order.clone() }.into()])
    }

    #[handle]
    fn pay(&self, c: &PayTrip) -> Result<Vec<TripEvent>, Refused> {
        Ok(vec![TripPaid { order: c.order.clone() }.into()])
    }

    #[handle]
    fn cancel(&self, c: &FailTrip) -> Result<Vec<TripEvent>, Refused> {
        Ok(vec![TripFailed { order: c.order.clone() }.into()])
    }

    #[apply]
    fn placed(&mut self, _e: &TripPlaced) {}

    #[apply]
    fn paid(&mut self, _e: &TripPaid) {}

    #[apply]
    fn failed(&mut self, _e: &TripFailed) {}
}

#[command(aggregate = Trip)]
pub struct PlaceTrip {
    #[id]
    pub order: String,
}

#[command(aggregate = Trip)]
pub struct PayTrip {
    #[id]
    pub order: String,
}

#[command(aggregate = Trip)]
pub struct FailTrip {
    #[id]
    pub order: String,
}

// ---- the saga ----

#[saga(name = "trip", associate = order)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TripSaga {
    pub bumps: u32,
}

#[saga]
impl TripSaga {
    #[step(start, send = Reserve, compensate = Release)]
    fn placed(&mut self, e: &TripPlaced) -> (Reserve, Release) {
        (Reserve { order: e.order.clone() }, Release { order: e.order.clone() })
    }

    #[step(send = Charge, compensate = Refund)]
    fn paid(&mut self, e: &TripPaid) -> (Charge, Refund) {
        (Charge { order: e.order.clone() }, Refund { order: e.order.clone() })
    }

    #[step(fail)]
    fn failed(&mut self, _e: &TripFailed) {}

    #[step(send = AskApproval, suspend, timeout = "1h")]
    fn waiting(&mut self, e: &TripWaiting) -> AskApproval {
        AskApproval { order: e.order.clone() }
    }

    #[step(send = Ship, complete)]
    fn shipped(&mut self, e: &TripShipped) -> Ship {
        Ship { order: e.order.clone() }
    }

    #[step]
    fn bumped(&mut self, _e: &TripBumped) {
        self.bumps += 1;
    }

    #[step(start, tcc_begin, tcc(try = Hold, confirm = ConfirmHold, cancel = CancelHold, deadline = "30s"))]
    fn held(&mut self, e: &TripHeld) -> (Hold, ConfirmHold, CancelHold) {
        let o = || e.order.clone();
        (Hold { order: o() }, ConfirmHold { order: o() }, CancelHold { order: o() })
    }
}

// ---- harness ----

struct Harness<S> {
    store: S,
    app: Mediator,
    clock: ManualClock,
    faults: Arc<Faults>,
}

fn options() -> SagaOptions {
    SagaOptions {
        max_retries: 3,
        backoff: Duration::from_secs(1),
        grace: Duration::from_secs(5),
        ..SagaOptions::default()
    }
}

async fn harness<D: TestDb>(db: &D) -> Harness<D::Store> {
    let store = db.store().await;
    let clock = ManualClock::default();
    let faults = Arc::new(Faults::default());
    let app =
        app(store.clone()).provide_arc(faults.clone()).clock(clock.clone()).saga_options(options()).build().unwrap();
    Harness { store, app, clock, faults }
}

use cqrs_ddd::testing::envelope;

impl<S> Harness<S> {
    async fn on<E: Event>(&self, event: E) -> Envelope<E>
    where
        TripSaga: cqrs_ddd::saga::SagaHandles<E>,
    {
        let env = envelope(event);
        self.app.sagas().handle::<TripSaga, E>(&env).await.unwrap();
        env
    }

    async fn instance(&self, order: &str) -> SagaInstance {
        self.app.sagas().find::<TripSaga>(order).await.unwrap().expect("the instance exists")
    }

    /// The commands applied for `order`, in commit order.
    async fn journal(&self, order: &str) -> Vec<String> {
        match self.app.load::<Journal>(&order.to_owned()).await {
            Ok(loaded) => loaded.state.entries,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    async fn recover(&self) {
        SagaRecovery::new(self.app.clone()).run_once().await.unwrap();
    }
}

fn o(order: &str) -> String {
    order.to_owned()
}

// ---- the contract ----

/// Events reach the saga through the outbox and the relay; a failing step compensates
/// in reverse, and a redelivered event sends nothing.
pub async fn compensations_run_in_reverse_and_a_redelivery_sends_nothing(db: &impl TestDb) {
    let h = harness(db).await;
    let relay = OutboxRelay::new(Arc::new(h.store.clone()), Arc::new(InProcessPublisher::new(h.app.clone())));
    h.app.send(PlaceTrip { order: o("1") }).await.unwrap();
    let placed = h.store.pending(10).await.unwrap();
    assert_eq!(placed.len(), 1, "one outbox row for the saga, committed with the event");
    assert!(h.app.sagas().find::<TripSaga>("1").await.unwrap().is_none(), "nothing handled before the relay");
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(h.journal("1").await, ["Reserve"]);
    assert_eq!(h.instance("1").await.status(), SagaStatus::Running);

    h.app.send(PayTrip { order: o("1") }).await.unwrap();
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    h.app.send(FailTrip { order: o("1") }).await.unwrap();
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    assert_eq!(h.journal("1").await, ["Reserve", "Charge", "Refund", "Release"]);
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().is_some_and(|e| e.contains("TripFailed")), "{:?}", inst.error());

    // The first event delivered again (a relay that crashed before marking its row):
    // nothing is sent and the instance is not even saved.
    InProcessPublisher::new(h.app.clone()).publish(&placed[0].message).await.unwrap();
    assert_eq!(h.journal("1").await.len(), 4);
    assert_eq!(h.instance("1").await.version(), inst.version());
    // So is an event after the end.
    h.on(TripPaid { order: o("1") }).await;
    assert_eq!(h.journal("1").await.len(), 4);
    assert_eq!(db.count("events").await, 3 + 4, "three trip events, four journal entries");
}

/// The same envelope handled twice by hand sends its command once.
pub async fn a_duplicate_event_sends_nothing_again(db: &impl TestDb) {
    let h = harness(db).await;
    let placed = h.on(TripPlaced { order: o("1") }).await;
    let version = h.instance("1").await.version();
    h.app.sagas().handle::<TripSaga, _>(&placed).await.unwrap();
    h.app.sagas().handle::<TripSaga, _>(&placed).await.unwrap();
    assert_eq!(h.journal("1").await, ["Reserve"]);
    let inst = h.instance("1").await;
    assert_eq!((inst.version(), inst.commands().len()), (version, 1));
}

pub async fn a_suspended_saga_past_its_timeout_fails_and_compensates(db: &impl TestDb) {
    let h = harness(db).await;
    h.on(TripPlaced { order: o("1") }).await;
    h.on(TripWaiting { order: o("1") }).await;
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Suspended);
    assert!(inst.timeout_at().is_some());
    h.clock.advance(Duration::from_secs(3599));
    h.recover().await;
    assert_eq!(h.instance("1").await.status(), SagaStatus::Suspended);
    h.clock.advance(Duration::from_secs(2));
    h.recover().await;
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().is_some_and(|e| e.contains("timed out")), "{:?}", inst.error());
    assert_eq!(h.journal("1").await, ["Reserve", "AskApproval", "Release"]);
    // Nothing fires twice.
    h.clock.advance(Duration::from_secs(7200));
    h.recover().await;
    assert_eq!(h.journal("1").await.len(), 3);
}

pub async fn an_expired_tcc_try_is_cancelled(db: &impl TestDb) {
    let h = harness(db).await;
    h.on(TripHeld { order: o("t") }).await;
    assert_eq!(h.journal("t").await, ["Hold"]);
    h.clock.advance(Duration::from_secs(29));
    h.recover().await;
    assert_eq!(h.instance("t").await.status(), SagaStatus::Running);
    h.clock.advance(Duration::from_secs(2));
    h.recover().await;
    let inst = h.instance("t").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().is_some_and(|e| e.contains("deadline")), "{:?}", inst.error());
    assert_eq!(h.journal("t").await, ["Hold", "CancelHold"]);
}

pub async fn recovery_resends_after_a_transient_failure_and_completes(db: &impl TestDb) {
    let h = harness(db).await;
    h.on(TripPlaced { order: o("1") }).await;
    h.faults.fail("Ship", 1);
    h.on(TripShipped { order: o("1") }).await;
    let inst = h.instance("1").await;
    assert_eq!((inst.status(), inst.retries()), (SagaStatus::Running, 1));
    let undispatched: Vec<_> =
        inst.commands().iter().filter(|c| !c.dispatched).map(|c| c.command_type.as_str()).collect();
    assert_eq!(undispatched, ["Ship"]);
    assert_eq!(h.journal("1").await, ["Reserve"]);
    // Not due yet: the worker leaves it alone.
    h.recover().await;
    assert_eq!(h.instance("1").await.status(), SagaStatus::Running);
    assert_eq!(h.journal("1").await, ["Reserve"]);
    h.clock.advance(Duration::from_secs(6));
    h.recover().await;
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Completed, "{:?}", inst.error());
    assert!(inst.commands().iter().all(|c| c.dispatched));
    h.clock.advance(Duration::from_secs(600));
    h.recover().await;
    assert_eq!(h.journal("1").await, ["Reserve", "Ship"], "each command applied once");
}

pub async fn concurrent_events_for_one_instance_lose_no_update(db: &impl TestDb) {
    let h = harness(db).await;
    h.on(TripPlaced { order: o("1") }).await;
    let before = h.instance("1").await.version();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = h.app.clone();
            tokio::spawn(
                async move { app.sagas().handle::<TripSaga, _>(&envelope(TripBumped { order: o("1") })).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let inst = h.instance("1").await;
    assert_eq!(inst.state::<TripSaga>().unwrap().bumps, 16);
    assert_eq!(inst.version(), before + 16, "one save per event");
    assert_eq!(h.journal("1").await, ["Reserve"]);
}

pub async fn a_scheduled_command_is_sent_once_when_due(db: &impl TestDb) {
    let a = harness(db).await;
    // Another process on the same database, sharing the clock.
    let other = db.store().await;
    let b = app(other.clone()).provide(Faults::default()).clock(a.clock.clone()).build().unwrap();
    let at = Clock::now(&a.clock) + chrono::Duration::minutes(5);
    let id = a.app.schedule(&Deliver { order: o("9") }, at).await.unwrap();
    let scheduler = |app: &Mediator, worker: &str| {
        Scheduler::with_options(
            app.clone(),
            SchedulerOptions { worker: worker.into(), backoff: Duration::from_secs(10), ..SchedulerOptions::default() },
        )
    };
    let (sa, sb) = (scheduler(&a.app, "a"), scheduler(&b, "b"));
    let (ra, rb) = tokio::join!(sa.run_once(), sb.run_once());
    assert_eq!((ra.unwrap().sent, rb.unwrap().sent), (0, 0), "not sent before it is due");
    assert!(a.journal("9").await.is_empty());
    a.clock.advance(Duration::from_secs(300));
    let (ra, rb) = tokio::join!(sa.run_once(), sb.run_once());
    assert_eq!(ra.unwrap().sent + rb.unwrap().sent, 1, "sent by exactly one scheduler");
    let (ra, rb) = tokio::join!(sa.run_once(), sb.run_once());
    assert_eq!((ra.unwrap().sent, rb.unwrap().sent), (0, 0));
    assert_eq!(a.journal("9").await, ["Deliver"]);
    assert!(ScheduleStore::get(&a.store, None, id).await.unwrap().is_none(), "a sent command is deleted");
}

/// A restart: one process schedules a command and stops; a fresh one, built over the
/// same database without naming the command's type, sends it when it is due.
pub async fn a_command_scheduled_before_a_restart_is_sent_by_a_fresh_process(db: &impl TestDb) {
    let clock = ManualClock::default();
    let store = db.store().await;
    let before = app(store.clone()).clock(clock.clone()).build().unwrap();
    let at = Clock::now(&clock) + chrono::Duration::minutes(5);
    let id = before.schedule(&Deliver { order: o("restart") }, at).await.unwrap();
    drop(before);

    let after = app(db.store().await).clock(clock.clone()).build().unwrap();
    let scheduler = Scheduler::with_options(
        after.clone(),
        SchedulerOptions { worker: "after-restart".into(), max_attempts: 1, ..SchedulerOptions::default() },
    );
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport::default(), "not due yet");
    clock.advance(Duration::from_secs(300));
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    let journal = after.load::<Journal>(&o("restart")).await.unwrap();
    assert_eq!(journal.state.entries, ["Deliver"]);
    assert!(ScheduleStore::get(&store, None, id).await.unwrap().is_none(), "a sent command is deleted");
    assert!(ScheduleStore::dead(&store, 10).await.unwrap().is_empty());
}
