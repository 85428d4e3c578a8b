//! Transfers between accounts with everything Redis gives the framework: the commands'
//! locks ([`RedisLocks`], fair), snapshots shared by every process ([`RedisSnapshots`]) and
//! a tenant-scoped cache ([`RedisCache`]).
//!
//! Run it with a Redis on 127.0.0.1:6379 (or `REDIS_URL`):
//! `cargo run -p cqrs-ddd-redis --example transfers`. With a shared event store
//! (cqrs-ddd-sqlx) in place of the in-memory one, any number of processes can run it at
//! once: transfers touching the same accounts take turns, whatever process sends them.

use std::time::Duration;

use cqrs_ddd::SnapshotPolicy;
use cqrs_ddd::cache::Cache;
use cqrs_ddd::lock::{LockManager, LockMiddleware, LockOptions};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd_redis::{RedisCache, RedisLocks, RedisSnapshots};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credited {
    amount: i64,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Debited {
    amount: i64,
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("insufficient funds: {balance} < {amount}")]
    Insufficient { balance: i64, amount: i64 },
}

#[aggregate(id = String, events(Credited, Debited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn credit(&self, cmd: &Credit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Credited { amount: cmd.amount }.into()])
    }

    #[handle]
    fn debit(&self, cmd: &Debit) -> Result<Vec<AccountEvent>, AccountError> {
        if self.balance < cmd.amount {
            return Err(AccountError::Insufficient { balance: self.balance, amount: cmd.amount });
        }
        Ok(vec![Debited { amount: cmd.amount }.into()])
    }

    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }

    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }
}

#[command(aggregate = Account)]
struct Credit {
    #[id]
    account: String,
    amount: i64,
}

#[command(aggregate = Account)]
struct Debit {
    #[id]
    account: String,
    amount: i64,
}

/// Both accounts are held by this command and by the two it sends (they re-enter the
/// locks of their root command instead of waiting for them).
#[command(lock = [from, to])]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

#[command_handler]
async fn transfer(cmd: Transfer, ctx: &mut CommandContext) -> Result<()> {
    ctx.send(Debit { account: cmd.from, amount: cmd.amount }).await?;
    ctx.send(Credit { account: cmd.to, amount: cmd.amount }).await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let locks = LockManager::new(RedisLocks::new(&url)?.fair());
    let app = App::builder()
        // A database in a real service (cqrs-ddd-sqlx); memory keeps the example short.
        .event_store(MemoryStore::new())
        .snapshot_store(RedisSnapshots::new(&url)?)
        .snapshot::<Account>(SnapshotPolicy::every(50))
        .middleware(
            LockMiddleware::new(locks)
                .options(LockOptions { timeout: Duration::from_secs(10), ttl: Duration::from_secs(30) }),
        )
        .build()?;

    for account in ["alice", "bob"] {
        app.send(Credit { account: account.into(), amount: 100 }).await?;
    }
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 { ("alice", "bob") } else { ("bob", "alice") };
        match app.send(Transfer { from: from.into(), to: to.into(), amount: 15 + i }).await {
            Ok(()) => {}
            Err(Error::Domain(e)) => println!("transfer {i} refused: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let alice = app.load::<Account>(&"alice".to_owned()).await?.state.balance;
    let bob = app.load::<Account>(&"bob".to_owned()).await?.state.balance;
    println!("alice {alice}, bob {bob}, total {}", alice + bob);
    assert_eq!(alice + bob, 200);

    // The cache keys carry the current tenant: another tenant's `balances` is another key.
    let cache = Cache::new(RedisCache::new(&url)?);
    cache.set("balances", &(alice, bob), Some(Duration::from_secs(60))).await?;
    assert_eq!(cache.get::<(i64, i64)>("balances").await?, Some((alice, bob)));
    Ok(())
}
