//! Three aggregates (orders, stock, payments) and the saga that fulfils an order.

use cqrs_ddd::prelude::*;

// ---- orders ----

/// A customer placed an order.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderPlaced {
    pub(crate) order_id: String,
    pub(crate) sku: String,
    pub(crate) quantity: u32,
    pub(crate) amount: u64,
    pub(crate) card: String,
}

/// The order is on its way.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderConfirmed {
    pub(crate) order_id: String,
}

/// The order could not be fulfilled.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderCancelled {
    pub(crate) order_id: String,
}

/// Why an order command is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    #[error("order {0} already exists")]
    Exists(String),
    #[error("order {0} is already {1}")]
    Closed(String, String),
}

/// An order: placed, then confirmed or cancelled.
#[aggregate(id = String, events(OrderPlaced, OrderConfirmed, OrderCancelled), error = OrderError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Order {
    id: String,
    status: String,
}

#[aggregate]
impl Order {
    #[handle(create)]
    fn place(&self, c: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if !self.id.is_empty() {
            return Err(OrderError::Exists(c.order_id));
        }
        let PlaceOrder { order_id, sku, quantity, amount, card } = c;
        Ok(vec![OrderPlaced { order_id, sku, quantity, amount, card }.into()])
    }

    #[handle]
    fn confirm(&self, c: &ConfirmOrder) -> Result<Vec<OrderEvent>, OrderError> {
        self.open()?;
        Ok(vec![OrderConfirmed { order_id: c.order_id.clone() }.into()])
    }

    #[handle]
    fn cancel(&self, c: &CancelOrder) -> Result<Vec<OrderEvent>, OrderError> {
        self.open()?;
        Ok(vec![OrderCancelled { order_id: c.order_id.clone() }.into()])
    }

    fn open(&self) -> Result<(), OrderError> {
        match self.status.as_str() {
            "placed" => Ok(()),
            s => Err(OrderError::Closed(self.id.clone(), s.to_owned())),
        }
    }

    #[apply]
    fn placed(&mut self, e: &OrderPlaced) {
        self.id.clone_from(&e.order_id);
        "placed".clone_into(&mut self.status);
    }
    #[apply]
    fn confirmed(&mut self, _: &OrderConfirmed) {
        "confirmed".clone_into(&mut self.status);
    }
    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        "cancelled".clone_into(&mut self.status);
    }
}

impl Order {
    /// placed, confirmed or cancelled.
    pub(crate) fn status(&self) -> &str {
        &self.status
    }
}

/// Places an order.
#[command(aggregate = Order)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlaceOrder {
    #[id]
    pub(crate) order_id: String,
    pub(crate) sku: String,
    pub(crate) quantity: u32,
    pub(crate) amount: u64,
    pub(crate) card: String,
}

/// Confirms a placed order.
#[command(aggregate = Order)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConfirmOrder {
    #[id]
    pub(crate) order_id: String,
}

/// Cancels a placed order.
#[command(aggregate = Order)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CancelOrder {
    #[id]
    pub(crate) order_id: String,
}

// ---- stock ----

/// Stock arrived.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Restocked {
    pub(crate) quantity: u32,
}

/// Stock was set aside for an order.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StockReserved {
    pub(crate) order_id: String,
    pub(crate) quantity: u32,
}

/// Stock set aside for an order went back on the shelf.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StockReleased {
    pub(crate) order_id: String,
    pub(crate) quantity: u32,
}

/// Too little stock for an order: a business outcome, so an event.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StockShortage {
    pub(crate) order_id: String,
    pub(crate) available: u32,
    pub(crate) requested: u32,
}

/// Stock commands are never refused (a shortage is an event).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StockError {}

/// The stock of one product.
#[aggregate(id = String, events(Restocked, StockReserved, StockShortage, StockReleased), error = StockError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Stock {
    available: u32,
    reserved: std::collections::BTreeMap<String, u32>,
}

#[aggregate]
impl Stock {
    #[handle(create_if_missing)]
    fn restock(&self, c: &Restock) -> Result<Vec<StockEvent>, StockError> {
        Ok(vec![Restocked { quantity: c.quantity }.into()])
    }

    #[handle]
    fn reserve(&self, c: &ReserveStock) -> Result<Vec<StockEvent>, StockError> {
        if c.quantity > self.available {
            let (available, requested) = (self.available, c.quantity);
            return Ok(vec![StockShortage { order_id: c.order_id.clone(), available, requested }.into()]);
        }
        Ok(vec![StockReserved { order_id: c.order_id.clone(), quantity: c.quantity }.into()])
    }

    /// Releasing what was never reserved (or already released) changes nothing.
    #[handle]
    fn release(&self, c: &ReleaseStock) -> Result<Vec<StockEvent>, StockError> {
        Ok(match self.reserved.get(&c.order_id) {
            Some(&quantity) => vec![StockReleased { order_id: c.order_id.clone(), quantity }.into()],
            None => Vec::new(),
        })
    }

    #[apply]
    fn restocked(&mut self, e: &Restocked) {
        self.available += e.quantity;
    }
    #[apply]
    fn reserved(&mut self, e: &StockReserved) {
        self.available -= e.quantity;
        self.reserved.insert(e.order_id.clone(), e.quantity);
    }
    #[apply]
    fn shortage(&mut self, _: &StockShortage) {}
    #[apply]
    fn released(&mut self, e: &StockReleased) {
        self.available += e.quantity;
        self.reserved.remove(&e.order_id);
    }
}

impl Stock {
    /// Units on the shelf, not reserved.
    pub(crate) fn available(&self) -> u32 {
        self.available
    }
}

/// Adds stock.
#[command(aggregate = Stock)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Restock {
    #[id]
    pub(crate) sku: String,
    pub(crate) quantity: u32,
}

/// Sets stock aside for an order.
#[command(aggregate = Stock)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReserveStock {
    #[id]
    pub(crate) sku: String,
    pub(crate) order_id: String,
    pub(crate) quantity: u32,
}

/// Puts an order's reserved stock back.
#[command(aggregate = Stock)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReleaseStock {
    #[id]
    pub(crate) sku: String,
    pub(crate) order_id: String,
}

// ---- payments ----

/// The customer's card was charged.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PaymentCharged {
    pub(crate) order_id: String,
    pub(crate) amount: u64,
}

/// The card was refused.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PaymentDeclined {
    pub(crate) order_id: String,
    pub(crate) reason: String,
}

/// Why a payment command is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PaymentError {
    #[error("payment of order {0} was already attempted")]
    AlreadyAttempted(String),
}

/// The payment of one order.
#[aggregate(id = String, events(PaymentCharged, PaymentDeclined), error = PaymentError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Payment {
    attempted: bool,
}

#[aggregate]
impl Payment {
    /// A declined card is a business outcome (an event), not an error.
    #[handle(create_if_missing)]
    fn charge(&self, c: &ChargePayment) -> Result<Vec<PaymentEvent>, PaymentError> {
        if self.attempted {
            return Err(PaymentError::AlreadyAttempted(c.order_id.clone()));
        }
        if c.card.starts_with("4000") {
            let reason = "card declined by the issuer".to_owned();
            return Ok(vec![PaymentDeclined { order_id: c.order_id.clone(), reason }.into()]);
        }
        Ok(vec![PaymentCharged { order_id: c.order_id.clone(), amount: c.amount }.into()])
    }

    #[apply]
    fn charged(&mut self, _: &PaymentCharged) {
        self.attempted = true;
    }
    #[apply]
    fn declined(&mut self, _: &PaymentDeclined) {
        self.attempted = true;
    }
}

/// Charges the customer's card for an order.
#[command(aggregate = Payment)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChargePayment {
    #[id]
    pub(crate) order_id: String,
    pub(crate) amount: u64,
    pub(crate) card: String,
}

// ---- the saga ----

/// Fulfils an order: reserve stock → charge payment → confirm. A declined payment
/// fails the saga: the stock is released and the order cancelled, last step first. Too
/// little stock fails it before anything was reserved: the order is cancelled.
#[saga(name = "order-fulfilment", associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Fulfilment {
    sku: String,
    quantity: u32,
    amount: u64,
    card: String,
    problem: Option<String>,
}

impl Fulfilment {
    /// Why the order could not be fulfilled, if it could not.
    pub(crate) fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

#[saga]
impl Fulfilment {
    /// Starts on a new order: reserve its stock; cancel the order if anything fails.
    #[step(start, send = ReserveStock, compensate = CancelOrder)]
    fn placed(&mut self, e: &OrderPlaced) -> (ReserveStock, CancelOrder) {
        self.sku.clone_from(&e.sku);
        self.quantity = e.quantity;
        self.amount = e.amount;
        self.card.clone_from(&e.card);
        let reserve = ReserveStock { sku: e.sku.clone(), order_id: e.order_id.clone(), quantity: e.quantity };
        (reserve, CancelOrder { order_id: e.order_id.clone() })
    }

    /// Stock is set aside: charge the card; release the stock if anything fails.
    #[step(send = ChargePayment, compensate = ReleaseStock)]
    fn reserved(&mut self, e: &StockReserved) -> (ChargePayment, ReleaseStock) {
        let charge = ChargePayment { order_id: e.order_id.clone(), amount: self.amount, card: self.card.clone() };
        (charge, ReleaseStock { sku: self.sku.clone(), order_id: e.order_id.clone() })
    }

    /// Paid: confirm the order, and the saga is done.
    #[step(send = ConfirmOrder, complete)]
    fn charged(&mut self, e: &PaymentCharged) -> ConfirmOrder {
        ConfirmOrder { order_id: e.order_id.clone() }
    }

    /// Declined: the saga fails and compensates.
    #[step(fail)]
    fn declined(&mut self, e: &PaymentDeclined) {
        self.problem = Some(e.reason.clone());
    }

    /// Not enough stock: the saga fails, and the order is cancelled.
    #[step(fail)]
    fn short(&mut self, e: &StockShortage) {
        self.problem = Some(format!("only {} in stock, {} ordered", e.available, e.requested));
    }
}

#[cfg(test)]
mod tests {
    //! The saga's decisions, with the test kit: no database, no mediator.

    use cqrs_ddd::ports::SagaStatus;
    use cqrs_ddd::testing::SagaFixture;

    use super::*;

    fn placed(quantity: u32, card: &str) -> OrderPlaced {
        OrderPlaced { order_id: "o1".into(), sku: "lamp".into(), quantity, amount: 75, card: card.into() }
    }

    #[test]
    fn a_paid_order_is_reserved_charged_and_confirmed() {
        let mut saga = SagaFixture::<Fulfilment>::new();
        saga.when(placed(3, "4242")).then_sends(&["ReserveStock"]);
        saga.when(StockReserved { order_id: "o1".into(), quantity: 3 }).then_sends(&["ChargePayment"]);
        assert_eq!(saga.sent_of::<ChargePayment>()[0].amount, 75);
        saga.when(PaymentCharged { order_id: "o1".into(), amount: 75 })
            .then_sends(&["ConfirmOrder"])
            .then_status(SagaStatus::Completed);
    }

    #[test]
    fn a_declined_payment_releases_the_stock_then_cancels_the_order() {
        let mut saga = SagaFixture::<Fulfilment>::new()
            .given(placed(3, "4000"))
            .given(StockReserved { order_id: "o1".into(), quantity: 3 });
        saga.when(PaymentDeclined { order_id: "o1".into(), reason: "declined".into() })
            .then_sends(&["ReleaseStock", "CancelOrder"])
            .then_status(SagaStatus::Compensated);
        assert_eq!(saga.state().problem(), Some("declined"));
    }

    #[test]
    fn a_shortage_cancels_the_order() {
        let mut saga = SagaFixture::<Fulfilment>::new().given(placed(50, "4242"));
        saga.when(StockShortage { order_id: "o1".into(), available: 7, requested: 50 })
            .then_sends(&["CancelOrder"])
            .then_status(SagaStatus::Compensated);
    }

    #[test]
    fn a_redelivered_event_sends_nothing_again() {
        let mut saga = SagaFixture::<Fulfilment>::new();
        let event = saga.envelope(placed(3, "4242"));
        saga.when_envelope(&event).then_sends(&["ReserveStock"]);
        saga.when_envelope(&event).then_sends(&[]);
    }
}
