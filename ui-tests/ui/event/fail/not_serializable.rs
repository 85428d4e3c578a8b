use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone)]
struct Opened;

fn main() {}
