use cqrs_ddd::prelude::*;

#[event(undo = "Revoke")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted;

fn main() {}
