use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[aggregate(id = String, events(Opened), error = Closed, state_stored, on_conflict = union)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    tags: Vec<String>,
}

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}
