//! Run with: cargo run -p example-library
//!
//! A library's loans with deadlines: lending a book schedules a reminder at day 14 and
//! declares the book lost at day 30, unless it comes back first (returning it cancels
//! both). The deadlines are stored with the loan's events, in the same transaction, on
//! SQLite (`library.db` in the working directory) unless `DATABASE_URL` names a
//! PostgreSQL or MariaDB database; they survive a restart.
//!
//! Thirty days do not pass in a demo: the application runs on a manual clock moved
//! forward by hand, and the scheduler is run once after each move. A real application
//! keeps the system clock and runs `app.run(shutdown)`, whose scheduler fires deadlines
//! when they are due.

mod domain;

use std::sync::Arc;

use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::EventStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd::scheduling::Scheduler;
use cqrs_ddd_sqlx::{MySqlStore, PgStore, SqliteStore};
use domain::{DAY, LendBook, Loan, ReturnBook};

#[tokio::main]
async fn main() -> Result<()> {
    let (store, place) = open_store().await?;
    println!("loans and their deadlines in {place}");
    let clock = ManualClock::default();
    let app = App::builder().event_store_arc(store).clock(clock.clone()).build()?;
    let outcome = run(&app, &clock, &format!("{}", cqrs_ddd::new_id())).await?;
    println!("{outcome:#?}");
    Ok(())
}

/// How the two loans of a run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// What the kept book's loan recorded.
    pub(crate) kept: Vec<String>,
    /// What the returned book's loan recorded.
    pub(crate) returned: Vec<String>,
    /// Deadlines fired on day 14 and on day 30.
    pub(crate) fired: (usize, usize),
}

/// Lends two books (their loan ids end in `run`), brings one back on day 3, then lets
/// 14 and 30 days pass.
pub(crate) async fn run(app: &Mediator, clock: &ManualClock, run: &str) -> Result<Outcome> {
    let (kept, returned) = (format!("dune-{run}"), format!("emma-{run}"));
    app.send(LendBook { loan: kept.clone(), title: "Dune".into(), member: "ada".into() }).await?;
    app.send(LendBook { loan: returned.clone(), title: "Emma".into(), member: "bob".into() }).await?;
    println!("day 0: Dune lent to ada, Emma to bob; four deadlines scheduled");

    clock.advance(3 * DAY);
    app.send(ReturnBook { loan: returned.clone() }).await?;
    println!("day 3: Emma is back; its reminder and loss are cancelled");

    let scheduler = Scheduler::new(app.clone());
    clock.advance(11 * DAY);
    let day_14 = scheduler.run_once().await?.sent;
    println!("day 14: {day_14} deadline fired (ada is reminded)");
    clock.advance(16 * DAY);
    let day_30 = scheduler.run_once().await?.sent;
    let lost = app.load::<Loan>(&kept).await?.state.is_lost();
    println!("day 30: {day_30} deadline fired (Dune lost: {lost})");

    Ok(Outcome { kept: events(app, &kept).await?, returned: events(app, &returned).await?, fired: (day_14, day_30) })
}

/// The types of a loan's events, in order.
async fn events(app: &Mediator, loan: &str) -> Result<Vec<String>> {
    use futures::TryStreamExt as _;
    let key = cqrs_ddd::ports::StreamKey::new("Loan", loan);
    let stream = app.event_store().read_stream(&key, 0).await?;
    stream.map_ok(|e| e.event_type).try_collect().await
}

/// SQLite next to the working directory, or PostgreSQL or MariaDB when `DATABASE_URL`
/// says so.
async fn open_store() -> Result<(Arc<dyn EventStore>, &'static str)> {
    Ok(match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("mysql") || url.starts_with("mariadb") => {
            let store = MySqlStore::connect(&url.replacen("mariadb", "mysql", 1)).await?;
            store.migrate().await?;
            (Arc::new(store), "MariaDB")
        }
        Ok(url) if url.starts_with("postgres") => {
            let store = PgStore::connect(&url).await?;
            store.migrate().await?;
            (Arc::new(store), "PostgreSQL")
        }
        _ => {
            let store = SqliteStore::connect("sqlite://library.db").await?;
            store.migrate().await?;
            (Arc::new(store), "SQLite (library.db)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(outcome: &Outcome) {
        assert_eq!(outcome.kept, ["BookLent", "MemberReminded", "BookLost"]);
        assert_eq!(outcome.returned, ["BookLent", "BookReturned"]);
        assert_eq!(outcome.fired, (1, 1));
    }

    #[tokio::test]
    async fn the_demo_reminds_and_loses_the_kept_book_only_in_memory() {
        let clock = ManualClock::default();
        let app = App::builder().clock(clock.clone()).build().unwrap();
        expected(&run(&app, &clock, "memory").await.unwrap());
    }

    #[tokio::test]
    async fn the_demo_keeps_its_deadlines_in_sqlite_across_a_restart() {
        let path = std::env::temp_dir().join(format!("library-{}.db", cqrs_ddd::new_id()));
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let clock = ManualClock::default();
        let app = App::builder().event_store(store.clone()).clock(clock.clone()).build().unwrap();
        app.send(LendBook { loan: "l-1".into(), title: "Dune".into(), member: "ada".into() }).await.unwrap();
        drop(app);

        // A new process on the same file.
        let app =
            App::builder().event_store(SqliteStore::connect(&url).await.unwrap()).clock(clock.clone()).build().unwrap();
        clock.advance(14 * DAY);
        assert_eq!(Scheduler::new(app.clone()).run_once().await.unwrap().sent, 1);
        assert_eq!(events(&app, "l-1").await.unwrap(), ["BookLent", "MemberReminded"]);
        clock.advance(16 * DAY);
        assert_eq!(Scheduler::new(app.clone()).run_once().await.unwrap().sent, 1);
        assert_eq!(events(&app, "l-1").await.unwrap(), ["BookLent", "MemberReminded", "BookLost"]);
        expected(&run(&app, &clock, "sqlite").await.unwrap());
        let _ = std::fs::remove_file(&path);
    }
}
