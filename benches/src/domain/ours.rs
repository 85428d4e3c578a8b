//! The domain in cqrs-ddd: the macros, exactly as an application writes them.
#![allow(clippy::unnecessary_wraps)] // `#[handle]` methods return a `Result` by contract

use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deposited {
    pub(crate) amount: u64,
}

/// The account never refuses a deposit; the error type is the aggregate's contract.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {}

#[aggregate(id = String, events(Deposited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[handle(create_if_missing)]
    fn deposit_many(&self, cmd: &DepositMany) -> Result<Vec<AccountEvent>, AccountError> {
        Ok((0..cmd.count).map(|_| Deposited { amount: cmd.amount }.into()).collect())
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    pub(crate) fn balance(&self) -> u64 {
        self.balance
    }
}

#[command(aggregate = Account)]
#[derive(Deserialize)]
pub(crate) struct Deposit {
    #[id]
    pub(crate) account: String,
    pub(crate) amount: u64,
}

/// One command, `count` events: the batch scenario.
#[command(aggregate = Account)]
pub(crate) struct DepositMany {
    #[id]
    pub(crate) account: String,
    pub(crate) amount: u64,
    pub(crate) count: u32,
}

/// A command that does nothing: what the mediator costs on its own.
#[command]
pub(crate) struct Noop;

#[command_handler]
pub(crate) async fn noop(_c: Noop) -> cqrs_ddd::Result<()> {
    Ok(())
}

/// Scenario 8: balances per account in the document store.
pub(crate) struct BenchBalances;

#[projection(name = "bench_balances", prefetch = "bench_balances")]
impl BenchBalances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> cqrs_ddd::Result<()> {
        let amount = e.amount;
        tx.docs("bench_balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> cqrs_ddd::Result<()> {
        tx.docs("bench_balances").clear().await
    }
}
