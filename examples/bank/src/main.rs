//! Run with: cargo run -p example-bank             (a scripted tour)
//!       or: cargo run -p example-bank -- serve    (over HTTP)
//!       or: cargo run -p example-bank -- ops ..   (the operator tool, e.g. `ops projections list`)
//!
//! A bank account, event-sourced: open, deposit, withdraw, an overdraft rejected with a
//! typed domain error, a balance query, an event handler reacting to large deposits, a
//! balance projection (a read model kept exactly once), and an asynchronous event
//! handler fed by the transactional outbox; the projection and the outbox relay run in
//! the worker host.
//!
//! `serve` serves the same application over HTTP on `--bind ADDR` (else the `BIND`
//! variable, else 127.0.0.1:3000): commands at `POST /commands/{name}`, queries at
//! `GET /queries/{name}`, the read model at `GET /read-models/balances?filter=..`,
//! `/health/live`, `/health/ready`, `/metrics` and `/openapi.json`; Ctrl-C stops it
//! gracefully.
//!
//! The events go to SQLite (`bank.db` in the working directory) unless `DATABASE_URL`
//! names a PostgreSQL database (`postgres://postgres@127.0.0.1:5432/postgres`) or a
//! MariaDB/MySQL one (`mysql://root@127.0.0.1:3306/test`).

mod domain;

use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use clap::Parser as _;
use cqrs_ddd::cqrs::{Payload, SendOptions};
use cqrs_ddd::ports::{Cursor, EventStore, ProjectionStore, SnapshotStore};
use cqrs_ddd::prelude::*;
use cqrs_ddd::spec::{QueryOptions, ReadModel, parse_query};
use cqrs_ddd::{AppBuilder, MetricsMiddleware, SnapshotPolicy, TracingMiddleware};
use cqrs_ddd_axum::Api;
use cqrs_ddd_axum::metrics::PrometheusMetrics;
use cqrs_ddd_cli::Cli;
use cqrs_ddd_sqlx::{MySqlStore, PgStore, SqliteStore};
use domain::{Account, AccountError, BalanceView, Balances, Deposit, GetBalance, Notifier, OpenAccount, Withdraw};

/// The ports the example uses, all on one database.
struct Stores {
    events: Arc<dyn EventStore>,
    snapshots: Arc<dyn SnapshotStore>,
    projections: Arc<dyn ProjectionStore>,
    place: &'static str,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ops") {
        return ops(&args[1..]).await;
    }
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The application's wiring, whatever the store.
fn wire(builder: AppBuilder, notifier: Arc<Notifier>) -> Result<Mediator> {
    builder
        .snapshot::<Account>(SnapshotPolicy::every(100))
        .projection(Balances)
        .provide_arc(notifier)
        .middleware(TracingMiddleware)
        .middleware(MetricsMiddleware)
        .build()
}

/// `ops ..`: the operator tool (cqrs-ddd-cli) with this application's projection and
/// commands registered, on `DATABASE_URL` (else `bank.db`).
async fn ops(args: &[String]) -> ExitCode {
    let mut cli = Cli::parse_from(std::iter::once("example-bank ops").chain(args.iter().map(String::as_str)));
    cli.global.database_url.get_or_insert_with(|| "sqlite://bank.db?mode=rwc".to_owned());
    cli.run(|db| async move { wire(db.builder(), Arc::new(Notifier::default())) }).await
}

async fn run(args: &[String]) -> Result<()> {
    let stores = open_stores().await?;
    println!("storing events in {}", stores.place);
    let notifier = Arc::new(Notifier::default());
    // The projection and the async handler run in the worker host; the store is also
    // the outbox and the read models' document store.
    let builder = App::builder().event_store_arc(stores.events.clone()).snapshot_store_arc(stores.snapshots.clone());
    let app = wire(builder, notifier.clone())?;
    match args.first().map(String::as_str) {
        Some("serve") => serve(app, &args[1..]).await,
        None => tour(app, &stores, &notifier).await,
        Some(other) => Err(Error::handler(format!(
            "unknown command `{other}`; run without one, or `serve [--bind ADDR]`, or `ops --help`"
        ))),
    }
}

/// Serves the application over HTTP until Ctrl-C, with its workers.
async fn serve(app: Mediator, args: &[String]) -> Result<()> {
    let bind = match args {
        [] => std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned()),
        [flag, addr] if flag == "--bind" => addr.clone(),
        _ => return Err(Error::handler("usage: example-bank serve [--bind ADDR]")),
    };
    let metrics = PrometheusMetrics::install().map_err(Error::handler)?;
    let router = Api::new(app.clone())
        .info("bank", env!("CARGO_PKG_VERSION"))
        .commands()
        .queries()
        .read_model_with_schema::<BalanceView>()
        .health()
        .metrics(metrics)
        .openapi()
        .router();
    let listener = tokio::net::TcpListener::bind(&bind).await.map_err(Error::handler)?;
    let addr = listener.local_addr().map_err(Error::handler)?;
    println!("listening on http://{addr}");
    // Ctrl-C stops the server (after the requests in flight) and the workers (after
    // their round).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let host = tokio::spawn(app.host().run(until_stopped(stopped.clone())));
    axum::serve(listener, router).with_graceful_shutdown(until_stopped(stopped)).await.map_err(Error::handler)?;
    host.await.map_err(Error::handler)?
}

/// The scripted tour.
async fn tour(app: Mediator, stores: &Stores, notifier: &Notifier) -> Result<()> {
    let store = stores.events.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(app.clone().host().run(async move {
        let _ = stopped.await;
    }));
    println!("worker host running: {}", app.host().labels().join(", "));

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

    // The read model: the same command sent by name answers the position it committed,
    // and the hosted projection is awaited until it has read that far.
    let receipt = app
        .send_json("Deposit", Payload::Json(&format!(r#"{{"id": "{id}", "amount": 1}}"#)), SendOptions::default())
        .await?;
    let position = receipt.position.ok_or_else(|| Error::handler("a deposit commits an event"))?;
    app.wait_for_position("GetAccount", position, Duration::from_secs(10)).await?;
    let doc = stores.projections.document("balances", &id).await?.ok_or_else(|| Error::handler("no read model"))?;
    let view: BalanceView = serde_json::from_str(&doc.json).map_err(Error::handler)?;
    println!(
        "read model of {id} at position {position}: owner {}, balance {}, {} movements",
        view.owner, view.balance, view.movements
    );

    // The read model answers specifications: in code, and from an HTTP filter string
    // checked against what callers may filter and sort on.
    // The index the read model declares is built once (an expression index on
    // PostgreSQL and SQLite); the query below is compiled to SQL on the SQL stores.
    for index in BalanceView::indexes() {
        stores.projections.ensure_index(BalanceView::COLLECTION, &index).await?;
    }
    let view = BalanceView::fields();
    let funded = QueryOptions::new().filter(view.balance.gt(0u64)).order(view.balance.desc());
    let rich = stores.projections.find(BalanceView::COLLECTION, &funded).await?;
    println!("accounts with money: {}", rich.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", "));
    let from_http =
        parse_query([("filter", "balance:gte:10,owner:eq:Ada"), ("sort", "-balance")], &BalanceView::allow_list())
            .map_err(Error::handler)?;
    println!(
        "accounts matching `balance:gte:10,owner:eq:Ada`: {}",
        stores.projections.count(BalanceView::COLLECTION, &from_http).await?
    );
    let refused = parse_query([("filter", "ownr:eq:Ada")], &BalanceView::allow_list()).map(|_| ());
    if let Err(e) = refused {
        println!("a filter on a field callers may not use is refused: {e}");
    }

    // The outbox: the host's relay hands the withdrawal to the asynchronous handler.
    for _ in 0..1_000 {
        if notifier.alerts().iter().any(|a| a.contains("via the outbox")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for alert in notifier.alerts() {
        println!("event handler: {alert}");
    }
    println!("health: {}", serde_json::to_string(&app.health().await).map_err(Error::handler)?);

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

    // Graceful shutdown: each loop finishes its round.
    let _ = stop.send(());
    host.await.map_err(Error::handler)??;
    Ok(())
}

/// SQLite next to the working directory, or PostgreSQL or MariaDB when `DATABASE_URL`
/// says so.
async fn open_stores() -> Result<Stores> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("mysql") || url.starts_with("mariadb") => {
            let store = MySqlStore::connect(&url.replacen("mariadb", "mysql", 1)).await?;
            store.migrate().await?;
            Ok(Stores {
                events: Arc::new(store.clone()),
                snapshots: Arc::new(store.clone()),
                projections: Arc::new(store),
                place: "MariaDB",
            })
        }
        Ok(url) if url.starts_with("postgres") => {
            let store = PgStore::connect(&url).await?;
            store.migrate().await?;
            Ok(Stores {
                events: Arc::new(store.clone()),
                snapshots: Arc::new(store.clone()),
                projections: Arc::new(store),
                place: "PostgreSQL",
            })
        }
        _ => {
            let store = SqliteStore::connect("sqlite://bank.db").await?;
            store.migrate().await?;
            Ok(Stores {
                events: Arc::new(store.clone()),
                snapshots: Arc::new(store.clone()),
                projections: Arc::new(store),
                place: "SQLite (bank.db)",
            })
        }
    }
}
