use cqrs_ddd::prelude::*;

#[job]
async fn export(_ctx: &mut JobContext) -> Result<()> {
    Ok(())
}

fn main() {}
