use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[saga(associate = order_id, nmae = "fulfilment")]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(compensate = ReleaseStock, timeout = "30m")]
    fn placed(&mut self, _e: &OrderPlaced) {}

    #[step(complete)]
    fn placed_again(&self, _e: &OrderPlaced) {}
}

fn main() {}
