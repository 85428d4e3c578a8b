use cqrs_ddd::prelude::*;

#[command(name = "ship" response = u64)]
struct Ship;

fn main() {}
