//! What the admin page's tests share: a projection that refuses an amount while a fault
//! is on (so that it leaves a dead letter), the router, and operators' tokens.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::{ErrorPolicy, WorkerOptions};
use cqrs_ddd_axum::admin::AdminPage;
use cqrs_ddd_axum::{Api, ContextLayer, JwtConfig};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::common::{Deposit, Deposited, claims, token};

pub const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

/// The amount [`Picky`] refuses while its fault is on.
pub const UNLUCKY: u64 = 13;

/// Totals deposits per account, but fails on [`UNLUCKY`] while `fault` is on.
pub struct Picky {
    pub fault: Arc<AtomicBool>,
}

#[projection(name = "picky")]
impl Picky {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        if e.amount == UNLUCKY && self.fault.load(Ordering::SeqCst) {
            return Err(Error::handler("the unlucky amount is refused while the fault is on"));
        }
        let amount = e.amount;
        tx.docs("picky").update(&e.header.stream_id, |total: &mut u64| *total += amount).await?;
        Ok(())
    }
}

// ---- a saga whose commands can be refused -----------------------------------------

/// Deposits go through the outbox too (an asynchronous handler reads them).
#[event_handler(async)]
async fn notify(_e: &Envelope<Deposited>) -> Result<()> {
    Ok(())
}

/// What the payout commands did, and whether they are refused ("the bank is closed").
#[derive(Default)]
pub struct Payments {
    pub refuse: AtomicBool,
    sent: Mutex<Vec<String>>,
}

impl Payments {
    fn record(&self, call: String) -> Result<()> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(Error::handler(format!("{call} refused: the bank is closed")));
        }
        self.sent.lock().unwrap().push(call);
        Ok(())
    }

    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayoutAsked {
    pub account: String,
}

#[command]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reserve {
    pub account: String,
}

#[command]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub account: String,
}

#[command_handler]
async fn reserve(cmd: Reserve, _ctx: &mut CommandContext, payments: Dep<Payments>) -> Result<()> {
    payments.record(format!("Reserve({})", cmd.account))
}

#[command_handler]
async fn release(cmd: Release, _ctx: &mut CommandContext, payments: Dep<Payments>) -> Result<()> {
    payments.record(format!("Release({})", cmd.account))
}

#[saga(name = "payout", associate = account)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Payout {
    asked: u32,
}

#[saga]
impl Payout {
    #[step(start, send = Reserve, compensate = Release)]
    fn asked(&mut self, e: &PayoutAsked) -> (Reserve, Release) {
        self.asked += 1;
        (Reserve { account: e.account.clone() }, Release { account: e.account.clone() })
    }
}

// ---- the application ------------------------------------------------------------------

/// An application on the in-memory stores with the `payout` saga (its commands recorded
/// in `payments`) and scheduled commands, whose first projection is [`Picky`], failing
/// while `fault` is on and dead-lettering what it fails on.
pub fn builder(fault: &Arc<AtomicBool>, payments: &Arc<Payments>) -> cqrs_ddd::AppBuilder {
    App::builder()
        .event_store(cqrs_ddd::MemoryStore::new())
        .read_models(cqrs_ddd::MemoryProjectionStore::new())
        .saga_store(cqrs_ddd::memory::MemorySagaStore::new())
        .schedule_store(cqrs_ddd::memory::MemoryScheduleStore::new())
        .provide_arc(payments.clone())
        .projection_with(Picky { fault: fault.clone() }, dead_lettering())
}

/// Starts a `payout` saga for `account`.
pub async fn ask_payout(app: &Mediator, account: &str) -> Result<()> {
    let asked = cqrs_ddd::testing::envelope(PayoutAsked { account: account.into() });
    app.sagas().handle::<Payout, PayoutAsked>(&asked).await
}

/// Deposits 1 `count` times over `accounts` accounts in turn (`a-0`, `a-1`, ..), but
/// [`UNLUCKY`] the `unlucky`th time (from 0).
pub async fn deposits(app: &Mediator, count: u64, accounts: u64, unlucky: u64) {
    for n in 0..count {
        let amount = if n == unlucky { UNLUCKY } else { 1 };
        app.send(Deposit { account: format!("a-{}", n % accounts), amount }).await.expect("a deposit");
    }
}

/// A worker that records an event it fails on as a dead letter at once.
pub fn dead_lettering() -> WorkerOptions {
    WorkerOptions {
        error_policy: ErrorPolicy::RetryThenDeadLetter { attempts: 0, backoff: Duration::ZERO },
        ..WorkerOptions::default()
    }
}

/// The application's API with the admin page, behind tokens signed with [`SECRET`].
pub fn router(app: Mediator, page: AdminPage) -> Router {
    Api::new(app).context(ContextLayer::new().jwt(JwtConfig::hs256(SECRET))).admin(page).router()
}

/// A token for `sub` with more claims.
pub fn token_with(sub: &str, extra: Value) -> String {
    token(Algorithm::HS256, &EncodingKey::from_secret(SECRET), None, &claims(sub, extra))
}

/// An operator's token with the `admin` role, of `tenant` when given.
pub fn admin_token(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => token_with("ops", json!({"roles": ["admin"], "tenant": t})),
        None => token_with("ops", json!({"roles": ["admin"]})),
    }
}

/// Prepares a statement of an account; refused for the account `closed`.
#[job(name = "statement")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Statement {
    pub account: String,
}

impl JobHandler for Statement {
    type Output = String;
    async fn run(self, _ctx: &mut JobContext) -> Result<String> {
        if self.account == "closed" {
            return Err(Error::handler("the account is closed"));
        }
        Ok(format!("statement of {}", self.account))
    }
}
