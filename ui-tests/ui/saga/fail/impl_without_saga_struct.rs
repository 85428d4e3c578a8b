use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, associate = order_id)]
    fn placed(&mut self, _e: &OrderPlaced) {}
}

fn main() {}
