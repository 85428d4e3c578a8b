use cqrs_ddd::prelude::*;

struct Opened;

#[event_handler]
async fn on_opened(_e: &Envelope<Opened>) -> Result<()> {
    Ok(())
}

fn main() {}
