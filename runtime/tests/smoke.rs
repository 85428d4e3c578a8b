//! Smoke test: the bank domain end to end through the mediator.
mod common;
use common::*;
use cqrs_ddd::prelude::*;

#[tokio::test]
async fn open_deposit_withdraw() {
    let app = App::builder().build().unwrap();
    app.send(Open { account: "a".into(), owner: "ann".into() }).await.unwrap();
    app.send(Deposit { account: "a".into(), amount: 10 }).await.unwrap();
    app.send(Withdraw { account: "a".into(), amount: 3 }).await.unwrap();
    assert_eq!(app.query(GetBalance { account: "a".into() }).await.unwrap(), 7);
}
