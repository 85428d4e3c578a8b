use cqrs_ddd::prelude::*;

#[query]
struct Count;

#[query_handler]
async fn count(_q: Count) -> u64 {
    0
}

fn main() {}
