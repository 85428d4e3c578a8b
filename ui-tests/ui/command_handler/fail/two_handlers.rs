use cqrs_ddd::prelude::*;

#[command]
struct Ship;

#[command_handler]
async fn ship(_cmd: Ship) -> Result<()> {
    Ok(())
}

#[command_handler]
async fn ship_again(_cmd: Ship) -> Result<()> {
    Ok(())
}

fn main() {}
