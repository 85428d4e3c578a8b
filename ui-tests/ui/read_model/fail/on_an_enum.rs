use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
enum Status {
    Available,
    Lent,
}

fn main() {}
