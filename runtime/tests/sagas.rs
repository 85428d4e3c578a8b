//! The saga contract on the in-memory stores: idempotency, compensation, TCC, timeouts,
//! recovery, concurrency, manual control and the scheduler.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::Mediator;
use cqrs_ddd::memory::{ManualClock, MemorySagaStore, MemoryScheduleStore};
use cqrs_ddd::ports::{SagaKey, SagaStatus};
use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::{Saga, SagaCommand, SagaHandles, SagaOptions, SagaRecovery, Step};
use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions};
use futures::future::BoxFuture;
use parking_lot::Mutex;

// ---- commands: every handler records its call; a switch can make one fail ----

#[derive(Default)]
struct Log {
    sent: Mutex<Vec<String>>,
    /// command name → (failures left, transient?)
    failing: Mutex<HashMap<String, (u32, bool)>>,
}

impl Log {
    fn fail(&self, command: &str, times: u32, transient: bool) {
        self.failing.lock().insert(command.to_owned(), (times, transient));
    }
    fn sent(&self) -> Vec<String> {
        self.sent.lock().clone()
    }
    fn check(&self, name: &str) -> Result<()> {
        if let Some((left, transient)) = self.failing.lock().get_mut(name)
            && *left > 0
        {
            *left -= 1;
            return Err(if *transient {
                Error::store(format!("{name}: connection refused"))
            } else {
                Error::handler(format!("{name} rejected"))
            });
        }
        Ok(())
    }
}

macro_rules! commands {
    ($($name:ident => $handler:ident),* $(,)?) => {$(
        #[command]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name { pub id: String }

        /// Records the call once its unit of work commits (a command refused as already
        /// processed records nothing).
        #[command_handler]
        async fn $handler(cmd: $name, ctx: &mut CommandContext, log: Dep<Log>) -> Result<()> {
            log.check(stringify!($name))?;
            let call = format!("{}({})", stringify!($name), cmd.id);
            ctx.after_commit(async move { log.sent.lock().push(call) })
        }
    )*};
}

commands! {
    ReserveStock => reserve_stock, ReleaseStock => release_stock,
    ChargePayment => charge_payment, RefundPayment => refund_payment,
    ConfirmOrder => confirm_order, NotifyWarehouse => notify_warehouse, NotifyCustomer => notify_customer,
    ReserveSeat => reserve_seat, ConfirmSeat => confirm_seat, CancelSeat => cancel_seat,
    ReserveHotel => reserve_hotel, ConfirmHotel => confirm_hotel, CancelHotel => cancel_hotel,
    ReserveCar => reserve_car, ConfirmCar => confirm_car, CancelCar => cancel_car,
    AskApproval => ask_approval,
}

// ---- events ----

macro_rules! events {
    ($($name:ident),* $(,)?) => {$(
        #[event]
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct $name { pub order: String }
    )*};
}

events!(
    OrderPlaced,
    StockReserved,
    PaymentCharged,
    ShippingFailed,
    Tick,
    TripBooked,
    SeatHeld,
    HotelHeld,
    CarHeld,
    TripReady,
    NeedsApproval,
    Approved
);

// ---- an order saga, written against the traits `#[saga]` implements ----

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrderSaga {
    ticks: u32,
}

fn send_any<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
    use cqrs_ddd::saga::send_command as s;
    match c.command_type.as_str() {
        "ReserveStock" => s::<ReserveStock>(m, c, meta),
        "ReleaseStock" => s::<ReleaseStock>(m, c, meta),
        "ChargePayment" => s::<ChargePayment>(m, c, meta),
        "RefundPayment" => s::<RefundPayment>(m, c, meta),
        "ConfirmOrder" => s::<ConfirmOrder>(m, c, meta),
        "NotifyWarehouse" => s::<NotifyWarehouse>(m, c, meta),
        "NotifyCustomer" => s::<NotifyCustomer>(m, c, meta),
        "ReserveSeat" => s::<ReserveSeat>(m, c, meta),
        "ConfirmSeat" => s::<ConfirmSeat>(m, c, meta),
        "CancelSeat" => s::<CancelSeat>(m, c, meta),
        "ReserveHotel" => s::<ReserveHotel>(m, c, meta),
        "ConfirmHotel" => s::<ConfirmHotel>(m, c, meta),
        "CancelHotel" => s::<CancelHotel>(m, c, meta),
        "ReserveCar" => s::<ReserveCar>(m, c, meta),
        "ConfirmCar" => s::<ConfirmCar>(m, c, meta),
        "CancelCar" => s::<CancelCar>(m, c, meta),
        "AskApproval" => s::<AskApproval>(m, c, meta),
        _ => cqrs_ddd::saga::unknown_command::<OrderSaga>(c),
    }
}

impl Saga for OrderSaga {
    const NAME: &'static str = "order";
    fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
        send_any(m, c, meta)
    }
}

macro_rules! step {
    ($event:ident, starts = $starts:expr, |$s:ident, $o:ident| $body:expr) => {
        impl SagaHandles<$event> for OrderSaga {
            const STARTS: bool = $starts;
            fn associate(e: &Envelope<$event>) -> Option<String> {
                Some(e.order.clone())
            }
            #[allow(unused_variables)]
            fn on_event(&mut self, e: &Envelope<$event>) -> Step {
                let $s = self;
                let $o = e.order.clone();
                $body
            }
        }
    };
}

fn id(o: &str) -> ReserveStock {
    ReserveStock { id: o.to_owned() }
}

step!(OrderPlaced, starts = true, |s, o| Step::new("placed")
    .send_compensated(&id(&o), &ReleaseStock { id: o.clone() }));
step!(StockReserved, starts = false, |s, o| Step::new("reserved")
    .send_compensated(&ChargePayment { id: o.clone() }, &RefundPayment { id: o.clone() }));
step!(PaymentCharged, starts = false, |s, o| Step::new("charged")
    .send(&NotifyWarehouse { id: o.clone() })
    .send(&NotifyCustomer { id: o.clone() })
    .send_all()
    .complete());
step!(ShippingFailed, starts = false, |s, o| Step::new("shipping_failed").fail("shipping failed"));
step!(Tick, starts = false, |s, o| {
    s.ticks += 1;
    Step::new("tick")
});
// TCC: a trip books a seat, a hotel and a car, confirmed together.
step!(TripBooked, starts = true, |s, o| Step::new("booked").tcc_begin().tcc_try(
    &ReserveSeat { id: o.clone() },
    &ConfirmSeat { id: o.clone() },
    &CancelSeat { id: o.clone() },
    Some(Duration::from_secs(30))
));
step!(SeatHeld, starts = false, |s, o| Step::new("seat_held").tcc_try(
    &ReserveHotel { id: o.clone() },
    &ConfirmHotel { id: o.clone() },
    &CancelHotel { id: o.clone() },
    None
));
step!(HotelHeld, starts = false, |s, o| Step::new("hotel_held").tcc_try(
    &ReserveCar { id: o.clone() },
    &ConfirmCar { id: o.clone() },
    &CancelCar { id: o.clone() },
    None
));
step!(TripReady, starts = false, |s, o| Step::new("ready").tcc_confirm().complete());
step!(NeedsApproval, starts = false, |s, o| Step::new("needs_approval")
    .send(&AskApproval { id: o.clone() })
    .suspend(Some(Duration::from_secs(3600))));
step!(Approved, starts = false, |s, o| Step::new("approved").send(&ConfirmOrder { id: o.clone() }).complete());

// ---- harness ----

struct Harness {
    mediator: Mediator,
    log: Arc<Log>,
    clock: ManualClock,
}

fn harness() -> Harness {
    harness_with(SagaOptions {
        max_retries: 3,
        backoff: Duration::from_secs(1),
        grace: Duration::from_secs(5),
        ..SagaOptions::default()
    })
}

fn harness_with(options: SagaOptions) -> Harness {
    let log = Arc::new(Log::default());
    let clock = ManualClock::default();
    let mediator = App::builder()
        .provide_arc(log.clone())
        .saga_store(MemorySagaStore::new())
        .schedule_store(MemoryScheduleStore::new())
        .clock(clock.clone())
        .saga_options(options)
        .saga::<OrderSaga>()
        .build()
        .unwrap();
    Harness { mediator, log, clock }
}

use cqrs_ddd::testing::envelope;

impl Harness {
    async fn on<E: Event>(&self, event: E) -> Envelope<E>
    where
        OrderSaga: SagaHandles<E>,
    {
        let env = envelope(event);
        self.mediator.sagas().handle::<OrderSaga, E>(&env).await.unwrap();
        env
    }

    async fn instance(&self, order: &str) -> cqrs_ddd::saga::SagaInstance {
        self.mediator.sagas().get(&SagaKey::new("order", order)).await.unwrap().expect("instance exists")
    }

    async fn recover(&self) {
        SagaRecovery::new(self.mediator.clone()).run_once().await.unwrap();
    }
}

fn o(order: &str) -> String {
    order.to_owned()
}

// ---- the contract ----

#[tokio::test]
async fn duplicate_event_dispatches_nothing_again() {
    let h = harness();
    let placed = h.on(OrderPlaced { order: o("1") }).await;
    h.mediator.sagas().handle::<OrderSaga, _>(&placed).await.unwrap();
    h.mediator.sagas().handle::<OrderSaga, _>(&placed).await.unwrap();
    assert_eq!(h.log.sent(), ["ReserveStock(1)"]);
    let inst = h.instance("1").await;
    assert_eq!(inst.commands().len(), 1);
    assert_eq!(inst.status(), SagaStatus::Running);
}

#[tokio::test]
async fn an_event_for_no_instance_that_does_not_start_one_is_ignored() {
    let h = harness();
    h.on(StockReserved { order: o("none") }).await;
    assert!(h.log.sent().is_empty());
    assert!(h.mediator.sagas().get(&SagaKey::new("order", "none")).await.unwrap().is_none());
}

#[tokio::test]
async fn happy_path_sends_in_order_and_completes() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    h.on(PaymentCharged { order: o("1") }).await;
    let sent = h.log.sent();
    assert_eq!(&sent[..2], ["ReserveStock(1)", "ChargePayment(1)"]);
    // The two notifications go out at once (either order), the confirmation after them.
    let mut parallel = sent[2..4].to_vec();
    parallel.sort();
    assert_eq!(parallel, ["NotifyCustomer(1)", "NotifyWarehouse(1)"]);
    assert_eq!(sent.len(), 4);
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Completed);
    assert!(inst.commands().iter().all(|c| c.dispatched));
    assert_eq!(inst.undo_stack().len(), 2, "compensations of the sent steps are kept");
    assert!(h.mediator.sagas().list_active(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn compensations_run_in_reverse_order_ending_compensated() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    h.on(ShippingFailed { order: o("1") }).await;
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "ChargePayment(1)", "RefundPayment(1)", "ReleaseStock(1)"]);
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert_eq!(inst.error(), Some("shipping failed"));
    // Events after the end change nothing.
    h.on(PaymentCharged { order: o("1") }).await;
    assert_eq!(h.log.sent().len(), 4);
}

#[tokio::test]
async fn a_rejected_command_compensates_only_the_steps_that_succeeded() {
    let h = harness();
    h.log.fail("ChargePayment", 1, false);
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "ReleaseStock(1)"]);
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().unwrap().contains("ChargePayment"), "{:?}", inst.error());
}

#[tokio::test]
async fn a_failing_compensation_leaves_the_saga_failed_with_the_error() {
    let h = harness();
    h.log.fail("ReleaseStock", 1, false);
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    h.on(ShippingFailed { order: o("1") }).await;
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "ChargePayment(1)", "RefundPayment(1)"]);
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Failed);
    let error = inst.error().unwrap();
    assert!(error.contains("ReleaseStock") && error.contains("rejected"), "{error}");
    // Retried by hand once the cause is fixed: the compensation goes out, and only it.
    h.mediator.sagas().retry(&SagaKey::new("order", "1")).await.unwrap();
    assert_eq!(h.log.sent().last().map(String::as_str), Some("ReleaseStock(1)"));
    assert_eq!(h.instance("1").await.status(), SagaStatus::Compensated);
}

#[tokio::test]
async fn recovery_skips_dispatched_commands_and_fails_the_saga_at_the_maximum() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    // One of the two parallel notifications cannot be sent: the store is down.
    h.log.fail("NotifyCustomer", 100, true);
    h.on(PaymentCharged { order: o("1") }).await;
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Running);
    assert_eq!(inst.retries(), 1);
    let undispatched: Vec<_> =
        inst.commands().iter().filter(|c| !c.dispatched).map(|c| c.command_type.as_str()).collect();
    assert_eq!(undispatched, ["NotifyCustomer"]);

    // Not due yet: the recovery worker leaves it alone.
    h.recover().await;
    assert_eq!(h.instance("1").await.retries(), 1);
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(600));
        h.recover().await;
    }
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Compensated, "{:?}", inst.error());
    assert!(inst.error().unwrap().contains("gave up after 3 attempts"), "{:?}", inst.error());
    let sent = h.log.sent();
    assert_eq!(sent.iter().filter(|s| s.starts_with("NotifyWarehouse")).count(), 1, "never re-sent: {sent:?}");
    assert!(!sent.iter().any(|s| s.starts_with("NotifyCustomer")));
    assert_eq!(&sent[sent.len() - 2..], ["RefundPayment(1)", "ReleaseStock(1)"]);
}

#[tokio::test]
async fn a_saga_that_gives_up_with_nothing_to_compensate_is_failed() {
    let h = harness();
    // The first command never gets through: nothing was handled, so nothing is undone.
    h.log.fail("ReserveStock", 100, true);
    h.on(OrderPlaced { order: o("1") }).await;
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(600));
        h.recover().await;
    }
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Failed, "{:?}", inst.error());
    assert!(inst.error().unwrap().contains("gave up after 3 attempts"), "{:?}", inst.error());
    assert!(inst.commands().iter().all(|c| c.command_type != "ReleaseStock"), "no compensation is queued");
    assert!(h.log.sent().is_empty());
}

#[tokio::test]
async fn recovery_sends_what_a_transient_failure_left_and_completes() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(StockReserved { order: o("1") }).await;
    h.log.fail("NotifyCustomer", 1, true);
    h.on(PaymentCharged { order: o("1") }).await;
    assert_eq!(h.instance("1").await.status(), SagaStatus::Running);
    h.clock.advance(Duration::from_secs(5));
    h.recover().await;
    let inst = h.instance("1").await;
    assert_eq!(inst.status(), SagaStatus::Completed);
    assert_eq!(h.log.sent().iter().filter(|s| s.starts_with("NotifyCustomer")).count(), 1);
    assert_eq!(h.log.sent().iter().filter(|s| s.starts_with("NotifyWarehouse")).count(), 1);
}

#[tokio::test]
async fn a_tcc_try_failure_cancels_the_tried_steps_in_reverse() {
    let h = harness();
    h.log.fail("ReserveCar", 1, false);
    h.on(TripBooked { order: o("t") }).await;
    h.on(SeatHeld { order: o("t") }).await;
    h.on(HotelHeld { order: o("t") }).await;
    assert_eq!(h.log.sent(), ["ReserveSeat(t)", "ReserveHotel(t)", "CancelHotel(t)", "CancelSeat(t)"]);
    assert_eq!(h.instance("t").await.status(), SagaStatus::Compensated);
}

#[tokio::test]
async fn a_tcc_confirmation_confirms_every_try_in_order() {
    let h = harness();
    h.on(TripBooked { order: o("t") }).await;
    h.on(SeatHeld { order: o("t") }).await;
    h.on(HotelHeld { order: o("t") }).await;
    h.on(TripReady { order: o("t") }).await;
    assert_eq!(
        h.log.sent(),
        ["ReserveSeat(t)", "ReserveHotel(t)", "ReserveCar(t)", "ConfirmSeat(t)", "ConfirmHotel(t)", "ConfirmCar(t)"]
    );
    let inst = h.instance("t").await;
    assert_eq!(inst.status(), SagaStatus::Completed);
    assert!(inst.undo_stack().is_empty());
    // The seat's deadline was cancelled with the confirmation: nothing fires later.
    h.clock.advance(Duration::from_secs(3600));
    h.recover().await;
    assert_eq!(h.log.sent().len(), 6);
}

#[tokio::test]
async fn an_expired_time_based_tcc_step_is_cancelled() {
    let h = harness();
    h.on(TripBooked { order: o("t") }).await;
    h.on(SeatHeld { order: o("t") }).await;
    h.clock.advance(Duration::from_secs(29));
    h.recover().await;
    assert_eq!(h.instance("t").await.status(), SagaStatus::Running);
    h.clock.advance(Duration::from_secs(2));
    h.recover().await;
    assert_eq!(h.log.sent(), ["ReserveSeat(t)", "ReserveHotel(t)", "CancelHotel(t)", "CancelSeat(t)"]);
    let inst = h.instance("t").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().unwrap().contains("deadline"), "{:?}", inst.error());
}

#[tokio::test]
async fn a_suspended_saga_past_its_timeout_fails_and_compensates() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(NeedsApproval { order: o("1") }).await;
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
    assert!(inst.error().unwrap().contains("timed out"));
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "AskApproval(1)", "ReleaseStock(1)"]);
}

#[tokio::test]
async fn a_suspended_saga_resumes_on_its_event_and_the_old_timeout_does_nothing() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(NeedsApproval { order: o("1") }).await;
    h.on(Approved { order: o("1") }).await;
    assert_eq!(h.instance("1").await.status(), SagaStatus::Completed);
    h.clock.advance(Duration::from_secs(7200));
    h.recover().await;
    assert_eq!(h.instance("1").await.status(), SagaStatus::Completed);
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "AskApproval(1)", "ConfirmOrder(1)"]);
}

#[tokio::test]
async fn concurrent_events_for_one_instance_lose_no_update() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let m = h.mediator.clone();
            tokio::spawn(async move { m.sagas().handle::<OrderSaga, _>(&envelope(Tick { order: o("1") })).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let inst = h.instance("1").await;
    assert_eq!(inst.state::<OrderSaga>().unwrap().ticks, 32);
    assert_eq!(inst.version(), 1 + 1 + 32, "created, reserve sent, then one save per tick");
}

#[tokio::test]
async fn sagas_can_be_listed_and_compensated_by_hand() {
    let h = harness();
    h.on(OrderPlaced { order: o("1") }).await;
    h.on(OrderPlaced { order: o("2") }).await;
    let active = h.mediator.sagas().list_active(Some("order"), 10).await.unwrap();
    assert_eq!(active.iter().map(|i| i.key().saga_id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    h.mediator.sagas().compensate(&SagaKey::new("order", "2"), "customer cancelled").await.unwrap();
    let inst = h.instance("2").await;
    assert_eq!(inst.status(), SagaStatus::Compensated);
    assert!(inst.error().unwrap().contains("customer cancelled"));
    assert_eq!(h.log.sent(), ["ReserveStock(1)", "ReserveStock(2)", "ReleaseStock(2)"]);
    assert_eq!(h.mediator.sagas().list_active(None, 10).await.unwrap().len(), 1);
    let missing = h.mediator.sagas().compensate(&SagaKey::new("order", "nope"), "x").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
}

// ---- scheduled commands ----

fn scheduler(h: &Harness, max_attempts: u32) -> Scheduler {
    Scheduler::with_options(
        h.mediator.clone(),
        SchedulerOptions { max_attempts, backoff: Duration::from_secs(10), ..SchedulerOptions::default() },
    )
}

#[tokio::test]
async fn a_scheduled_command_is_sent_when_due_and_then_deleted() {
    let h = harness();
    let at = h.clock.now_utc() + chrono::Duration::minutes(5);
    let id = h.mediator.schedule(&ConfirmOrder { id: o("9") }, at).await.unwrap();
    let s = scheduler(&h, 3);
    assert_eq!(s.run_once().await.unwrap().sent, 0);
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(s.run_once().await.unwrap().sent, 1);
    assert_eq!(s.run_once().await.unwrap().sent, 0);
    assert_eq!(h.log.sent(), ["ConfirmOrder(9)"]);
    assert!(h.mediator.schedule_store().get(None, id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_cancelled_command_is_never_sent() {
    let h = harness();
    let id = h.mediator.schedule(&ConfirmOrder { id: o("9") }, h.clock.now_utc()).await.unwrap();
    assert!(h.mediator.cancel_scheduled(id).await.unwrap());
    assert!(!h.mediator.cancel_scheduled(id).await.unwrap());
    assert_eq!(scheduler(&h, 3).run_once().await.unwrap().sent, 0);
    assert!(h.log.sent().is_empty());
}

#[tokio::test]
async fn a_failing_scheduled_command_is_retried_with_backoff_then_dead() {
    let h = harness();
    h.log.fail("ConfirmOrder", 100, false);
    let id = h.mediator.schedule(&ConfirmOrder { id: o("9") }, h.clock.now_utc()).await.unwrap();
    let s = scheduler(&h, 3);
    assert_eq!(s.run_once().await.unwrap().retried, 1);
    // Backoff: not due again before 10 s, then 20 s.
    h.clock.advance(Duration::from_secs(9));
    assert_eq!(s.run_once().await.unwrap(), cqrs_ddd::scheduling::SchedulerReport::default());
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(s.run_once().await.unwrap().retried, 1);
    h.clock.advance(Duration::from_secs(20));
    assert_eq!(s.run_once().await.unwrap().dead, 1);
    let dead = h.mediator.schedule_store().dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert!(dead[0].last_error.as_deref().unwrap().contains("rejected"));
    // Nothing is lost: rescheduled under its id once the cause is fixed, it is sent.
    h.log.fail("ConfirmOrder", 0, false);
    h.mediator.schedule_with_id(id, &ConfirmOrder { id: o("9") }, h.clock.now_utc()).await.unwrap();
    assert_eq!(s.run_once().await.unwrap().sent, 1);
    assert_eq!(h.log.sent(), ["ConfirmOrder(9)"]);
}

#[tokio::test]
async fn a_command_scheduled_again_under_its_id_after_it_was_sent_is_sent_again() {
    let h = harness();
    let s = scheduler(&h, 3);
    let id = cqrs_ddd::new_id();
    h.mediator.schedule_with_id(id, &ConfirmOrder { id: o("daily") }, h.clock.now_utc()).await.unwrap();
    assert_eq!(s.run_once().await.unwrap().sent, 1);
    h.clock.advance(Duration::from_hours(24));
    h.mediator.schedule_with_id(id, &ConfirmOrder { id: o("daily") }, h.clock.now_utc()).await.unwrap();
    assert_eq!(s.run_once().await.unwrap().sent, 1);
    assert_eq!(h.log.sent(), ["ConfirmOrder(daily)", "ConfirmOrder(daily)"]);
}

#[tokio::test]
async fn a_command_sent_twice_with_one_idempotency_key_is_applied_once() {
    let h = harness();
    let key = cqrs_ddd::new_id();
    h.mediator.send_idempotent(ConfirmOrder { id: o("1") }, key, None).await.unwrap();
    let again = h.mediator.send_idempotent(ConfirmOrder { id: o("1") }, key, None).await.unwrap_err();
    assert!(matches!(again, Error::AlreadyProcessed { key: k } if k == key), "{again}");
    assert_eq!(h.log.sent(), ["ConfirmOrder(1)"]);
}

trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        cqrs_ddd::ports::Clock::now(self)
    }
}

// ---- end to end: events of an aggregate reach a `#[saga]` through the outbox ----

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketOpened {
    pub id: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketClosed;

#[derive(Debug, thiserror::Error)]
#[error("ticket already closed")]
pub struct Closed;

#[aggregate(id = String, events(TicketOpened, TicketClosed), error = Closed)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ticket {
    closed: bool,
}

#[aggregate]
impl Ticket {
    #[handle(create)]
    fn open(&self, c: &OpenTicket) -> std::result::Result<Vec<TicketEvent>, Closed> {
        Ok(vec![TicketOpened { id: c.id.clone() }.into()])
    }
    #[handle]
    fn close(&self, _c: &CloseTicket) -> std::result::Result<Vec<TicketEvent>, Closed> {
        if self.closed { Err(Closed) } else { Ok(vec![TicketClosed.into()]) }
    }
    #[apply]
    fn opened(&mut self, _e: &TicketOpened) {}
    #[apply]
    fn closed(&mut self, _e: &TicketClosed) {
        self.closed = true;
    }
}

#[command(aggregate = Ticket)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenTicket {
    #[id]
    pub id: String,
}

#[command(aggregate = Ticket)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseTicket {
    #[id]
    pub id: String,
}

/// Closes every ticket as soon as it is opened.
#[saga(name = "auto-close", associate = id)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AutoClose;

#[saga]
impl AutoClose {
    #[step(start, send = CloseTicket, complete)]
    fn opened(&mut self, e: &TicketOpened) -> CloseTicket {
        CloseTicket { id: e.id.clone() }
    }
}

#[tokio::test]
async fn events_reach_a_saga_through_the_outbox_and_its_command_is_handled() {
    use cqrs_ddd::outbox::{InProcessPublisher, OutboxRelay};
    let store = cqrs_ddd::MemoryStore::new();
    let log = Arc::new(Log::default());
    let app = App::builder()
        .event_store(store.clone())
        .provide_arc(log)
        .saga_store(MemorySagaStore::new())
        .schedule_store(MemoryScheduleStore::new())
        .build()
        .unwrap();
    app.send(OpenTicket { id: "t1".into() }).await.unwrap();
    // Committed with the event: one outbox row for the saga, nothing handled yet.
    assert_eq!(store.outbox_records().len(), 1);
    assert!(app.sagas().find::<AutoClose>("t1").await.unwrap().is_none());

    let relay = OutboxRelay::new(Arc::new(store.clone()), Arc::new(InProcessPublisher::new(app.clone())));
    assert_eq!(relay.run_once().await.unwrap().published, 1);
    let saga = app.sagas().find::<AutoClose>("t1").await.unwrap().unwrap();
    assert_eq!(saga.status(), SagaStatus::Completed);
    assert!(app.load::<Ticket>(&"t1".to_owned()).await.unwrap().state.closed);
    // A redelivery (the relay crashed before marking the row) changes nothing.
    let mut redelivered = envelope(TicketOpened { id: "t1".into() });
    redelivered.header.event_id = saga.commands()[0].caused_by.unwrap();
    app.sagas().handle::<AutoClose, _>(&redelivered).await.unwrap();
    assert_eq!(app.sagas().find::<AutoClose>("t1").await.unwrap().unwrap().version(), saga.version());
}

#[test]
fn a_saga_step_is_checked_with_the_test_kit() {
    let mut saga = cqrs_ddd::testing::SagaFixture::<AutoClose>::new();
    saga.when(TicketOpened { id: "t9".into() }).then_sends(&["CloseTicket"]).then_status(SagaStatus::Completed);
    assert_eq!(saga.sent_of::<CloseTicket>()[0].id, "t9");
}

/// Another saga type under the stored name of [`OrderSaga`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrderSagaRenamed;

impl Saga for OrderSagaRenamed {
    const NAME: &'static str = "order";
    fn send<'a>(m: &'a Mediator, c: &'a SagaCommand, meta: Metadata) -> BoxFuture<'a, Result<()>> {
        send_any(m, c, meta)
    }
}

#[test]
fn build_refuses_two_sagas_with_one_name_and_sagas_kept_in_memory_beside_a_given_store() {
    let err = App::builder()
        .event_store(cqrs_ddd::MemoryStore::new())
        .saga::<OrderSaga>()
        .saga::<OrderSagaRenamed>()
        .build()
        .err()
        .expect("must not build");
    let Error::Build(b) = &err else { panic!("expected a build error, got {err}") };
    assert!(
        b.problems.iter().any(|p| matches!(p, cqrs_ddd::BuildProblem::DuplicateSagaName { name: "order", types }
            if types.len() == 2 && types.iter().all(|t| t.starts_with("sagas::OrderSaga")))),
        "{err}"
    );
    assert!(
        b.problems.iter().any(|p| matches!(p, cqrs_ddd::BuildProblem::SagaStateInMemory { sagas }
            if sagas.contains(&"order"))),
        "{err}"
    );
    assert!(err.to_string().contains("add `.sagas_on(store.clone())`"), "{err}");
}
