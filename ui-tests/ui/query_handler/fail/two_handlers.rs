use cqrs_ddd::prelude::*;

#[query]
struct Count;

#[query_handler]
async fn count(_q: Count) -> Result<u64> {
    Ok(0)
}

#[query_handler]
async fn count_again(_q: Count) -> Result<u64> {
    Ok(1)
}

fn main() {}
