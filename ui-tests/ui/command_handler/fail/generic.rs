use cqrs_ddd::prelude::*;

#[command]
struct Ship;

#[command_handler]
async fn ship<T: Send>(_cmd: Ship, _extra: Dep<T>) -> Result<()> {
    Ok(())
}

fn main() {}
