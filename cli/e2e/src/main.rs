//! An application with the operator tool embedded: `operated <command>` runs the
//! cqrs-ddd tool with this application's projection, saga and commands registered;
//! `operated seed ..` fills the database for the tests.
//!
//! Faults the tests switch on through the environment:
//! - `E2E_REFUSE`: the projection refuses deposits of this amount (a dead letter);
//! - `E2E_GATE`: a file; the projection waits while it exists before applying a deposit
//!   of 7777 (so a test can interrupt a rebuild at a known batch);
//! - `E2E_FAIL_WELCOME`: the welcome command fails (the saga fails and compensates);
//! - `E2E_FAIL_RECALL`: the compensation fails (the saga waits for an operator);
//! - `E2E_FAIL_AUDIT`: the asynchronous audit handler fails (its outbox rows die).
//!
//! `seed` also enqueues three `Statement` jobs per tenant and runs the due ones once: one
//! completes, one fails for good, one waits an hour.

use std::process::ExitCode;
use std::time::Duration;

use cqrs_ddd::jobs::{JobOptions, JobWorker};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{RelayOptions, RequestContext};
use cqrs_ddd_cli::Database;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Opened {
    pub(crate) account: String,
    pub(crate) owner: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deposited {
    pub(crate) account: String,
    pub(crate) amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
pub(crate) enum AccountError {
    #[error("amounts must be positive")]
    ZeroAmount,
}

#[aggregate(id = String, events(Opened, Deposited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, cmd: &Open) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Opened { account: cmd.id.clone(), owner: cmd.owner.clone() }.into()])
    }

    #[handle]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        Ok(vec![Deposited { account: cmd.id.clone(), amount: cmd.amount }.into()])
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize)]
pub(crate) struct Open {
    #[id]
    pub(crate) id: String,
    pub(crate) owner: String,
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize)]
pub(crate) struct Deposit {
    #[id]
    pub(crate) id: String,
    pub(crate) amount: u64,
}

/// Welcomes a new customer (fails while `E2E_FAIL_WELCOME` is set).
#[command]
#[derive(Serialize, Deserialize)]
pub(crate) struct SendWelcome {
    pub(crate) account: String,
}

#[command_handler]
async fn send_welcome(cmd: SendWelcome, _ctx: &mut CommandContext) -> Result<()> {
    if std::env::var_os("E2E_FAIL_WELCOME").is_some() {
        return Err(Error::handler(format!("the mail server refused the welcome of {}", cmd.account)));
    }
    Ok(())
}

/// Takes a welcome back (fails while `E2E_FAIL_RECALL` is set).
#[command]
#[derive(Serialize, Deserialize)]
pub(crate) struct RecallWelcome {
    pub(crate) account: String,
}

#[command_handler]
async fn recall_welcome(cmd: RecallWelcome, _ctx: &mut CommandContext) -> Result<()> {
    if std::env::var_os("E2E_FAIL_RECALL").is_some() {
        return Err(Error::handler(format!("the mail server cannot recall the welcome of {}", cmd.account)));
    }
    Ok(())
}

/// Welcomes each new account.
#[saga(name = "welcome", associate = account)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Welcome {
    account: String,
}

#[saga]
impl Welcome {
    #[step(start, send = SendWelcome, compensate = RecallWelcome)]
    fn opened(&mut self, e: &Envelope<Opened>) -> (SendWelcome, RecallWelcome) {
        self.account.clone_from(&e.account);
        (SendWelcome { account: self.account.clone() }, RecallWelcome { account: self.account.clone() })
    }

    #[step(complete)]
    fn deposited(&mut self, _e: &Envelope<Deposited>) {}
}

/// Audits deposits after commit, through the outbox (fails while `E2E_FAIL_AUDIT` is set).
#[event_handler(async)]
async fn audit(e: &Envelope<Deposited>) -> Result<()> {
    if std::env::var_os("E2E_FAIL_AUDIT").is_some() {
        return Err(Error::handler(format!("the audit log refused deposit {}", e.header.event_id)));
    }
    Ok(())
}

/// The balance of each account, one document per account.
pub(crate) struct Balances;

#[projection(name = "balances")]
impl Balances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        if std::env::var("E2E_REFUSE").is_ok_and(|v| v == e.amount.to_string()) {
            return Err(Error::handler(format!("a deposit of {} is refused", e.amount)));
        }
        if e.amount == 7777 {
            wait_for_gate().await;
        }
        let amount = e.amount;
        tx.docs("balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("balances").clear().await
    }
}

/// Waits (at most two minutes) while the file named by `E2E_GATE` exists.
async fn wait_for_gate() {
    let Some(gate) = std::env::var_os("E2E_GATE") else { return };
    for _ in 0..12_000 {
        if !std::path::Path::new(&gate).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prepares an account statement; `fail` refuses it.
#[job(name = "statement")]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Statement {
    pub(crate) account: String,
    pub(crate) fail: bool,
}

impl JobHandler for Statement {
    type Output = String;
    async fn run(self, ctx: &mut JobContext) -> Result<String> {
        ctx.progress(1, 1).await?;
        if self.fail {
            return Err(Error::handler(format!("statement of {} refused", self.account)));
        }
        Ok(format!("statement of {}", self.account))
    }
}

fn app(db: &Database) -> Result<Mediator> {
    db.builder()
        .projection_with(
            Balances,
            cqrs_ddd::projection::WorkerOptions {
                batch_size: 50,
                error_policy: cqrs_ddd::projection::ErrorPolicy::RetryThenDeadLetter {
                    attempts: 0,
                    backoff: Duration::ZERO,
                },
                ..Default::default()
            },
        )
        .saga::<Welcome>()
        .relay_options(RelayOptions {
            max_attempts: 1,
            poll_interval: Duration::from_millis(20),
            ..RelayOptions::default()
        })
        .build()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("seed") {
        return match seed(&args[2..]).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("seed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    cqrs_ddd_cli::main(|db| async move { app(&db) }).await
}

/// `seed TENANT ACCOUNTS DEPOSITS`: opens accounts in the tenant (`-`: none), deposits
/// into them round robin (amount = the deposit's number, 7777 for the one half way),
/// schedules a deposit an hour from now, and runs the host until the outbox is empty
/// and every new saga has tried its command.
async fn seed(args: &[String]) -> Result<()> {
    let [tenant, accounts, deposits] = args else {
        return Err(Error::handler("usage: seed TENANT ACCOUNTS DEPOSITS"));
    };
    let tenant = (tenant != "-").then(|| tenant.clone());
    let accounts: u64 = accounts.parse().map_err(Error::handler)?;
    let deposits: u64 = deposits.parse().map_err(Error::handler)?;
    let url = std::env::var("DATABASE_URL").map_err(Error::handler)?;
    let schema = std::env::var("CQRS_DDD_SCHEMA").unwrap_or_else(|_| "public".to_owned());
    let db = Database::connect(&url, &schema).await?;
    db.migrate().await?;
    let app = app(&db)?;
    let prefix = tenant.clone().unwrap_or_else(|| "acc".to_owned());
    let context = RequestContext::new();
    let context = match &tenant {
        Some(t) => context.with_tenant(t),
        None => context,
    };
    context
        .scope(async {
            for a in 0..accounts {
                app.send(Open { id: format!("{prefix}-{a}"), owner: format!("owner {a}") }).await?;
            }
            for d in 1..=deposits {
                let amount = if d == deposits / 2 { 7777 } else { d };
                app.send(Deposit { id: format!("{prefix}-{}", d % accounts.max(1)), amount }).await?;
            }
            let at = chrono::Utc::now() + chrono::Duration::hours(1);
            app.schedule(&Deposit { id: format!("{prefix}-0"), amount: 1 }, at).await?;
            let account = format!("{prefix}-0");
            app.enqueue(Statement { account: account.clone(), fail: false }).await?;
            app.enqueue_with(Statement { account: account.clone(), fail: true }, JobOptions::attempts(1)).await?;
            app.enqueue_with(Statement { account, fail: false }, JobOptions::default().at(at)).await?;
            Ok::<_, Error>(())
        })
        .await?;
    // The host relays the outbox (sagas, the audit) until it is empty.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ran = JobWorker::new(app.clone()).run_once().await?;
    if (ran.completed, ran.failed) != (1, 1) {
        return Err(Error::handler(format!("the due jobs did not run as planned: {ran:?}")));
    }
    let host = tokio::spawn(app.clone().host().projections(false).jobs(false).run(async move {
        let _ = stopped.await;
    }));
    let outbox = app.outbox().ok_or_else(|| Error::handler("no outbox"))?;
    for _ in 0..6_000 {
        if outbox.counts().await?.pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    host.await.map_err(Error::handler)??;
    Ok(())
}
