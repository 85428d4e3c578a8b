use cqrs_ddd::prelude::*;

#[command]
struct Ship;

#[command_handler]
async fn ship(_cmd: Ship, _ctx: &QueryContext) -> Result<()> {
    Ok(())
}

fn main() {}
