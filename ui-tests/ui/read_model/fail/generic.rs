use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "boxes")]
struct Boxed<T> {
    inner: T,
}

fn main() {}
