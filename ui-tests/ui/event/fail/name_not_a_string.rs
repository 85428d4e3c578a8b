use cqrs_ddd::prelude::*;

#[event(name = Opened)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

fn main() {}
