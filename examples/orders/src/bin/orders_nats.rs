//! The orders example split into processes that talk over NATS JetStream, on one
//! PostgreSQL database:
//!
//! - `api` places the orders (the commands a web service would send) and runs the
//!   outbox relay, which publishes every committed event to NATS;
//! - `sagas` consumes the events as the consumer group `sagas`: the fulfilment saga
//!   reacts and sends its commands (stored first, recovered after a crash);
//! - `projections` keeps the `order_board` read model, woken by each event NATS carries
//!   and reading the event store.
//!
//! One process each, in three terminals (start `api` last):
//!
//! ```text
//! cargo run -p example-orders --bin orders_nats -- sagas
//! cargo run -p example-orders --bin orders_nats -- projections
//! cargo run -p example-orders --bin orders_nats -- api
//! ```
//!
//! or all three from one command (`all`, the default): `cargo run -p example-orders --bin
//! orders_nats`. `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and `NATS_URL` (default `nats://127.0.0.1:4222`) say where the services are; the
//! tables live in the schema `orders_nats`.

#[path = "../domain.rs"]
mod domain;

use std::process::{Child, Command};
use std::time::Duration;

use cqrs_ddd::broker::ConsumerOptions;
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::WorkerOptions;
use cqrs_ddd::saga::SagaInstance;
use cqrs_ddd_nats::Nats;
use cqrs_ddd_sqlx::{PgOptions, PgStore};
use domain::{Fulfilment, Order, OrderCancelled, OrderConfirmed, OrderPlaced, PlaceOrder, Restock, Stock};

/// One line per order on the board.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BoardEntry {
    sku: String,
    quantity: u32,
    status: String,
}

/// The `order_board` read model.
struct Board;

#[projection(name = "order_board")]
impl Board {
    #[on]
    async fn placed(&self, e: &Envelope<OrderPlaced>, tx: &mut ProjectionTx) -> Result<()> {
        let entry = BoardEntry { sku: e.sku.clone(), quantity: e.quantity, status: "placed".into() };
        tx.docs("order_board").put(&e.order_id, &entry).await?;
        Ok(())
    }

    #[on]
    async fn confirmed(&self, e: &Envelope<OrderConfirmed>, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("order_board").update(&e.order_id, |b: &mut BoardEntry| b.status = "confirmed".into()).await?;
        Ok(())
    }

    #[on]
    async fn cancelled(&self, e: &Envelope<OrderCancelled>, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("order_board").update(&e.order_id, |b: &mut BoardEntry| b.status = "cancelled".into()).await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> Result<()> {
        tx.docs("order_board").clear().await
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let role = std::env::args().nth(1).unwrap_or_else(|| "all".to_owned());
    let database =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let store = PgStore::connect_with(PgOptions::new(database).schema("orders_nats")).await?;
    store.migrate().await?;
    let nats = Nats::connect(&nats_url).await?.prefix("orders");
    let builder = App::builder().event_store(store.clone()).sagas_on(store.clone()).bus(nats.clone());
    // The projection worker reads the event store when NATS says there is something new.
    let app = match role.as_str() {
        "projections" => {
            let wake = WorkerOptions { wake: Some(nats.wake_on_events().await?), ..WorkerOptions::default() };
            builder.projection_with(Board, wake).build()?
        }
        _ => builder.projection(Board).build()?,
    };
    match role.as_str() {
        "api" => api(&app, &store).await,
        "sagas" => sagas(&app, until_ctrl_c()).await,
        "projections" => projections(&app, until_ctrl_c()).await,
        "all" => all(&app, &store).await,
        other => Err(Error::handler(format!("unknown role `{other}`: api, sagas, projections or all"))),
    }
}

async fn until_ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The saga worker: consumes events as the group `sagas`, and sends what a crash left
/// (saga recovery).
async fn sagas(app: &Mediator, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    println!("[sagas] consuming");
    let host = app.host().relay(false).projections(false).consume(Some(ConsumerOptions::group("sagas")));
    host.run(shutdown).await
}

/// The projection worker.
async fn projections(app: &Mediator, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    println!("[projections] keeping order_board");
    app.host().relay(false).scheduler(false).consume(None).run(shutdown).await
}

/// The API process: places three orders, relays the outbox to NATS, and shows what the
/// other processes made of them.
async fn api(app: &Mediator, store: &PgStore) -> Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = app.host().projections(false).scheduler(false).consume(None).run(async move {
        let _ = stopped.await;
    });
    let relay = tokio::spawn(relay);

    let run = cqrs_ddd::new_id().simple().to_string();
    let sku = format!("lamp-{}", &run[20..]);
    app.send(Restock { sku: sku.clone(), quantity: 10 }).await?;
    println!("[api] {sku}: 10 in stock");
    let orders = [("a", 3, "4242 4242 4242 4242"), ("b", 2, "4000 0000 0000 0002"), ("c", 50, "4242 4242 4242 4242")];
    for (suffix, quantity, card) in orders {
        let order_id = format!("order-{suffix}-{}", &run[20..]);
        let amount = 25 * u64::from(quantity);
        app.send(PlaceOrder { order_id: order_id.clone(), sku: sku.clone(), quantity, amount, card: card.into() })
            .await?;
        println!("[api] placed {order_id}: {quantity} × {sku}");
    }
    for (suffix, ..) in orders {
        let order_id = format!("order-{suffix}-{}", &run[20..]);
        let (saga, board) = settled(app, store, &order_id).await?;
        let order = app.load::<Order>(&order_id).await?;
        println!(
            "[api] {order_id}: saga {}, order {}, on the board: {} ({} × {})",
            saga.status(),
            order.state.status(),
            board.status,
            board.quantity,
            board.sku
        );
        if let Some(problem) = saga.state::<Fulfilment>()?.problem() {
            println!("[api]   because: {problem}");
        }
    }
    println!("[api] {sku}: {} in stock", app.load::<Stock>(&sku).await?.state.available());
    let _ = stop.send(());
    relay.await.map_err(Error::handler)?
}

/// Waits until the order's saga finished and the board shows its final status.
async fn settled(app: &Mediator, store: &PgStore, order_id: &str) -> Result<(SagaInstance, BoardEntry)> {
    use cqrs_ddd::ports::ProjectionStore;
    for _ in 0..600 {
        let saga = app.sagas().find::<Fulfilment>(order_id).await?;
        let board = store.document("order_board", order_id).await?;
        if let (Some(saga), Some(doc)) = (saga, board) {
            let entry: BoardEntry = serde_json::from_str(&doc.json).map_err(Error::handler)?;
            if saga.status().is_finished() && entry.status != "placed" {
                return Ok((saga, entry));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::handler(format!(
        "{order_id} did not settle within a minute: are the sagas and projections processes running?"
    )))
}

/// All three: the saga and projection processes as children of this one.
async fn all(app: &Mediator, store: &PgStore) -> Result<()> {
    let exe = std::env::current_exe().map_err(Error::handler)?;
    let spawn = |role: &str| Command::new(&exe).arg(role).spawn().map_err(Error::handler);
    let mut children: Vec<Child> = vec![spawn("sagas")?, spawn("projections")?];
    let result = api(app, store).await;
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}
