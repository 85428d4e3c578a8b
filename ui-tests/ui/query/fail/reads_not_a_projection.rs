use cqrs_ddd::prelude::*;

struct Balances;

#[query(reads = Balances)]
#[derive(Deserialize)]
struct GetBalance {
    account: String,
}

fn main() {}
