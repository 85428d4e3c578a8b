use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "books")]
struct Book {
    #[read_model(fitler, sort)]
    title: String,
}

fn main() {
    // The misspelled key counts as `filter`: the rest of the program sees no other error.
    let _ = Book::allow_list();
}
