use cqrs_ddd::prelude::*;

#[command(response = u64)]
struct Ship;

#[command_handler]
async fn ship(_cmd: Ship) -> Result<String> {
    Ok(String::new())
}

fn main() {}
