//! Run with: cargo run -p example-orders
//!
//! Order fulfilment with a saga: reserve stock → charge payment → confirm. Three orders
//! go through it: one is confirmed; one is paid with a card that is declined, so the
//! saga compensates (releases the stock, cancels the order, last step first); one asks
//! for more than is in stock, so the saga fails at once and cancels the order.
//!
//! Events reach the saga through the transactional outbox and a relay; the saga's
//! commands are stored with its state before they are sent, and a recovery worker
//! sends whatever a crash left unsent.
//!
//! Everything is kept in SQLite (`orders.db` in the working directory) unless
//! `DATABASE_URL` names a PostgreSQL database (`postgres://postgres@127.0.0.1:5432/postgres`)
//! or a MariaDB/MySQL one (`mysql://root@127.0.0.1:3306/test`).

mod domain;

use std::time::Duration;

use cqrs_ddd::ports::{EventStore, Outbox, SagaStore, ScheduleStore};
use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::{CommandKind, SagaInstance};
use cqrs_ddd_sqlx::{MySqlStore, PgStore, SqliteStore};
use domain::{Fulfilment, Order, PlaceOrder, Restock, Stock};

#[tokio::main]
async fn main() -> Result<()> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let store = PgStore::connect(&url).await?;
            store.migrate().await?;
            run(store, "PostgreSQL").await
        }
        Ok(url) if url.starts_with("mysql") || url.starts_with("mariadb") => {
            let store = MySqlStore::connect(&url.replacen("mariadb", "mysql", 1)).await?;
            store.migrate().await?;
            run(store, "MariaDB").await
        }
        _ => {
            let store = SqliteStore::connect("sqlite://orders.db").await?;
            store.migrate().await?;
            run(store, "SQLite (orders.db)").await
        }
    }
}

async fn run<S>(store: S, place: &str) -> Result<()>
where
    S: EventStore + Outbox + SagaStore + ScheduleStore + Clone,
{
    println!("keeping events, sagas and schedules in {place}");
    let app = App::builder().event_store(store.clone()).sagas_on(store.clone()).build()?;

    // The background workers the wiring implies (the outbox relay feeding the saga, saga
    // recovery with its deadlines), as a service runs them: one call, one shutdown.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(app.clone().host().run(async move {
        let _ = stopped.await;
    }));

    // Fresh ids per run, so the example can run again on the same database.
    let run_id = cqrs_ddd::new_id().simple().to_string();
    let sku = format!("lamp-{}", &run_id[20..]);
    app.send(Restock { sku: sku.clone(), quantity: 10 }).await?;
    println!("{sku}: 10 in stock\n");

    let orders = [
        ("a", 3, "4242 4242 4242 4242", "paid with a good card"),
        ("b", 2, "4000 0000 0000 0002", "paid with a card that is declined"),
        ("c", 50, "4242 4242 4242 4242", "more than is in stock"),
    ];
    for (suffix, quantity, card, what) in orders {
        let order_id = format!("order-{suffix}-{}", &run_id[20..]);
        println!("{order_id}: {quantity} × {sku}, {what}");
        let place = PlaceOrder {
            order_id: order_id.clone(),
            sku: sku.clone(),
            quantity,
            amount: 25 * u64::from(quantity),
            card: card.to_owned(),
        };
        app.send(place).await?;
        let saga = finished(&app, &order_id).await?;
        print_saga(&saga);
        if let Some(problem) = saga.state::<Fulfilment>()?.problem() {
            println!("  because: {problem}");
        }
        let order = app.load::<Order>(&order_id).await?;
        let stock = app.load::<Stock>(&sku).await?;
        println!("  order {}; {} in stock\n", order.state.status(), stock.state.available());
    }

    let _ = stop.send(());
    host.await.map_err(Error::handler)??;
    Ok(())
}

/// Waits until the order's saga has finished (completed, compensated or failed).
async fn finished(app: &Mediator, order_id: &str) -> Result<SagaInstance> {
    for _ in 0..200 {
        if let Some(saga) = app.sagas().find::<Fulfilment>(order_id).await?
            && saga.status().is_finished()
        {
            return Ok(saga);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::handler(format!("the saga of {order_id} did not finish within 10 s")))
}

fn print_saga(saga: &SagaInstance) {
    for c in saga.commands() {
        let why = match c.kind {
            CommandKind::Action => "sent",
            CommandKind::Confirm => "confirmed",
            CommandKind::Compensation => "compensated",
            CommandKind::Cancel => "cancelled",
        };
        let why = if c.dispatched { why } else { "did not send" };
        println!("  saga step `{}` {why} {}", c.step, c.command_type);
    }
    match saga.error() {
        Some(error) => println!("  saga {}: {error}", saga.status()),
        None => println!("  saga {}", saga.status()),
    }
}
