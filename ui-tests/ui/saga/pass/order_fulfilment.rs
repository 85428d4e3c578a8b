//! Every `#[step(..)]` option, checked through the generated `SagaHandles` impls.
use std::time::Duration;

use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::{Saga, SagaHandles, Step, Transition};

macro_rules! commands {
    ($($name:ident => $handler:ident),* $(,)?) => {$(
        #[command]
        #[derive(Debug, Serialize, Deserialize)]
        struct $name { order_id: String }

        #[command_handler]
        async fn $handler(_cmd: $name, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }
    )*};
}

commands! {
    ReserveStock => reserve_stock, ReleaseStock => release_stock,
    ChargePayment => charge_payment, RefundPayment => refund_payment,
    NotifyWarehouse => notify_warehouse, NotifyCustomer => notify_customer,
    ReserveSeat => reserve_seat, ConfirmSeat => confirm_seat, CancelSeat => cancel_seat,
    ShipOrder => ship_order,
}

macro_rules! events {
    ($($name:ident { $field:ident }),* $(,)?) => {$(
        #[event]
        #[derive(Debug, Clone, Serialize, Deserialize)]
        struct $name { $field: String }
    )*};
}

events! {
    OrderPlaced { order_id }, StockReserved { order_id }, PaymentTaken { order },
    SeatReserved { seat }, OrderShipped { order_id }, PaymentDeclined { order_id },
}

#[saga(name = "order-fulfilment", associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment {
    order_id: String,
    shipped: bool,
}

#[saga]
impl Fulfilment {
    #[step(start, send = ReserveStock, compensate = ReleaseStock)]
    fn placed(&mut self, e: &OrderPlaced) -> (ReserveStock, ReleaseStock) {
        self.order_id.clone_from(&e.order_id);
        (ReserveStock { order_id: self.order_id.clone() }, ReleaseStock { order_id: self.order_id.clone() })
    }

    #[step(tcc_begin, send_all = [ChargePayment, NotifyWarehouse], compensate = [RefundPayment, NotifyCustomer])]
    fn reserved(&mut self, e: &Envelope<StockReserved>) -> ((ChargePayment, NotifyWarehouse), (RefundPayment, NotifyCustomer)) {
        let id = || e.payload.order_id.clone();
        (
            (ChargePayment { order_id: id() }, NotifyWarehouse { order_id: id() }),
            (RefundPayment { order_id: id() }, NotifyCustomer { order_id: id() }),
        )
    }

    #[step(associate = order, tcc(try = ReserveSeat, confirm = ConfirmSeat, cancel = CancelSeat, deadline = "30s"))]
    fn charged(&mut self, e: &PaymentTaken) -> (ReserveSeat, ConfirmSeat, CancelSeat) {
        let id = || e.order.clone();
        (ReserveSeat { order_id: id() }, ConfirmSeat { order_id: id() }, CancelSeat { order_id: id() })
    }

    #[step(by_correlation, tcc_confirm, send = ShipOrder, suspend, timeout = "30m")]
    fn seated(&mut self, _e: &SeatReserved) -> ShipOrder {
        ShipOrder { order_id: self.order_id.clone() }
    }

    #[step(send_all = [NotifyCustomer], complete)]
    fn shipped(&mut self, e: &OrderShipped) -> (NotifyCustomer,) {
        self.shipped = true;
        (NotifyCustomer { order_id: e.order_id.clone() },)
    }

    #[step(fail)]
    fn declined(&mut self, _e: &PaymentDeclined) {}
}

const CORRELATION: &str = "0190a0e4-6d2c-7a3b-8c4d-5e6f708192a3";

fn envelope<E: Event + Serialize + serde::de::DeserializeOwned>(payload: E) -> Envelope<E> {
    serde_json::from_value(serde_json::json!({
        "event_id": "0190a0e4-6d2c-7a3b-8c4d-000000000001",
        "stream_type": "Order", "stream_id": "o-1", "version": 1, "position": 0,
        "event_type": E::NAME, "schema_version": 1, "occurred_at": "2024-01-01T00:00:00Z",
        "metadata": { "correlation_id": CORRELATION },
        "payload": payload,
    }))
    .expect("a valid envelope")
}

fn sent(step: &Step) -> Vec<&'static str> {
    step.commands().map(|c| c.command_type).collect()
}

fn main() {
    App::builder().build().expect("the saga's events and commands are all registered");
    assert_eq!(<Fulfilment as Saga>::NAME, "order-fulfilment");
    let mut saga = Fulfilment::default();

    let placed = envelope(OrderPlaced { order_id: "o-1".into() });
    const { assert!(<Fulfilment as SagaHandles<OrderPlaced>>::STARTS) };
    assert_eq!(Fulfilment::associate(&placed).as_deref(), Some("o-1"));
    let step = saga.on_event(&placed);
    assert_eq!((step.name(), sent(&step)), ("placed", vec!["ReserveStock"]));
    assert_eq!(step.transition(), &Transition::Continue);
    assert_eq!(saga.order_id, "o-1");

    let reserved = envelope(StockReserved { order_id: "o-1".into() });
    const { assert!(!<Fulfilment as SagaHandles<StockReserved>>::STARTS) };
    let step = saga.on_event(&reserved);
    assert_eq!(sent(&step), ["ChargePayment", "NotifyWarehouse"]);
    let debug = format!("{step:?}");
    assert!(debug.contains("parallel: true") && debug.contains("tcc_begin: true"), "{debug}");
    assert!(debug.contains("RefundPayment") && debug.contains("NotifyCustomer"), "{debug}");

    let charged = envelope(PaymentTaken { order: "o-1".into() });
    assert_eq!(Fulfilment::associate(&charged).as_deref(), Some("o-1"));
    let step = saga.on_event(&charged);
    assert_eq!(sent(&step), ["ReserveSeat"]);
    let debug = format!("{step:?}");
    assert!(debug.contains("ConfirmSeat") && debug.contains("deadline: Some(30s)"), "{debug}");

    let seated = envelope(SeatReserved { seat: "12A".into() });
    assert_eq!(Fulfilment::associate(&seated).as_deref(), Some(CORRELATION));
    let step = saga.on_event(&seated);
    assert_eq!(sent(&step), ["ShipOrder"]);
    assert!(format!("{step:?}").contains("tcc_confirm: true"));
    assert_eq!(step.transition(), &Transition::Suspend(Some(Duration::from_secs(30 * 60))));

    let step = saga.on_event(&envelope(OrderShipped { order_id: "o-1".into() }));
    assert_eq!((sent(&step), step.transition()), (vec!["NotifyCustomer"], &Transition::Complete));
    assert!(saga.shipped);

    let step = saga.on_event(&envelope(PaymentDeclined { order_id: "o-1".into() }));
    assert!(sent(&step).is_empty());
    let reason = "step `declined` failed the saga on `PaymentDeclined`".to_owned();
    assert_eq!(step.transition(), &Transition::Fail(reason));
}
