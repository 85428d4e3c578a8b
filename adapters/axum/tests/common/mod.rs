//! The domain the HTTP tests serve (a bank account), and helpers to call a router.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use cqrs_ddd::middleware::Validate;
use cqrs_ddd::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposited {
    pub amount: u64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdrew {
    pub amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
pub enum AccountError {
    #[error("insufficient funds: the balance is {balance}, {asked} was asked")]
    Overdraft { balance: u64, asked: u64 },
}

#[aggregate(id = String, events(Deposited, Withdrew), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[handle(create)]
    fn open(&self, cmd: &Open) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.initial }.into()])
    }

    #[handle]
    fn withdraw(&self, cmd: &Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount > self.balance {
            return Err(AccountError::Overdraft { balance: self.balance, asked: cmd.amount });
        }
        Ok(vec![Withdrew { amount: cmd.amount }.into()])
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

/// Deposits into an account, opening it if needed.
#[command(aggregate = Account)]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Deposit {
    #[id]
    pub account: String,
    pub amount: u64,
}

impl Validate for Deposit {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.amount == 0 { Err("a deposit takes an amount above zero".to_owned()) } else { Ok(()) }
    }
}

/// Opens an account that must not exist yet.
#[command(aggregate = Account)]
#[derive(Debug, Deserialize)]
pub struct Open {
    #[id]
    pub account: String,
    pub initial: u64,
}

/// Withdraws from an existing account.
#[command(aggregate = Account)]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Withdraw {
    #[id]
    pub account: String,
    pub amount: u64,
}

/// Fails the way a backend does, to see how each error is answered.
#[command(response = String)]
#[derive(Debug, Deserialize)]
pub struct Fail {
    pub how: String,
}

#[command_handler]
async fn fail(cmd: Fail, _ctx: &mut CommandContext) -> Result<String> {
    Err(match cmd.how.as_str() {
        "conflict" => Error::Conflict { stream: "Account/a".into(), expected: 1, actual: 2 },
        "store" => Error::store("connection reset by peer (secret internals)"),
        "tenant" => Error::Tenant(cqrs_ddd::TenantError::Empty),
        _ => Error::handler("a handler's own failure with private details"),
    })
}

/// Who asks, as the handler sees it.
#[command(response = Value)]
#[derive(Debug, Deserialize)]
pub struct Whoami {}

#[command_handler]
async fn whoami(_cmd: Whoami, ctx: &mut CommandContext) -> Result<Value> {
    let request = cqrs_ddd::RequestContext::current().unwrap_or_default();
    let _ = ctx;
    Ok(json!({
        "tenant": request.tenant_id,
        "principal": request.principal,
        "correlation_id": request.correlation_id.to_string(),
    }))
}

/// The balance of an account, from the aggregate.
#[query]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GetBalance {
    pub account: String,
}

#[query_handler]
async fn get_balance(q: GetBalance, ctx: &QueryContext) -> Result<u64> {
    Ok(ctx.load::<Account>(&q.account).await?.state.balance)
}

/// The balance of an account, from the read model.
#[query(reads = Balances)]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BalanceOf {
    pub account: String,
}

#[query_handler]
async fn balance_of(q: BalanceOf, ctx: &QueryContext) -> Result<Option<BalanceView>> {
    match ctx.read_models()?.get("balances", &q.account).await? {
        Some(doc) => Ok(Some(serde_json::from_str(&doc.json).map_err(Error::handler)?)),
        None => Ok(None),
    }
}

/// One account's balance, as the projection keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ReadModel, utoipa::ToSchema)]
#[read_model(collection = "balances")]
pub struct BalanceView {
    #[read_model(filter, sort, select)]
    pub account: String,
    #[read_model(filter(eq, gt, ge, lt, le), sort, select)]
    pub balance: u64,
}

pub struct Balances;

#[projection(name = "balances")]
impl Balances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let (account, amount) = (e.header.stream_id.clone(), e.amount);
        tx.docs("balances")
            .update(&e.header.stream_id, |b: &mut BalanceView| {
                b.account = account;
                b.balance += amount;
            })
            .await?;
        Ok(())
    }

    #[on]
    async fn withdrew(&self, e: &Envelope<Withdrew>, tx: &mut ProjectionTx) -> Result<()> {
        let (account, amount) = (e.header.stream_id.clone(), e.amount);
        tx.docs("balances")
            .update(&e.header.stream_id, |b: &mut BalanceView| {
                b.account = account;
                b.balance -= amount;
            })
            .await?;
        Ok(())
    }
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem of `type_suffix` (after `/problems/`) with `status`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, type_suffix: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        assert_eq!(self.body["type"], format!("https://cqrs-ddd.dev/problems/{type_suffix}"), "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.header("x-correlation-id").is_some(), "every answer carries its correlation id: {self:?}");
    }
}

/// Calls `router` once with `request`.
pub async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer { status, headers, body }
}

/// `POST path` with a JSON body and extra headers.
pub fn post(path: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

/// `GET path` with extra headers.
pub fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(Body::empty()).unwrap()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token with `claims` signed by `key` with `alg` (and `kid`, if given).
pub fn token(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(ToOwned::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("a token")
}

/// Claims for `sub` valid for an hour, with extra members.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "iat": now(), "exp": now() + 3600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The PostgreSQL server tests use (`DATABASE_URL`).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}
