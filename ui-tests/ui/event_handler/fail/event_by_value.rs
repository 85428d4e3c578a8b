use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[event_handler]
async fn on_opened(_e: Opened) -> Result<()> {
    Ok(())
}

fn main() {}
