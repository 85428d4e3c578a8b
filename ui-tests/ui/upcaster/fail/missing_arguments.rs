use cqrs_ddd::prelude::*;

#[upcaster(from = 1)]
fn credited(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}
