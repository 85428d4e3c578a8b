//! `#[command(lock = [..])]` and the lock middleware: a command's resources are held
//! around its unit of work, by every process sharing the lock backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::lock::{LockManager, LockMiddleware, LockMode, LockOptions, MemoryLocks, Resource};
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Error, lock::LockError};
use parking_lot::Mutex;

/// Balances outside any aggregate: only the lock keeps two moves from interleaving.
#[derive(Default)]
struct Bank(Mutex<HashMap<String, i64>>);

#[command(lock = [from, to])]
struct Move {
    from: String,
    to: String,
    amount: i64,
}

#[command_handler]
async fn move_money(cmd: Move, bank: Dep<Bank>) -> Result<()> {
    let read = |id: &str| bank.0.lock().get(id).copied().unwrap_or(0);
    let (from, to) = (read(&cmd.from), read(&cmd.to));
    // Other tasks run here: without the lock, a read-modify-write of theirs is lost.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let amount = cmd.amount.min(from);
    let mut b = bank.0.lock();
    b.insert(cmd.from, from - amount);
    b.insert(cmd.to, to + amount);
    Ok(())
}

fn app(locks: &LockManager, bank: &Arc<Bank>, options: LockOptions, fail_open: bool) -> Mediator {
    App::builder()
        .event_store(MemoryStore::new())
        .provide_arc(bank.clone())
        .middleware(LockMiddleware::new(locks.clone()).options(options).fail_open(fail_open))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_moving_money_under_the_commands_locks_conserve_it() {
    // One backend, two applications: two processes sharing a lock service.
    let backend = MemoryLocks::new();
    let bank = Arc::new(Bank::default());
    bank.0.lock().extend((0..3).map(|i| (format!("acc{i}"), 100)));
    let options = LockOptions { timeout: Duration::from_secs(60), ttl: Duration::from_secs(30) };
    let apps = [
        app(&LockManager::new(backend.clone()), &bank, options, false),
        app(&LockManager::new(backend.clone()), &bank, options, false),
    ];
    let mut tasks = Vec::new();
    for t in 0..10 {
        let app = apps[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let (from, to) = ((t + i) % 3, (t + i + 1) % 3);
                let (from, to) = if i % 2 == 0 { (from, to) } else { (to, from) };
                app.send(Move { from: format!("acc{from}"), to: format!("acc{to}"), amount: 30 }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let balances = bank.0.lock();
    assert_eq!(balances.values().sum::<i64>(), 300, "{balances:?}");
    assert!(balances.values().all(|b| *b >= 0), "{balances:?}");
}

#[tokio::test]
async fn a_lock_held_elsewhere_fails_the_command_or_lets_it_run_when_failing_open() {
    let backend = MemoryLocks::new();
    let bank = Arc::new(Bank::default());
    let other = LockManager::new(backend.clone());
    let short = LockOptions { timeout: Duration::from_millis(30), ttl: Duration::from_secs(30) };
    let held = other.lock([(Resource::new("Move", "b"), LockMode::Write)], "elsewhere", &short).await.unwrap();
    let closed = app(&LockManager::new(backend.clone()), &bank, short, false);
    let err = closed.send(Move { from: "a".into(), to: "b".into(), amount: 1 }).await.unwrap_err();
    assert!(
        matches!(&err, Error::Lock(LockError::Timeout { resource, .. }) if resource.id == "b"),
        "the error names the resource: {err}"
    );
    assert!(bank.0.lock().is_empty(), "the command did not run");
    let open = app(&LockManager::new(backend.clone()), &bank, short, true);
    open.send(Move { from: "a".into(), to: "b".into(), amount: 1 }).await.unwrap();
    held.release().await.unwrap();
    // Released after the command: `a` and `b` are free again.
    let free = other.lock([(Resource::new("Move", "a"), LockMode::Write)], "later", &short).await.unwrap();
    free.release().await.unwrap();
}

#[tokio::test]
async fn a_tenants_command_locks_its_tenants_resources() {
    let backend = MemoryLocks::new();
    let bank = Arc::new(Bank::default());
    let short = LockOptions { timeout: Duration::from_millis(30), ttl: Duration::from_secs(30) };
    let other = LockManager::new(backend.clone());
    let t1 = other
        .lock([(Resource::of_tenant(Some("t1"), "Move", "b"), LockMode::Write)], "elsewhere", &short)
        .await
        .unwrap();
    let app = app(&LockManager::new(backend.clone()), &bank, short, false);
    // Tenant t2's `b` is another resource.
    cqrs_ddd::RequestContext::new()
        .with_tenant("t2")
        .scope(app.send(Move { from: "a".into(), to: "b".into(), amount: 1 }))
        .await
        .unwrap();
    let err = cqrs_ddd::RequestContext::new()
        .with_tenant("t1")
        .scope(app.send(Move { from: "a".into(), to: "b".into(), amount: 1 }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Lock(_)), "{err}");
    t1.release().await.unwrap();
}
