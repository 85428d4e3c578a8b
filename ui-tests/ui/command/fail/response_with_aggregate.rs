use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[aggregate(id = String, events(Opened), error = Closed)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[handle]
    fn close(&self, _: &Close) -> std::result::Result<Vec<AccountEvent>, Closed> {
        Ok(vec![])
    }
}

#[command(aggregate = Account, response = u64)]
struct Close {
    #[id]
    id: String,
}

fn main() {}
