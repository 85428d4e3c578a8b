use cqrs_ddd::prelude::*;

#[command]
struct Ship {
    #[id]
    parcel: String,
}

fn main() {}
