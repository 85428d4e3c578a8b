use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book(String, u32);

fn main() {}
