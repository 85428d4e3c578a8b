use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    title: String,
    #[read_model(filter(eq, like))]
    copies: u32,
}

fn main() {}
