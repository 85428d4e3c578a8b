use cqrs_ddd::prelude::*;

#[event(version = 3)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credited;

#[upcaster(event = Credited, from = 3, to = 2)]
fn credited(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}
