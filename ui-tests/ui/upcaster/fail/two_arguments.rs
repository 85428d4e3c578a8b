use cqrs_ddd::prelude::*;

#[event(version = 2)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credited;

#[upcaster(event = Credited, from = 1, to = 2)]
fn credited(v: serde_json::Value, extra: u32) -> serde_json::Value {
    let _ = extra;
    v
}

fn main() {}
