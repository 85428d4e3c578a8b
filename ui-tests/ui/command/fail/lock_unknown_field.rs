use cqrs_ddd::prelude::*;

#[command(lock = [from, too])]
struct Move {
    from: String,
    to: String,
}

#[command_handler]
async fn moved(_cmd: Move) -> Result<()> {
    Ok(())
}

fn main() {}
