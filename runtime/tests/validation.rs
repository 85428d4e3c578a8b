//! `#[command(validate)]` and `#[query(validate)]`: the type's `garde::Validate` derive
//! runs before anything else, and a refusal lists every field that failed.

use cqrs_ddd::InvalidField;
use cqrs_ddd::cqrs::{Payload, SendOptions};
use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
enum Never {}

#[aggregate(id = String, events(Deposited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Deposited { amount: c.amount }.into()])
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[command(aggregate = Account, validate)]
#[derive(Deserialize, garde::Validate)]
struct Deposit {
    #[id]
    #[garde(length(min = 3))]
    account: String,
    #[garde(range(min = 1, max = 1000))]
    amount: u64,
    #[garde(length(max = 2), inner(length(min = 1)))]
    tags: Vec<String>,
}

/// A handler command sending a deposit: the nested send is validated too.
#[command(validate)]
#[derive(garde::Validate)]
struct DepositTwice {
    #[garde(skip)]
    account: String,
    #[garde(range(min = 1))]
    amount: u64,
}

#[command_handler]
async fn deposit_twice(c: DepositTwice, ctx: &mut CommandContext) -> Result<()> {
    let deposit = |amount| Deposit { account: c.account.clone(), amount, tags: Vec::new() };
    ctx.send(deposit(c.amount)).await?;
    ctx.send(deposit(c.amount * 1000)).await
}

#[query(validate)]
#[derive(garde::Validate)]
struct Balance {
    #[garde(length(min = 3))]
    account: String,
}

#[query_handler]
async fn balance(q: Balance, ctx: &QueryContext) -> Result<u64> {
    Ok(ctx.load::<Account>(&q.account).await?.state.balance)
}

fn fields(err: &Error) -> Vec<(&str, &str)> {
    match err {
        Error::Validation { fields, .. } => fields.iter().map(|f| (f.path.as_str(), f.message.as_str())).collect(),
        other => panic!("not a validation error: {other}"),
    }
}

#[tokio::test]
async fn every_failing_field_is_listed_and_nothing_is_written() {
    let app = App::builder().build().unwrap();
    let bad = Deposit { account: "a".into(), amount: 0, tags: vec!["x".into(), String::new(), "z".into()] };
    let err = app.send(bad).await.unwrap_err();
    let failed = fields(&err);
    let paths: Vec<&str> = failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths, ["account", "amount", "tags", "tags[1]"], "{err}");
    assert!(failed[0].1.contains('3'), "{failed:?}");
    let Error::Validation { message, reason, .. } = &err else { unreachable!() };
    assert_eq!(*message, "Deposit");
    assert!(reason.contains("account:") && reason.contains("amount:"), "{reason}");
    assert!(app.event_store().read_all(cqrs_ddd::ports::Cursor::START, 10).await.unwrap().is_empty());

    app.send(Deposit { account: "acc".into(), amount: 5, tags: vec!["vip".into()] }).await.unwrap();
    assert_eq!(app.query(Balance { account: "acc".into() }).await.unwrap(), 5);
    let err = app.query(Balance { account: "a".into() }).await.unwrap_err();
    assert_eq!(fields(&err), [("account", fields(&err)[0].1)]);
}

#[tokio::test]
async fn a_nested_send_is_validated_and_rolls_the_unit_of_work_back() {
    let app = App::builder().build().unwrap();
    let err = app.send(DepositTwice { account: "acc".into(), amount: 5 }).await.unwrap_err();
    assert_eq!(fields(&err).iter().map(|(p, _)| *p).collect::<Vec<_>>(), ["amount"], "5000 is over the range");
    assert!(app.event_store().read_all(cqrs_ddd::ports::Cursor::START, 10).await.unwrap().is_empty());
    assert!(matches!(
        app.send(DepositTwice { account: "acc".into(), amount: 0 }).await,
        Err(Error::Validation { message: "DepositTwice", .. })
    ));
}

#[tokio::test]
async fn a_command_sent_by_name_is_validated_after_it_decodes() {
    let app = App::builder().build().unwrap();
    let err = app
        .send_json("Deposit", Payload::Json(r#"{"account": "a", "amount": 5, "tags": []}"#), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(fields(&err).iter().map(|(p, _)| *p).collect::<Vec<_>>(), ["account"]);
    let invalid = Error::invalid("X", [("a".to_owned(), "too short".to_owned())]);
    assert_eq!(invalid.to_string(), "invalid X: a: too short");
    let Error::Validation { fields, .. } = invalid else { unreachable!() };
    assert_eq!(fields, [InvalidField { path: "a".into(), message: "too short".into() }]);
}
