use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[aggregate(id = String, events(Opened), error = Closed, state_stored, on_conflict = merge(with = merge_tags))]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    tags: Vec<String>,
}

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn merge_tags(existing: &str, _incoming: &str) -> String {
    existing.to_owned()
}

fn main() {}
