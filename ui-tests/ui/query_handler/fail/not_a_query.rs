use cqrs_ddd::prelude::*;

struct Count;

#[query_handler]
async fn count(_q: Count) -> Result<u64> {
    Ok(0)
}

fn main() {}
