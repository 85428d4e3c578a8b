//! A small bank domain shared by the behaviour tests.
#![allow(dead_code, missing_docs, unreachable_pub)]

use cqrs_ddd::prelude::*;

pub type AccountId = String;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Opened {
    pub owner: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deposited {
    pub amount: u64,
}

#[event(name = "bank.withdrew", version = 2)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Withdrew {
    pub amount: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountError {
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: u64, asked: u64 },
}

#[aggregate(id = AccountId, events(Opened, Deposited, Withdrew), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub owner: String,
    pub balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, cmd: &Open) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Opened { owner: cmd.owner.clone() }.into()])
    }

    #[handle]
    fn deposit(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[handle]
    fn withdraw(&self, cmd: &Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, asked: cmd.amount });
        }
        Ok(vec![Withdrew { amount: cmd.amount }.into()])
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner.clone_from(&e.owner);
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrew(&mut self, e: &Withdrew) {
        self.balance -= e.amount;
    }
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct Open {
    #[id]
    pub account: AccountId,
    pub owner: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct Deposit {
    #[id]
    pub account: AccountId,
    pub amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct Withdraw {
    #[id]
    pub account: AccountId,
    pub amount: u64,
}

#[query]
pub struct GetBalance {
    pub account: AccountId,
}

#[query_handler]
async fn balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
    Ok(ctx.load::<Account>(&q.account).await?.state.balance)
}
