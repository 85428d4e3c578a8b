use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    title: String,
    copies: u32,
}

fn main() {
    let _ = Book::fields().copies.like("1%");
}
