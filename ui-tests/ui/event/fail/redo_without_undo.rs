use cqrs_ddd::prelude::*;

#[event(redo = Grant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted;

fn main() {}
