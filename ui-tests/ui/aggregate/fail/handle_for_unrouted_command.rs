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

#[command]
struct Open {
    id: String,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, _: &Open) -> Result<Vec<AccountEvent>, Closed> {
        Ok(vec![Opened.into()])
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}
