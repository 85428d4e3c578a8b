use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

struct Balances;

#[projection(name = "balances")]
impl Balances {
    #[on]
    async fn deposited(&self, _e: &Envelope<Deposited>, _tx: &mut ProjectionTx) -> Result<()> {
        Ok(())
    }
}

struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[on]
    async fn deposited(&self, _e: &Envelope<Deposited>, _tx: &mut ProjectionTx) -> Result<()> {
        Ok(())
    }
}

#[query(reads = [Balances, Totals])]
#[derive(Deserialize)]
struct GetBalance {
    account: String,
}

#[query_handler]
async fn balance(q: GetBalance, _ctx: &QueryContext) -> Result<u64> {
    Ok(q.account.len() as u64)
}

fn main() {
    let app = App::builder().build().unwrap();
    let info = app.messages().into_iter().find(|m| m.name == "GetBalance").unwrap();
    assert_eq!(info.reads, ["balances", "totals"]);
}
