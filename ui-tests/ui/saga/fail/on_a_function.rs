use cqrs_ddd::prelude::*;

#[saga(associate = order_id)]
fn fulfilment() {}

fn main() {}
