use cqrs_ddd::prelude::*;

#[command(validate = true)]
#[derive(garde::Validate)]
struct Rename {
    #[garde(length(min = 1))]
    name: String,
}

#[command_handler]
async fn rename(_cmd: Rename) -> Result<()> {
    Ok(())
}

fn main() {}
