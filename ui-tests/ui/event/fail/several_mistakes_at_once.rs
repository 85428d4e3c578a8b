use cqrs_ddd::prelude::*;

#[event(name = "", version = "two", colour = red)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

fn main() {}
