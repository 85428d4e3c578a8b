use cqrs_ddd::prelude::*;

// The state struct is marked, but the impl block with the steps was forgotten.
#[saga(associate = order_id)]
#[derive(Default, Serialize, Deserialize)]
struct Fulfilment {
    done: bool,
}

fn main() {}
