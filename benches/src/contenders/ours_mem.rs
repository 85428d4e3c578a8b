//! cqrs-ddd in memory: `App::builder()` on the in-memory event store, every command
//! through `Mediator::send`, as an application runs it.

use chrono::Utc;
use cqrs_ddd::ports::{CommitBatch, EventStore, NewEvent, StreamAppend, StreamKey};
use cqrs_ddd::{Aggregate, AggregateEvent, App, Mediator, MemoryStore, Metadata, new_id};

use crate::domain::ours::{Account, AccountEvent, Deposit, Deposited, Noop, noop, with_extra_handlers};
use crate::error::BenchError;
use crate::measure::{Outcome, per_call_ns, sequential, window};
use crate::scenarios::{
    MEDIATOR_DIRECT, MEDIATOR_SEND, MEM_HANDLERS, MEM_LONG, MEM_SCALE, MEM_SPREAD, SCALE_COMMANDS, Workload,
};
use crate::stats::count_f64;

const ME: &str = "cqrs-ddd";

/// The application as one on a hot path builds it: in-memory store and the aggregate
/// cache (`AppBuilder::aggregate_cache`), so a command on an aggregate the process already
/// holds does not replay its stream. cqrs-es has no equivalent: it replays every time.
fn app(store: MemoryStore) -> Result<Mediator, BenchError> {
    built(App::builder().event_store(store).aggregate_cache(CACHED_AGGREGATES))
}

fn built(builder: cqrs_ddd::AppBuilder) -> Result<Mediator, BenchError> {
    builder.build().map_err(|e| BenchError::framework(ME, "App::build", e))
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

/// A deposit of 1, as `send` would store it.
fn deposited() -> Result<NewEvent, BenchError> {
    let event = AccountEvent::from(Deposited { amount: 1 });
    Ok(NewEvent {
        event_id: new_id(),
        event_type: event.event_type(),
        schema_version: event.schema_version(),
        payload: event.to_json().map_err(|e| BenchError::framework(ME, "encoding an event", e))?,
        metadata: Metadata::default(),
        occurred_at: Utc::now(),
    })
}

/// Appends `len` deposits to the account's stream in one commit.
async fn prefill(store: &MemoryStore, account: &str, len: usize) -> Result<(), BenchError> {
    if len == 0 {
        return Ok(());
    }
    let events = (0..len).map(|_| deposited()).collect::<Result<Vec<_>, _>>()?;
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

/// The account of the scale rows' aggregate `a`.
fn scale_account(a: usize) -> String {
    format!("scale-{a}")
}

/// Stores `n` accounts of one deposit each through the store port, a thousand streams
/// per commit.
async fn prefill_accounts(store: &MemoryStore, n: usize) -> Result<(), BenchError> {
    let mut a = 0;
    while a < n {
        let end = (a + 1_000).min(n);
        let appends = (a..end)
            .map(|k| {
                let stream = StreamKey::new(Account::TYPE, scale_account(k));
                Ok(StreamAppend { stream, expected_version: 0, events: vec![deposited()?] })
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        let batch = CommitBatch { appends, ..CommitBatch::default() };
        store.commit(batch).await.map_err(|e| BenchError::framework(ME, "prefilling the accounts", e))?;
        a = end;
    }
    Ok(())
}

/// The accounts of `commands` scale commands over `n` stored ones: spread evenly, each
/// touched once (`commands <= n`).
fn scale_plan(n: usize, commands: usize) -> impl Iterator<Item = String> {
    let stride = (n / commands.max(1)).max(1);
    (0..commands.min(n)).map(move |k| scale_account(k * stride))
}

/// Scenario 19: the cost of a command on an aggregate not yet touched (load a stream of
/// one event, decide, commit) with more and more aggregates stored, and with 1,024 more
/// command handlers registered.
pub(crate) async fn scale(_w: &Workload) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    let sizes = MEM_SCALE.iter().map(|&(n, id)| (n, id, false)).chain([(MEM_SCALE[0].0, MEM_HANDLERS, true)]);
    for (n, id, many_handlers) in sizes {
        let store = MemoryStore::new();
        prefill_accounts(&store, n).await?;
        let builder = App::builder().event_store(store).aggregate_cache(CACHED_AGGREGATES);
        let app = built(if many_handlers { with_extra_handlers(builder) } else { builder })?;
        let plan: Vec<String> = scale_plan(n, SCALE_COMMANDS).collect();
        let lat = sequential(plan.len(), async |k| deposit(&app, &plan[k]).await).await?;
        check_balance(&app, &plan[plan.len() - 1], 2).await?;
        out.figure(id, 1e6 / lat.per_second());
    }
    Ok(out)
}

/// `--count ROW --ops N`: sets up the in-memory row `row`, then runs its operation `ops`
/// times, untimed: what `--instructions` counts under callgrind (twice, with two values
/// of `ops`, so the setup cancels out).
pub(crate) async fn count(row: &str, ops: usize) -> Result<(), BenchError> {
    match row {
        MEDIATOR_SEND => {
            let app = app(MemoryStore::new())?;
            for _ in 0..ops {
                app.send(std::hint::black_box(Noop)).await.map_err(|e| BenchError::framework(ME, "send", e))?;
            }
        }
        MEDIATOR_DIRECT => {
            for _ in 0..ops {
                std::hint::black_box(noop(std::hint::black_box(Noop)).await)
                    .map_err(|e| BenchError::framework(ME, "noop", e))?;
            }
        }
        id if id == MEM_SPREAD[0] => {
            let app = app(MemoryStore::new())?;
            let ids: Vec<String> = (0..1_000).map(|a| format!("acc-{a}")).collect();
            for id in &ids {
                deposit(&app, id).await?;
            }
            for k in 0..ops {
                deposit(&app, &ids[k % ids.len()]).await?;
            }
        }
        id if id == MEM_LONG[1].1 => {
            let store = MemoryStore::new();
            prefill(&store, "long-1", MEM_LONG[1].0).await?;
            let app = app(store)?;
            for _ in 0..=ops {
                deposit(&app, "long-1").await?;
            }
        }
        id if id == MEM_HANDLERS || MEM_SCALE.iter().any(|&(_, s)| s == id) => {
            let n = MEM_SCALE.iter().find(|&&(_, s)| s == id).map_or(MEM_SCALE[0].0, |&(n, _)| n);
            let store = MemoryStore::new();
            prefill_accounts(&store, n).await?;
            let builder = App::builder().event_store(store).aggregate_cache(CACHED_AGGREGATES);
            let app = built(if id == MEM_HANDLERS { with_extra_handlers(builder) } else { builder })?;
            for account in scale_plan(n, SCALE_COMMANDS).take(ops) {
                deposit(&app, &account).await?;
            }
        }
        other => return Err(BenchError::Usage(format!("`--count {other}`: not a row `--instructions` counts"))),
    }
    Ok(())
}
