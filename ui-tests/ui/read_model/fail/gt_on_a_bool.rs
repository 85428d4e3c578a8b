use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    title: String,
    lent: bool,
}

fn main() {
    let _ = Book::fields().lent.gt(false);
}
