use cqrs_ddd::prelude::*;

trait Mailer: Send + Sync {}

#[command]
struct Ship;

#[command_handler]
async fn ship(_cmd: Ship, _mailer: Dep<dyn Mailer>) -> Result<()> {
    Ok(())
}

fn main() {}
