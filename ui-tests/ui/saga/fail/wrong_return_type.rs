use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReserveStock;

#[command_handler]
async fn reserve_stock(_cmd: ReserveStock, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReleaseStock;

#[command_handler]
async fn release_stock(_cmd: ReleaseStock, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[saga(associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, send = ReserveStock, compensate = ReleaseStock)]
    fn placed(&mut self, _e: &OrderPlaced) -> ReserveStock {
        ReserveStock
    }
}

fn main() {}
