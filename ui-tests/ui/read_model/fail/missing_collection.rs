use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

// Without `collection`, a type is only a field of other read models.
#[derive(Serialize, Deserialize, ReadModel)]
struct Address {
    city: String,
}

fn collection_of<M: ReadModel>() -> &'static str {
    M::COLLECTION
}

fn main() {
    let _ = collection_of::<Address>();
}
