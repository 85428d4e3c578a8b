use cqrs_ddd::prelude::*;

#[query(reads = "balances")]
struct GetBalance {
    account: String,
}

fn main() {}
