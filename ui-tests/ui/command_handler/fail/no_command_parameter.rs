use cqrs_ddd::prelude::*;

#[command_handler]
async fn ship(_ctx: &mut CommandContext) -> Result<()> {
    Ok(())
}

fn main() {}
