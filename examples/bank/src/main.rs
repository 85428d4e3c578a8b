//! Run with: cargo run -p example-bank
//!
//! A bank account, event-sourced: open, deposit, withdraw, an overdraft rejected with a
//! typed domain error, a balance query, and an event handler reacting to large deposits.

mod domain;

use std::sync::Arc;

use cqrs_ddd::ports::{Cursor, EventStore};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{MemoryStore, TracingMiddleware};
use domain::{Account, AccountError, Deposit, GetBalance, Notifier, OpenAccount, Withdraw};

#[tokio::main]
async fn main() -> Result<()> {
    let store = MemoryStore::new();
    let notifier = Arc::new(Notifier::default());
    let app = App::builder()
        .event_store(store.clone())
        .provide_arc(notifier.clone())
        .middleware(TracingMiddleware)
        .build()?;

    let id = "acc-1".to_owned();
    app.send(OpenAccount { id: id.clone(), owner: "Ada".into() }).await?;
    println!("opened {id} for Ada");
    app.send(Deposit { id: id.clone(), amount: 100 }).await?;
    println!("deposited 100");
    app.send(Deposit { id: id.clone(), amount: 5_000 }).await?;
    println!("deposited 5000");
    app.send(Withdraw { id: id.clone(), amount: 300 }).await?;
    println!("withdrew 300");

    match app.send(Withdraw { id: id.clone(), amount: 1_000_000 }).await {
        Err(e) => match e.domain_error::<AccountError>() {
            Some(AccountError::InsufficientFunds { balance, requested }) => {
                println!("rejected a withdrawal of {requested}: the balance is only {balance}");
            }
            _ => return Err(e),
        },
        Ok(()) => println!("an overdraft went through, which it must not"),
    }

    let balance = app.query(GetBalance { id: id.clone() }).await?;
    println!("balance of {id}: {balance}");

    for alert in notifier.alerts() {
        println!("event handler: {alert}");
    }

    println!("stored events:");
    for e in store.read_all(Cursor::START, 100).await? {
        println!("  #{} {} v{} {} {}", e.position, e.stream, e.version, e.event_type, e.payload);
    }
    let loaded = app.load::<Account>(&id).await?;
    println!("{id} is at version {} with balance {}", loaded.version, loaded.state.balance());
    Ok(())
}
