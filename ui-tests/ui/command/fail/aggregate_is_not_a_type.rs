use cqrs_ddd::prelude::*;

#[command(aggregate, name = "ship")]
struct Ship {
    parcel: String,
}

fn main() {}
