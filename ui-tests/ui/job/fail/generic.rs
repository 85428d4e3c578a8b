use cqrs_ddd::prelude::*;

#[job]
#[derive(Serialize, Deserialize)]
struct Export<T> {
    rows: T,
}

fn main() {}
