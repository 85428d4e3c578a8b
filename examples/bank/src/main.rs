//! Run with: cargo run -p example-bank
//!
//! A bank account, event-sourced: open, deposit, withdraw, an overdraft rejected with a
//! typed domain error, a balance query, and an event handler reacting to large deposits.
//!
//! The events go to SQLite (`bank.db` in the working directory) unless `DATABASE_URL`
//! names a PostgreSQL database (`postgres://postgres@127.0.0.1:5432/postgres`).

mod domain;

use std::sync::Arc;

use cqrs_ddd::ports::{Cursor, EventStore, SnapshotStore};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{SnapshotPolicy, TracingMiddleware};
use cqrs_ddd_sqlx::{PgStore, SqliteStore};
use domain::{Account, AccountError, Deposit, GetBalance, Notifier, OpenAccount, Withdraw};

#[tokio::main]
async fn main() -> Result<()> {
    let (store, snapshots, place) = open_store().await?;
    println!("storing events in {place}");
    let notifier = Arc::new(Notifier::default());
    let app = App::builder()
        .event_store_arc(store.clone())
        .snapshot_store_arc(snapshots)
        .snapshot::<Account>(SnapshotPolicy::every(100))
        .provide_arc(notifier.clone())
        .middleware(TracingMiddleware)
        .build()?;

    // A fresh account per run, so the example can run again on the same database.
    let id = format!("acc-{}", cqrs_ddd::new_id().simple());
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

    println!("stored events of {id}:");
    let mut cursor = Cursor::START;
    loop {
        let page = store.read_all(cursor, 500).await?;
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        for e in page.iter().filter(|e| e.stream.stream_id == id) {
            println!("  #{} v{} {} {}", e.position, e.version, e.event_type, e.payload);
        }
    }
    let loaded = app.load::<Account>(&id).await?;
    println!("{id} is at version {} with balance {}", loaded.version, loaded.state.balance());
    Ok(())
}

/// SQLite next to the working directory, or PostgreSQL when `DATABASE_URL` says so.
async fn open_store() -> Result<(Arc<dyn EventStore>, Arc<dyn SnapshotStore>, String)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let store = PgStore::connect(&url).await?;
            store.migrate().await?;
            Ok((Arc::new(store.clone()), Arc::new(store), "PostgreSQL".to_owned()))
        }
        _ => {
            let store = SqliteStore::connect("sqlite://bank.db").await?;
            store.migrate().await?;
            Ok((Arc::new(store.clone()), Arc::new(store), "SQLite (bank.db)".to_owned()))
        }
    }
}
