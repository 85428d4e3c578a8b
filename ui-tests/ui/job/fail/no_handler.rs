use cqrs_ddd::prelude::*;

#[job]
#[derive(Serialize, Deserialize)]
struct Export {
    rows: u64,
}

fn main() {}
