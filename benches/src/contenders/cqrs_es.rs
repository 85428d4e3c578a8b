//! cqrs-es 0.5 in memory: `CqrsFramework` on its `MemStore`, as its docs and tests use it.
//!
//! `MemStore` prints two lines per command (`loading: ..`, `storing: ..`) to stdout; the
//! cell runs in a child process whose stdout is /dev/null, so the lines cost their write
//! but do not flood the terminal. It also copies the whole stream on every load and on
//! every commit: that is its design, and part of its figure.

use std::collections::HashMap;

use cqrs_es::mem_store::{MemStore, MemStoreAggregateContext};
use cqrs_es::{CqrsFramework, EventStore};

use crate::domain::cqrs_es::{Account, AccountCommand, AccountEvent};
use crate::error::BenchError;
use crate::measure::{Outcome, sequential, window};
use crate::scenarios::{MEM_LONG, MEM_SPREAD, Workload};
use crate::stats::count_f64;

const ME: &str = "cqrs-es";

type Framework = CqrsFramework<Account, MemStore<Account>>;

fn framework(store: MemStore<Account>) -> Framework {
    CqrsFramework::new(store, vec![], ())
}

async fn deposit(cqrs: &Framework, account: &str) -> Result<(), BenchError> {
    cqrs.execute(account, AccountCommand::Deposit { amount: 1 })
        .await
        .map_err(|e| BenchError::framework(ME, "execute", e))
}

async fn check_balance(store: &MemStore<Account>, account: &str, expected: usize) -> Result<(), BenchError> {
    let ctx = store.load_aggregate(account).await.map_err(|e| BenchError::framework(ME, "load_aggregate", e))?;
    let balance = ctx.aggregate.balance;
    if usize::try_from(balance).ok() != Some(expected) {
        return Err(BenchError::Check(format!("{ME}: {account} has balance {balance}, expected {expected}")));
    }
    Ok(())
}

/// Scenario 1: many aggregates, few commands each, round robin.
pub(crate) async fn spread(w: &Workload) -> Result<Outcome, BenchError> {
    let store = MemStore::<Account>::default();
    let cqrs = framework(store.clone());
    let ids: Vec<String> = (0..w.spread_aggregates).map(|a| format!("acc-{a}")).collect();
    let n = w.spread_aggregates * w.spread_commands_each;
    let lat = sequential(n, async |k| deposit(&cqrs, &ids[k % ids.len()]).await).await?;
    check_balance(&store, &ids[0], w.spread_commands_each).await?;
    let mut out = Outcome::default();
    out.rates(MEM_SPREAD, &lat);
    Ok(out)
}

/// Scenario 2: one aggregate, per-command cost at growing stream lengths. The stream is
/// committed through `MemStore`'s own `commit` in one call, then one warm-up command and
/// a window of timed commands.
pub(crate) async fn long_stream(w: &Workload) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    for (len, id) in MEM_LONG {
        let store = MemStore::<Account>::default();
        let account = "long-1";
        if len > 0 {
            let events = vec![AccountEvent::Deposited { amount: 1 }; len];
            let empty = MemStoreAggregateContext {
                aggregate_id: account.to_owned(),
                aggregate: Account::default(),
                current_sequence: 0,
            };
            store
                .commit(events, empty, HashMap::new())
                .await
                .map_err(|e| BenchError::framework(ME, "prefilling the stream", e))?;
        }
        let cqrs = framework(store.clone());
        deposit(&cqrs, account).await?;
        let (us, n) = window(w.long_window, async || deposit(&cqrs, account).await).await?;
        check_balance(&store, account, len + 1 + n).await?;
        out.figure(id, us);
        out.note(id, count_f64(n), "commands timed");
    }
    Ok(out)
}
