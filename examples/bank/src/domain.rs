//! The bank domain: one aggregate, its events and commands, a query and a policy.

use cqrs_ddd::prelude::*;
use cqrs_ddd::spec::ReadModel;
use std::sync::Mutex;
use utoipa::ToSchema;

pub(crate) type AccountId = String;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountOpened {
    pub(crate) owner: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deposited {
    pub(crate) amount: u64,
}

#[event(name = "bank.withdrew", version = 1)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Withdrew {
    pub(crate) amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
pub(crate) enum AccountError {
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
    #[error("amounts must be positive")]
    ZeroAmount,
}

#[aggregate(id = AccountId, events(AccountOpened, Deposited, Withdrew), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    owner: String,
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, cmd: &OpenAccount) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![AccountOpened { owner: cmd.owner.clone() }.into()])
    }

    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[handle]
    fn withdraw(&self, cmd: &Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, requested: cmd.amount });
        }
        Ok(vec![Withdrew { amount: cmd.amount }.into()])
    }

    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
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

    pub(crate) fn balance(&self) -> u64 {
        self.balance
    }
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct OpenAccount {
    #[id]
    pub(crate) id: AccountId,
    pub(crate) owner: String,
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Deposit {
    #[id]
    pub(crate) id: AccountId,
    pub(crate) amount: u64,
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Withdraw {
    #[id]
    pub(crate) id: AccountId,
    pub(crate) amount: u64,
}

/// The balance, from the aggregate itself: always up to date.
#[query]
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct GetBalance {
    pub(crate) id: AccountId,
}

#[query_handler]
async fn get_balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
    Ok(ctx.load::<Account>(&q.id).await?.state.balance)
}

/// The account's read model, kept by the `Balances` projection: a caller that sent a
/// command may ask to read its own write (over HTTP: `x-cqrs-min-position`).
#[query(reads = Balances)]
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct GetAccount {
    pub(crate) id: AccountId,
}

#[query_handler]
async fn get_account(q: GetAccount, ctx: &QueryContext) -> Result<Option<BalanceView>> {
    let Some(doc) = ctx.read_models()?.get(BalanceView::COLLECTION, &q.id).await? else { return Ok(None) };
    serde_json::from_str(&doc.json).map(Some).map_err(Error::handler)
}

/// Collects alerts; a real application would send mail.
#[derive(Default)]
pub(crate) struct Notifier {
    alerts: Mutex<Vec<String>>,
}

impl Notifier {
    pub(crate) fn alerts(&self) -> Vec<String> {
        self.alerts.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// A policy: reacts after the deposit is committed.
#[event_handler]
async fn alert_large_deposit(e: &Envelope<Deposited>, notifier: Dep<Notifier>) -> Result<()> {
    if e.amount >= 1_000 {
        let alert = format!("large deposit of {} on {} (event #{})", e.amount, e.header.stream_id, e.header.position);
        if let Ok(mut alerts) = notifier.alerts.lock() {
            alerts.push(alert);
        }
    }
    Ok(())
}

/// The read model of balances, one JSON document per account: its typed fields answer
/// specifications, and callers over HTTP may filter and sort on what it allows.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ReadModel, ToSchema)]
#[read_model(collection = "balances")]
pub(crate) struct BalanceView {
    #[read_model(filter(eq, ne, in_), select)]
    pub(crate) owner: String,
    #[read_model(filter(gt, ge, lt, le), sort, select, index)]
    pub(crate) balance: u64,
    #[read_model(sort)]
    pub(crate) movements: u32,
}

/// Keeps the `balances` collection in step with the events, exactly once.
pub(crate) struct Balances;

#[projection(name = "balances", prefetch = "balances")]
impl Balances {
    #[on]
    async fn opened(&self, e: &Envelope<AccountOpened>, tx: &mut ProjectionTx) -> Result<()> {
        let owner = e.owner.clone();
        tx.docs("balances").update(&e.header.stream_id, |v: &mut BalanceView| v.owner = owner).await?;
        Ok(())
    }

    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let amount = e.amount;
        tx.docs("balances")
            .update(&e.header.stream_id, |v: &mut BalanceView| {
                v.balance += amount;
                v.movements += 1;
            })
            .await?;
        Ok(())
    }

    #[on]
    async fn withdrew(&self, e: &Envelope<Withdrew>, tx: &mut ProjectionTx) -> Result<()> {
        let amount = e.amount;
        tx.docs("balances")
            .update(&e.header.stream_id, |v: &mut BalanceView| {
                v.balance = v.balance.saturating_sub(amount);
                v.movements += 1;
            })
            .await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("balances").clear().await
    }
}

/// Delivered through the outbox by a relay, after the command returned.
#[event_handler(async)]
async fn report_withdrawal(e: &Envelope<Withdrew>, notifier: Dep<Notifier>) -> Result<()> {
    if let Ok(mut alerts) = notifier.alerts.lock() {
        alerts.push(format!("(via the outbox) withdrawal of {} from {}", e.amount, e.header.stream_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The account's decisions, with the test kits: no database, no mediator.

    use cqrs_ddd::testing::{AggregateFixture, ProjectionFixture};

    use super::*;

    fn opened() -> AggregateFixture<Account> {
        AggregateFixture::new().given([AccountOpened { owner: "Ada".into() }])
    }

    #[test]
    fn an_account_is_opened_once() {
        let mut account = AggregateFixture::<Account>::new();
        account.when(OpenAccount { id: "a".into(), owner: "Ada".into() }).then_events(&["AccountOpened"]);
        account.when(OpenAccount { id: "a".into(), owner: "Bob".into() });
        assert!(matches!(account.error(), Error::AlreadyExists { .. }));
    }

    #[test]
    fn deposits_add_up_and_an_overdraft_is_refused() {
        let mut account = opened();
        account.when(Deposit { id: "a".into(), amount: 100 }).then_events(&["Deposited"]);
        account.when(Withdraw { id: "a".into(), amount: 30 }).then_events(&["bank.withdrew"]);
        assert_eq!(account.state().balance(), 70);
        account.when(Withdraw { id: "a".into(), amount: 71 });
        assert!(matches!(
            account.then_error::<AccountError>(),
            AccountError::InsufficientFunds { balance: 70, requested: 71 }
        ));
        account.when(Deposit { id: "a".into(), amount: 0 });
        assert!(matches!(account.then_error::<AccountError>(), AccountError::ZeroAmount));
    }

    #[test]
    fn a_deposit_needs_an_open_account() {
        let mut account = AggregateFixture::<Account>::new();
        account.when(Deposit { id: "a".into(), amount: 5 });
        assert!(matches!(account.error(), Error::NotFound { .. }));
    }

    #[tokio::test]
    async fn the_balances_read_model_follows_the_events() -> Result<()> {
        let mut balances = ProjectionFixture::new(Balances);
        balances.given("Account", "a", AccountOpened { owner: "Ada".into() }).await?;
        balances.given("Account", "a", Deposited { amount: 100 }).await?;
        balances.given("Account", "a", Withdrew { amount: 40 }).await?;
        let view = balances.document::<BalanceView>("balances", "a").await?.expect("a document for the account");
        assert_eq!((view.owner.as_str(), view.balance, view.movements), ("Ada", 60, 2));
        Ok(())
    }
}
