use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited;

#[aggregate(id = String, events(Opened, Deposited), error = Closed)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}
