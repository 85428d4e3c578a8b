//! `RedisSnapshots`: aggregate snapshots shared by processes, on the Redis at `REDIS_URL`.

mod common;

use chrono::Utc;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{Snapshot, SnapshotStore, StreamKey};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{Error, SnapshotPolicy};
use cqrs_ddd_redis::RedisSnapshots;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Deposited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[command(aggregate = Account)]
struct Deposit {
    #[id]
    account: String,
    amount: u64,
}

fn snapshots(prefix: &str) -> RedisSnapshots {
    RedisSnapshots::new(&common::url()).unwrap().with_prefix(prefix.to_owned())
}

fn snapshot(stream: &StreamKey, version: u64, state: &str) -> Snapshot {
    Snapshot { stream: stream.clone(), version, state: state.to_owned(), taken_at: Utc::now() }
}

#[tokio::test]
async fn a_newer_snapshot_is_never_replaced_by_an_older_one_and_tenants_are_apart() {
    let store = snapshots(&common::prefix("snapshots"));
    let stream = StreamKey::new("Account", "a");
    assert_eq!(store.load(&stream).await.unwrap(), None);
    store.save(snapshot(&stream, 20, r#"{"balance":20}"#)).await.unwrap();
    store.save(snapshot(&stream, 10, r#"{"balance":10}"#)).await.unwrap();
    let loaded = store.load(&stream).await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.state.as_str()), (20, r#"{"balance":20}"#));
    store.save(snapshot(&stream, 30, r#"{"balance":30}"#)).await.unwrap();
    assert_eq!(store.load(&stream).await.unwrap().unwrap().version, 30);
    let other_tenant = StreamKey { tenant_id: Some("t2".into()), ..stream.clone() };
    assert_eq!(store.load(&other_tenant).await.unwrap(), None);
}

#[tokio::test]
async fn two_processes_share_snapshots_and_catch_up_on_the_tail() {
    let prefix = common::prefix("shared");
    // One event store (the database), two processes, each with its own Redis client.
    let events = MemoryStore::new();
    let app = |_: u8| {
        App::builder()
            .event_store(events.clone())
            .snapshot_store(snapshots(&prefix))
            .snapshot::<Account>(SnapshotPolicy::every(10))
            .build()
            .unwrap()
    };
    let (a, b) = (app(1), app(2));
    for _ in 0..25 {
        a.send(Deposit { account: "acc".into(), amount: 1 }).await.unwrap();
    }
    let saved = snapshots(&prefix).load(&StreamKey::new("Account", "acc")).await.unwrap().expect("a snapshot");
    assert!(saved.version >= 10, "a snapshot was taken: {}", saved.version);
    // The other process starts from that snapshot and reads the events after it.
    assert_eq!(b.load::<Account>(&"acc".to_owned()).await.unwrap().state.balance, 25);
    for _ in 0..7 {
        b.send(Deposit { account: "acc".into(), amount: 2 }).await.unwrap();
    }
    assert_eq!(a.load::<Account>(&"acc".to_owned()).await.unwrap().state.balance, 39);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_store_error() {
    let store = RedisSnapshots::new(&format!("redis://127.0.0.1:{}", common::free_port())).unwrap();
    let err = store.load(&StreamKey::new("Account", "a")).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
}
