use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReserveStock;

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ChargePayment;

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReleaseStock;

#[saga(associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, send_all = [ReserveStock, ChargePayment], compensate = [ReleaseStock])]
    fn placed(&mut self, _e: &OrderPlaced) -> ((ReserveStock, ChargePayment), (ReleaseStock,)) {
        ((ReserveStock, ChargePayment), (ReleaseStock,))
    }
}

fn main() {}
