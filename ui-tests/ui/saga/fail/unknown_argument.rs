use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[saga(name = "fulfilment", asociate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start)]
    fn placed(&mut self, _e: &OrderPlaced) {}
}

fn main() {}
