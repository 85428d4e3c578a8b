use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Closed;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct AccountClosed;

#[aggregate(id = String, events(Opened), error = AccountClosed)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn closed(&mut self, _: &Closed) {}
}

fn main() {}
