use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
struct Audit {
    created_by: String,
}

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    title: String,
    #[serde(flatten)]
    audit: Audit,
}

fn main() {
    let _ = Book::fields().title.eq("Iliad");
}
