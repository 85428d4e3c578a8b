use std::collections::HashMap;

use cqrs_ddd::prelude::*;

#[command(response = HashMap<String, u64>, nmae = "x")]
struct Tally;

#[command_handler]
async fn tally(_cmd: Tally) -> Result<HashMap<String, u64>> {
    Ok(HashMap::new())
}

fn main() {}
