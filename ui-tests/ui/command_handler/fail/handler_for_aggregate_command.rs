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
}

#[command(aggregate = Account)]
struct Open {
    #[id]
    id: String,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, _: &Open) -> Result<Vec<AccountEvent>, Closed> {
        Ok(vec![Opened.into()])
    }
}

#[command_handler]
async fn open_too(_cmd: Open) -> Result<()> {
    Ok(())
}

fn main() {}
