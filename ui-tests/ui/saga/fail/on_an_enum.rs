use cqrs_ddd::prelude::*;

#[saga]
#[derive(Debug, Default, Serialize, Deserialize)]
enum Fulfilment {
    #[default]
    Placed,
    Reserved,
}

fn main() {}
