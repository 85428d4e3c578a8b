//! Root aggregate commands retry transient failures (the store unreachable) under a
//! policy, decided again each time, and never apply a command twice when a commit's
//! answer was lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use cqrs_ddd::TransientRetry;
use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, StoredEvent, StoredState, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
enum AccountError {
    #[error("amounts must be positive")]
    ZeroAmount,
}

#[aggregate(id = String, events(Deposited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if c.amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        Ok(vec![Deposited { amount: c.amount }.into()])
    }
    #[handle(create_if_missing)]
    fn bonus(&self, c: &Bonus) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: c.amount }.into()])
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

#[command(aggregate = Account)]
struct Bonus {
    #[id]
    account: String,
    amount: u64,
}

/// A memory store whose commits and reads fail on demand, as a store that cannot be
/// reached does; `lose_answer` commits and then fails, as a connection lost before the
/// answer arrived.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    failing_commits: Arc<AtomicU32>,
    failing_reads: Arc<AtomicU32>,
    lose_answer: Arc<AtomicBool>,
    commits: Arc<AtomicU32>,
}

fn unreachable() -> Error {
    Error::store("connection reset by peer")
}

fn take(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

#[async_trait]
impl EventStore for Flaky {
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if take(&self.failing_commits) {
            return Err(unreachable());
        }
        let receipt = self.inner.commit(batch).await?;
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            return Err(unreachable());
        }
        Ok(receipt)
    }
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
        if take(&self.failing_reads) {
            return Err(unreachable());
        }
        self.inner.read_stream(stream, after_version).await
    }
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamKey) -> Result<u64> {
        self.inner.stream_version(stream).await
    }
    async fn load_state(&self, stream: &StreamKey) -> Result<Option<StoredState>> {
        self.inner.load_state(stream).await
    }
}

fn app(store: &Flaky, policy: TransientRetry) -> Mediator {
    App::builder().event_store(store.clone()).retry_transient(policy).build().unwrap()
}

async fn balance(app: &Mediator) -> (u64, u64) {
    match app.load::<Account>(&"a".to_owned()).await {
        Ok(loaded) => (loaded.state.balance, loaded.version),
        Err(Error::NotFound { .. }) => (0, 0),
        Err(e) => panic!("{e}"),
    }
}

fn quick(retries: u32) -> TransientRetry {
    TransientRetry::fixed(retries, Duration::from_millis(1))
}

#[tokio::test]
async fn without_a_policy_the_failure_reaches_the_caller() {
    let store = Flaky::default();
    let app = app(&store, TransientRetry::NONE);
    store.failing_commits.store(1, Ordering::SeqCst);
    let err = app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap_err();
    assert!(err.is_transient() && !err.is_conflict(), "{err}");
    assert_eq!(store.commits.load(Ordering::SeqCst), 1);
    assert_eq!(balance(&app).await, (0, 0));
}

#[tokio::test]
async fn a_command_is_decided_again_until_the_store_answers() {
    let store = Flaky::default();
    let app = app(&store, quick(3));
    store.failing_commits.store(2, Ordering::SeqCst);
    app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    assert_eq!(store.commits.load(Ordering::SeqCst), 3);
    assert_eq!(balance(&app).await, (5, 1));
    // A load that fails is retried too.
    store.failing_reads.store(1, Ordering::SeqCst);
    app.send(Deposit { account: "a".into(), amount: 1 }).await.unwrap();
    assert_eq!(balance(&app).await, (6, 2));
}

#[tokio::test]
async fn retries_stop_at_the_policy_s_maximum() {
    let store = Flaky::default();
    let app = app(&store, quick(3));
    store.failing_commits.store(10, Ordering::SeqCst);
    let err = app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert_eq!(store.commits.load(Ordering::SeqCst), 4, "the first attempt and three retries");
    // Domain errors are not retried.
    store.failing_commits.store(0, Ordering::SeqCst);
    let err = app.send(Deposit { account: "a".into(), amount: 0 }).await.unwrap_err();
    assert!(err.domain_error::<AccountError>().is_some());
    assert_eq!(store.commits.load(Ordering::SeqCst), 4, "nothing to commit, nothing retried");
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_applied_twice() {
    let store = Flaky::default();
    let app = app(&store, quick(3));
    store.lose_answer.store(true, Ordering::SeqCst);
    app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    assert_eq!(balance(&app).await, (5, 1), "the retry found the command committed");
    // With the caller's own key, likewise; and the key still refuses a second send.
    let key = cqrs_ddd::new_id();
    store.lose_answer.store(true, Ordering::SeqCst);
    app.send_idempotent(Deposit { account: "a".into(), amount: 2 }, key, None).await.unwrap();
    assert_eq!(balance(&app).await, (7, 2));
    let again = app.send_idempotent(Deposit { account: "a".into(), amount: 2 }, key, None).await;
    assert!(matches!(again, Err(Error::AlreadyProcessed { .. })), "{again:?}");
    // Without a policy, the lost answer is the caller's to handle.
    let plain = self::app(&store, TransientRetry::NONE);
    store.lose_answer.store(true, Ordering::SeqCst);
    assert!(plain.send(Deposit { account: "a".into(), amount: 1 }).await.is_err());
    assert_eq!(balance(&plain).await, (8, 3), "it did commit");
}

#[tokio::test]
async fn a_policy_can_be_given_to_one_command() {
    let store = Flaky::default();
    let app = App::builder()
        .event_store(store.clone())
        .retry_transient_for::<Deposit>(TransientRetry::exponential(
            2,
            Duration::from_millis(1),
            Duration::from_millis(4),
        ))
        .build()
        .unwrap();
    store.failing_commits.store(1, Ordering::SeqCst);
    app.send(Deposit { account: "a".into(), amount: 5 }).await.unwrap();
    store.failing_commits.store(1, Ordering::SeqCst);
    assert!(app.send(Bonus { account: "a".into(), amount: 5 }).await.is_err(), "not Bonus");
    assert_eq!(balance(&app).await, (5, 1));
}
