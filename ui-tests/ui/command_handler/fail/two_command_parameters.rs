use cqrs_ddd::prelude::*;

#[command]
struct Ship;
#[command]
struct Pack;

#[command_handler]
async fn ship(_a: Ship, _b: Pack) -> Result<()> {
    Ok(())
}

fn main() {}
