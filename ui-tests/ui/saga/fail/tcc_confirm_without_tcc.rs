use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StockReserved { order_id: String }

#[saga(associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, tcc_begin)]
    fn placed(&mut self, _e: &OrderPlaced) {}

    #[step(tcc_confirm, complete)]
    fn reserved(&mut self, _e: &StockReserved) {}
}

fn main() {}
