//! Handlers take their parameters in any order, own error types convert with `Into`,
//! and event handlers may take the bare event.
use cqrs_ddd::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("out of stock")]
struct OutOfStock;

impl From<OutOfStock> for Error {
    fn from(e: OutOfStock) -> Self {
        Error::domain(e)
    }
}

struct Stock(u32);

#[command(response = u32)]
struct Reserve {
    qty: u32,
}

#[command_handler]
async fn reserve(stock: Dep<Stock>, ctx: &mut CommandContext, cmd: Reserve) -> std::result::Result<u32, OutOfStock> {
    let _ = ctx.command_id();
    if cmd.qty > stock.0 { Err(OutOfStock) } else { Ok(stock.0 - cmd.qty) }
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reserved;

#[event_handler]
async fn on_reserved(_e: &Reserved) -> Result<()> {
    Ok(())
}

#[tokio::main]
async fn main() {
    let app = App::builder().provide(Stock(5)).build().unwrap();
    assert_eq!(app.send(Reserve { qty: 2 }).await.unwrap(), 3);
    let err = app.send(Reserve { qty: 9 }).await.unwrap_err();
    assert!(err.domain_error::<OutOfStock>().is_some());
}
