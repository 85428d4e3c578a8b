//! The domain of the adapter tests: an event-sourced account with an upcast event, a
//! state-stored profile, and handlers that touch both.

use cqrs_ddd::prelude::*;
use serde_json::{Value, json};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opened {
    pub owner: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposited {
    pub amount: u64,
}

/// Schema history: v1 `{cents}`, v2 `{amount}`, v3 `{amount, reason}`.
#[event(version = 3)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fee {
    pub amount: u64,
    pub reason: String,
}

#[upcaster(event = Fee, from = 1, to = 2)]
fn fee_cents_to_amount(v: Value) -> Value {
    json!({ "amount": v["cents"].as_u64().unwrap_or(0) / 100 })
}

#[upcaster(event = Fee, from = 2, to = 3)]
fn fee_reason(mut v: Value) -> Value {
    v["reason"] = json!("unknown");
    v
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("insufficient funds")]
    Insufficient,
}

#[aggregate(id = String, events(Opened, Deposited, Fee), error = AccountError)]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub owner: String,
    pub balance: u64,
    pub fees: u64,
    pub fee_reasons: Vec<String>,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, cmd: &Open) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Opened { owner: cmd.owner.clone() }.into()])
    }

    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
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
    fn fee(&mut self, e: &Fee) {
        self.fees += e.amount;
        self.fee_reasons.push(e.reason.clone());
    }
}

#[command(aggregate = Account)]
pub struct Open {
    #[id]
    pub account: String,
    pub owner: String,
}

#[command(aggregate = Account)]
pub struct Deposit {
    #[id]
    pub account: String,
    pub amount: u64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renamed {
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(id = String, events(Renamed), error = Never, state_stored)]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub renames: u32,
}

#[aggregate]
impl Profile {
    #[handle(create_if_missing)]
    fn rename(&self, cmd: &Rename) -> Result<Vec<ProfileEvent>, Never> {
        Ok(vec![Renamed { name: cmd.name.clone() }.into()])
    }

    #[apply]
    fn renamed(&mut self, e: &Renamed) {
        self.name.clone_from(&e.name);
        self.renames += 1;
    }
}

#[command(aggregate = Profile)]
pub struct Rename {
    #[id]
    pub id: String,
    pub name: String,
}

/// Renames a profile, opens an account, stages an outbox row: all in one unit of work.
#[command]
pub struct RenameAndOpen {
    pub profile: String,
    pub account: String,
}

#[command_handler]
async fn rename_and_open(cmd: RenameAndOpen, ctx: &mut CommandContext) -> Result<()> {
    ctx.send(Rename { id: cmd.profile.clone(), name: cmd.account.clone() }).await?;
    ctx.send(Open { account: cmd.account.clone(), owner: cmd.profile.clone() }).await?;
    ctx.outbox("profiles", &json!({ "profile": cmd.profile, "account": cmd.account }))?;
    Ok(())
}

/// Does the same, then fails: nothing may be written.
#[command]
pub struct RenameThenFail {
    pub profile: String,
    pub account: String,
}

#[command_handler]
async fn rename_then_fail(cmd: RenameThenFail, ctx: &mut CommandContext) -> Result<()> {
    ctx.send(RenameAndOpen { profile: cmd.profile, account: cmd.account }).await?;
    Err(Error::handler("refused after staging events, a state row and an outbox row"))
}
