use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced { order_id: String }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ReserveSeat;

#[command_handler]
async fn reserve_seat(_cmd: ReserveSeat, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct ConfirmSeat;

#[command_handler]
async fn confirm_seat(_cmd: ConfirmSeat, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[command]
#[derive(Debug, Serialize, Deserialize)]
struct CancelSeat;

#[saga(associate = order_id)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment;

#[saga]
impl Fulfilment {
    #[step(start, tcc_begin, tcc(try = ReserveSeat, confirm = ConfirmSeat, cancel = CancelSeat))]
    fn placed(&mut self, _e: &OrderPlaced) -> (ReserveSeat, ConfirmSeat, CancelSeat) {
        (ReserveSeat, ConfirmSeat, CancelSeat)
    }
}

fn main() {}
