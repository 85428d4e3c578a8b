use cqrs_ddd::prelude::*;

#[event(version = 0)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

fn main() {}
