use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Forgotten;

#[aggregate(id = String, events(Opened, Forgotten), error = Closed)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn forgotten(&mut self, _: &Forgotten) {}
}

fn main() {}
