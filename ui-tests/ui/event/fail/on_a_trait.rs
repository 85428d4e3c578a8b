use cqrs_ddd::prelude::*;

#[event]
trait Opened {}

fn main() {}
