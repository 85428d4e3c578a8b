use cqrs_ddd::prelude::*;

#[saga]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fulfilment<T> {
    state: T,
}

fn main() {}
