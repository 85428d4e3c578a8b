//! `#[command(lock = [..])]` with [`RedisLocks`] across two operating-system processes.
//!
//! The balances live in plain Redis keys that the handler reads, sleeps over and writes
//! back: nothing but the command's locks keeps two processes' transfers from losing money.
//! The parent test starts this same test binary twice as children (selected by an
//! environment variable), waits for both and checks the totals.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::lock::{LockManager, LockMiddleware, LockOptions};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd_redis::RedisLocks;
use cqrs_ddd_redis::redis::AsyncCommands;
use cqrs_ddd_redis::redis::aio::MultiplexedConnection;

const CHILD: &str = "CQRS_DDD_LOCK_CHILD_PREFIX";
const ACCOUNTS: usize = 3; // 100 each, 300 in all
const MOVES: usize = 40;

/// Balances in Redis under one prefix, read and written without any atomicity of their own.
struct Bank {
    conn: MultiplexedConnection,
    prefix: String,
}

impl Bank {
    fn key(&self, account: &str) -> String {
        format!("{}balance:{account}", self.prefix)
    }
}

#[command(lock = [from, to])]
struct Move {
    from: String,
    to: String,
    amount: i64,
}

#[command_handler]
async fn move_money(cmd: Move, bank: Dep<Bank>) -> Result<()> {
    let mut conn = bank.conn.clone();
    let redis = Error::store::<cqrs_ddd_redis::redis::RedisError>;
    let from: i64 = conn.get(bank.key(&cmd.from)).await.map_err(redis)?;
    let to: i64 = conn.get(bank.key(&cmd.to)).await.map_err(redis)?;
    // The other process runs here: without the lock its read-modify-write would be lost.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let amount = cmd.amount.min(from);
    let _: () = conn.set(bank.key(&cmd.from), from - amount).await.map_err(redis)?;
    let _: () = conn.set(bank.key(&cmd.to), to + amount).await.map_err(redis)?;
    Ok(())
}

async fn bank(prefix: &str) -> Bank {
    let client = cqrs_ddd_redis::redis::Client::open(common::url()).unwrap();
    Bank { conn: client.get_multiplexed_async_connection().await.unwrap(), prefix: prefix.to_owned() }
}

/// One process's share of the work: runs only when started by the parent test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_moves_money() {
    let Ok(prefix) = std::env::var(CHILD) else { return };
    let locks = LockManager::new(RedisLocks::new(&common::url()).unwrap().with_prefix(format!("{prefix}lock:")));
    let options = LockOptions { timeout: Duration::from_secs(60), ttl: Duration::from_secs(30) };
    let app = App::builder()
        .event_store(MemoryStore::new())
        .provide_arc(Arc::new(bank(&prefix).await))
        .middleware(LockMiddleware::new(locks).options(options))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..MOVES / 4 {
                let (a, b) = ((t + i) % ACCOUNTS, (t + i + 1) % ACCOUNTS);
                // Opposite orders on purpose: the locks are taken sorted, so no deadlock.
                let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
                app.send(Move { from: format!("acc{from}"), to: format!("acc{to}"), amount: 30 }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn two_processes_moving_money_under_the_commands_redis_locks_conserve_it() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let prefix = common::prefix("command_locks");
    let bank = bank(&prefix).await;
    let mut conn = bank.conn.clone();
    for i in 0..ACCOUNTS {
        let _: () = conn.set(bank.key(&format!("acc{i}")), 100i64).await.unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_process_moves_money", "--nocapture", "--test-threads=1"])
                .env(CHILD, &prefix)
                .spawn()
                .expect("the test binary starts again as a child")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a child process failed: {:?}", out.status);
    }
    let mut total = 0i64;
    for i in 0..ACCOUNTS {
        let balance: i64 = conn.get(bank.key(&format!("acc{i}"))).await.unwrap();
        assert!(balance >= 0, "acc{i} went negative: {balance}");
        total += balance;
    }
    assert_eq!(total, 300, "money was created or lost across the two processes");
}
