use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReleaseStock;

#[saga(associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, compensate = ReleaseStock)]
    fn placed(&mut self, _e: &OrderPlaced) {}
}

fn main() {}
