use cqrs_ddd::prelude::*;

#[command]
struct Ship<T> {
    parcel: T,
}

fn main() {}
