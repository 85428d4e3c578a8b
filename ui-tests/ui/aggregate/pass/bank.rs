//! The whole domain side, compiled and run.
use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

#[event(name = "bank.deposited", version = 2)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited(u64);

#[derive(Debug, thiserror::Error)]
#[error("closed")]
struct Closed;

#[aggregate(id = String, events(Opened, Deposited), error = Closed, name = "bank.account", event_enum = Happened)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, _: Open) -> Result<Vec<Happened>, Closed> {
        Ok(vec![Opened.into()])
    }
    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<Happened>, Closed> {
        Ok(vec![Deposited(cmd.1).into()])
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.0;
    }
    fn helper(&self) -> u64 {
        self.balance
    }
}

#[command(aggregate = Account)]
#[derive(Clone)]
struct Open {
    #[id]
    id: String,
}

#[command(aggregate = Account, name = "bank.deposit")]
struct Deposit(#[id] String, u64);

#[tokio::main]
async fn main() {
    let app = App::builder().build().unwrap();
    app.send(Open { id: "a".into() }).await.unwrap();
    app.send(Deposit("a".into(), 5)).await.unwrap();
    let loaded = app.load::<Account>(&"a".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.helper()), (2, 5));
    assert_eq!(<Account as Aggregate>::TYPE, "bank.account");
    assert_eq!(<Deposited as Event>::NAME, "bank.deposited");
}
