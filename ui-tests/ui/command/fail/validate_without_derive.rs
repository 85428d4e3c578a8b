use cqrs_ddd::prelude::*;

// `validate` runs the type's `garde::Validate` derive, which this command lacks.
#[command(validate)]
struct Rename {
    name: String,
}

#[command_handler]
async fn rename(_cmd: Rename) -> Result<()> {
    Ok(())
}

fn main() {}
