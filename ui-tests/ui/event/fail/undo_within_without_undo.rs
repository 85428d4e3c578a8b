use cqrs_ddd::prelude::*;

#[event(undo_within = "1h")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted;

fn main() {}
