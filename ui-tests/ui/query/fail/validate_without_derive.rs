use cqrs_ddd::prelude::*;

#[query(validate)]
struct Find {
    name: String,
}

#[query_handler]
async fn find(_q: Find, _ctx: &QueryContext) -> Result<u32> {
    Ok(0)
}

fn main() {}
