//! cqrs-ddd in memory: `App::builder()` on the in-memory event store, every command
//! through `Mediator::send`, as an application runs it.

use chrono::Utc;
use cqrs_ddd::ports::{CommitBatch, EventStore, NewEvent, StreamAppend, StreamKey};
use cqrs_ddd::{Aggregate, AggregateEvent, App, Mediator, MemoryStore, Metadata, new_id};

use crate::domain::ours::{Account, AccountEvent, Deposit, Deposited, Noop, noop};
use crate::error::BenchError;
use crate::measure::{Outcome, per_call_ns, sequential, window};
use crate::scenarios::{MEDIATOR_DIRECT, MEDIATOR_SEND, MEM_LONG, MEM_SPREAD, Workload};
use crate::stats::count_f64;

const ME: &str = "cqrs-ddd";

/// The application as one on a hot path builds it: in-memory store and the aggregate
/// cache (`AppBuilder::aggregate_cache`), so a command on an aggregate the process already
/// holds does not replay its stream. cqrs-es has no equivalent: it replays every time.
fn app(store: MemoryStore) -> Result<Mediator, BenchError> {
    App::builder()
        .event_store(store)
        .aggregate_cache(CACHED_AGGREGATES)
        .build()
        .map_err(|e| BenchError::framework(ME, "App::build", e))
}

/// Enough for every aggregate of scenario 1.
const CACHED_AGGREGATES: usize = 20_000;

async fn deposit(app: &Mediator, account: &str) -> Result<(), BenchError> {
    app.send(Deposit { account: account.to_owned(), amount: 1 }).await.map_err(|e| BenchError::framework(ME, "send", e))
}

async fn check_balance(app: &Mediator, account: &str, expected: usize) -> Result<(), BenchError> {
    let loaded = app.load::<Account>(&account.to_owned()).await.map_err(|e| BenchError::framework(ME, "load", e))?;
    let balance = loaded.state.balance();
    if usize::try_from(balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("{ME}: {account} has balance {balance}, expected {expected}")));
    }
    Ok(())
}

/// Scenario 1: many aggregates, few commands each, round robin.
pub(crate) async fn spread(w: &Workload) -> Result<Outcome, BenchError> {
    let app = app(MemoryStore::new())?;
    let ids: Vec<String> = (0..w.spread_aggregates).map(|a| format!("acc-{a}")).collect();
    let n = w.spread_aggregates * w.spread_commands_each;
    let lat = sequential(n, async |k| deposit(&app, &ids[k % ids.len()]).await).await?;
    check_balance(&app, &ids[0], w.spread_commands_each).await?;
    let mut out = Outcome::default();
    out.rates(MEM_SPREAD, &lat);
    Ok(out)
}

/// Scenario 2: one aggregate, per-command cost at growing stream lengths. The stream is
/// written straight through the store port (the same rows `send` would write), then one
/// warm-up command and a window of timed commands.
pub(crate) async fn long_stream(w: &Workload) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    for (len, id) in MEM_LONG {
        let store = MemoryStore::new();
        let account = "long-1";
        prefill(&store, account, len).await?;
        let app = app(store)?;
        deposit(&app, account).await?;
        let (us, n) = window(w.long_window, async || deposit(&app, account).await).await?;
        check_balance(&app, account, len + 1 + n).await?;
        out.figure(id, us);
        out.note(id, count_f64(n), "commands timed");
    }
    Ok(out)
}

/// Appends `len` deposits to the account's stream in one commit.
async fn prefill(store: &MemoryStore, account: &str, len: usize) -> Result<(), BenchError> {
    if len == 0 {
        return Ok(());
    }
    let encode = |_| -> Result<NewEvent, BenchError> {
        let event = AccountEvent::from(Deposited { amount: 1 });
        Ok(NewEvent {
            event_id: new_id(),
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            payload: event.to_json().map_err(|e| BenchError::framework(ME, "encoding an event", e))?,
            metadata: Metadata::default(),
            occurred_at: Utc::now(),
        })
    };
    let events = (0..len).map(encode).collect::<Result<Vec<_>, _>>()?;
    let stream = StreamKey::new(Account::TYPE, account);
    let batch =
        CommitBatch { appends: vec![StreamAppend { stream, expected_version: 0, events }], ..CommitBatch::default() };
    store.commit(batch).await.map_err(|e| BenchError::framework(ME, "prefilling the stream", e))?;
    Ok(())
}

/// Scenario 3: `send` of a command whose handler does nothing, against calling the
/// handler function directly.
pub(crate) async fn mediator(w: &Workload) -> Result<Outcome, BenchError> {
    let app = app(MemoryStore::new())?;
    let send = per_call_ns(w.mediator_calls, async || {
        app.send(std::hint::black_box(Noop)).await.map_err(|e| BenchError::framework(ME, "send", e))
    })
    .await?;
    let direct = per_call_ns(w.mediator_calls, async || {
        std::hint::black_box(noop(std::hint::black_box(Noop)).await).map_err(|e| BenchError::framework(ME, "noop", e))
    })
    .await?;
    let mut out = Outcome::default();
    out.figure(MEDIATOR_SEND, send);
    out.figure(MEDIATOR_DIRECT, direct);
    Ok(out)
}
