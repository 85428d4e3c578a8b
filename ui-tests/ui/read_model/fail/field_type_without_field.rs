use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Cover {
    url: String,
}

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    title: String,
    cover: Cover,
}

fn main() {
    let _ = Book::fields().title.eq("Iliad");
}
