use cqrs_ddd::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[event_handler]
async fn on_opened(_e: &Envelope<Opened>) -> Result<()> {
    Ok(())
}

fn main() {}
