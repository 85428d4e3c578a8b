use cqrs_ddd::prelude::*;

#[event(verison = 2)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

fn main() {}
