//! State-stored aggregates that merge a conflicting write (`on_conflict = merge(..)`):
//! another writer cuts in between a command's load and its commit, deterministically,
//! through a store that commits the other writer's batch first.

use std::sync::Arc;

use cqrs_ddd::ports::{
    CommitBatch, CommitReceipt, Cursor, EventStore, EventStream, JobStore, NewEvent, Outbox, ProjectionStore,
    ScheduleStore, StateWrite, StoredEvent, StoredState, StreamAppend, StreamKey, async_trait,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::{AppBuilder, RequestContext, RetryPolicy};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::TestDb;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tagged {
    pub tag: String,
}

#[derive(Debug, thiserror::Error)]
#[error("blank tag")]
pub struct BlankTag;

/// Tags merged as a union of lists when two writers race; `title` laid over.
#[aggregate(id = String, events(Tagged), error = BlankTag, state_stored, on_conflict = merge(union))]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub tags: Vec<String>,
}

#[aggregate]
impl Labels {
    #[handle(create_if_missing)]
    fn tag(&self, cmd: &Tag) -> Result<Vec<LabelsEvent>, BlankTag> {
        if cmd.tag.is_empty() {
            return Err(BlankTag);
        }
        Ok(vec![Tagged { tag: cmd.tag.clone() }.into()])
    }

    #[apply]
    fn tagged(&mut self, e: &Tagged) {
        self.tags.push(e.tag.clone());
    }
}

#[command(aggregate = Labels)]
pub struct Tag {
    #[id]
    pub id: String,
    pub tag: String,
}

/// The same without a merge: a conflict is decided again, or returned.
#[aggregate(id = String, events(Tagged), error = BlankTag, state_stored, name = "PlainLabels")]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainLabels {
    pub tags: Vec<String>,
}

#[aggregate]
impl PlainLabels {
    #[handle(create_if_missing)]
    fn tag(&self, cmd: &TagPlain) -> Result<Vec<PlainLabelsEvent>, BlankTag> {
        Ok(vec![Tagged { tag: cmd.tag.clone() }.into()])
    }

    #[apply]
    fn tagged(&mut self, e: &Tagged) {
        self.tags.push(e.tag.clone());
    }
}

#[command(aggregate = PlainLabels)]
pub struct TagPlain {
    #[id]
    pub id: String,
    pub tag: String,
}

/// What the other writer stores: the state row (JSON) it writes over the current one.
type Intrusion = Box<dyn Fn(&Value) -> Value + Send + Sync>;

/// The stream the other writer cuts into, how many more times, and what it stores.
type Plan = Option<(StreamKey, u32, Arc<Intrusion>)>;

/// An event store where another writer cuts in: before each of the next `times` commits
/// that write `stream`'s state row, it commits its own write of that row (one event and
/// the state `intrusion` makes of the current one), so the commit meets a conflict.
#[derive(Clone)]
pub struct CutIn<S> {
    inner: S,
    plan: Arc<Mutex<Plan>>,
}

impl<S: EventStore + Clone> CutIn<S> {
    pub fn new(inner: S) -> Self {
        CutIn { inner, plan: Arc::new(Mutex::new(None)) }
    }

    pub fn cut_in(&self, stream: StreamKey, times: u32, intrusion: impl Fn(&Value) -> Value + Send + Sync + 'static) {
        *self.plan.lock() = Some((stream, times, Arc::new(Box::new(intrusion))));
    }

    async fn intrude(&self, batch: &CommitBatch) -> Result<()> {
        let intrusion = {
            let mut plan = self.plan.lock();
            match plan.as_mut() {
                Some((stream, times, f)) if *times > 0 && batch.states.iter().any(|s| s.stream == *stream) => {
                    *times -= 1;
                    Some((stream.clone(), f.clone()))
                }
                _ => None,
            }
        };
        let Some((stream, intrusion)) = intrusion else { return Ok(()) };
        let current = self.inner.load_state(&stream).await?.expect("the other writer changes a stored row");
        let state = intrusion(&serde_json::from_str(&current.state).unwrap());
        let event = NewEvent {
            event_id: cqrs_ddd::new_id(),
            event_type: "Tagged",
            schema_version: 1,
            payload: json!({"tag": "other writer"}).to_string(),
            metadata: Metadata { tenant_id: stream.tenant_id.clone(), ..Metadata::default() },
            occurred_at: chrono::Utc::now(),
        };
        self.inner
            .commit(CommitBatch {
                appends: vec![StreamAppend {
                    stream: stream.clone(),
                    expected_version: current.version,
                    events: vec![event],
                }],
                states: vec![StateWrite {
                    stream: stream.clone(),
                    expected_version: current.version,
                    version: current.version + 1,
                    state: state.to_string(),
                }],
                tenant_id: stream.tenant_id.clone(),
                ..CommitBatch::default()
            })
            .await
            .map(drop)
    }
}

#[async_trait]
impl<S: EventStore + Clone> EventStore for CutIn<S> {
    fn outbox(self: Arc<Self>) -> Option<Arc<dyn Outbox>> {
        Arc::new(self.inner.clone()).outbox()
    }
    fn read_models(self: Arc<Self>) -> Option<Arc<dyn ProjectionStore>> {
        Arc::new(self.inner.clone()).read_models()
    }
    fn jobs(self: Arc<Self>) -> Option<Arc<dyn JobStore>> {
        Arc::new(self.inner.clone()).jobs()
    }
    fn schedule(self: Arc<Self>) -> Option<Arc<dyn ScheduleStore>> {
        Arc::new(self.inner.clone()).schedule()
    }
    async fn commit(&self, batch: CommitBatch) -> Result<CommitReceipt> {
        self.intrude(&batch).await?;
        self.inner.commit(batch).await
    }
    async fn read_stream(&self, stream: &StreamKey, after_version: u64) -> Result<EventStream<'static>> {
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

/// A store where another writer can cut in, and the app of this test binary on it.
async fn cut_in_store<D: TestDb>(db: &D) -> (CutIn<D::Store>, AppBuilder) {
    let inner = db.store().await;
    let store = CutIn::new(inner.clone());
    let app = super::app(inner).event_store(store.clone());
    (store, app)
}

fn key(id: &str, tenant: &str) -> StreamKey {
    StreamKey::new("Labels", id).with_tenant(Some(tenant.to_owned()))
}

async fn in_tenant<T>(tenant: &str, fut: impl std::future::Future<Output = T>) -> T {
    RequestContext::new().with_tenant(tenant).scope(fut).await
}

async fn state_of<S: EventStore>(store: &S, key: &StreamKey) -> (u64, Value) {
    let row = store.load_state(key).await.unwrap().expect("a state row");
    (row.version, serde_json::from_str(&row.state).unwrap())
}

/// A command whose commit meets another writer's row merges with it: the union of both
/// writers' tags is stored at the next version, the command's event journaled after the
/// other writer's, in the command's tenant only; the app then loads the merged state.
pub async fn a_conflicting_write_is_merged<D: TestDb>(db: &D) {
    let (store, app) = cut_in_store(db).await;
    let app = app.retry_on_conflict(RetryPolicy::NONE).build().unwrap();
    for tenant in ["t1", "t2"] {
        in_tenant(tenant, app.send(Tag { id: "l".into(), tag: "a".into() })).await.unwrap();
    }
    store.cut_in(key("l", "t1"), 1, |s| {
        let mut s = s.clone();
        s["tags"].as_array_mut().unwrap().push(json!("b"));
        s
    });
    in_tenant("t1", app.send(Tag { id: "l".into(), tag: "c".into() })).await.unwrap();

    assert_eq!(state_of(&store, &key("l", "t1")).await, (3, json!({"tags": ["a", "b", "c"]})));
    let journal: Vec<_> = store.read_stream(&key("l", "t1"), 0).await.unwrap().collect().await;
    let journal: Vec<(u64, String)> = journal
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| (e.version, serde_json::from_str::<Value>(&e.payload).unwrap()["tag"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(journal, [(1, "a".to_owned()), (2, "other writer".to_owned()), (3, "c".to_owned())]);
    assert_eq!(state_of(&store, &key("l", "t2")).await, (1, json!({"tags": ["a"]})), "the other tenant's row");
    let loaded = in_tenant("t1", app.load::<Labels>(&"l".to_owned())).await.unwrap();
    assert_eq!((loaded.version, loaded.state.tags), (3, vec!["a".to_owned(), "b".into(), "c".into()]));
}

/// A writer that cuts in before every attempt wins: after three merges the command's
/// conflict is returned and nothing of it is written.
pub async fn merging_gives_up_after_three_merges<D: TestDb>(db: &D) {
    let (store, app) = cut_in_store(db).await;
    let app = app.retry_on_conflict(RetryPolicy::NONE).build().unwrap();
    in_tenant("t1", app.send(Tag { id: "l".into(), tag: "a".into() })).await.unwrap();
    store.cut_in(key("l", "t1"), 4, |s| {
        let mut s = s.clone();
        s["tags"].as_array_mut().unwrap().push(json!("x"));
        s
    });
    let refused = in_tenant("t1", app.send(Tag { id: "l".into(), tag: "c".into() })).await.unwrap_err();
    assert!(refused.is_conflict(), "{refused:?}");
    assert_eq!(state_of(&store, &key("l", "t1")).await, (5, json!({"tags": ["a", "x", "x", "x", "x"]})));
}

/// A stored state the merge cannot turn back into the aggregate is `Error::Merge`,
/// naming the stream, and writes nothing.
pub async fn an_unreadable_merge_is_a_merge_error<D: TestDb>(db: &D) {
    let (store, app) = cut_in_store(db).await;
    let app = app.retry_on_conflict(RetryPolicy::NONE).build().unwrap();
    in_tenant("t1", app.send(Tag { id: "l".into(), tag: "a".into() })).await.unwrap();
    // The other writer's row has a field the aggregate refuses; the merge keeps it.
    store.cut_in(key("l", "t1"), 1, |_| json!({"tags": ["a"], "rogue": true}));
    let refused = in_tenant("t1", app.send(Tag { id: "l".into(), tag: "c".into() })).await.unwrap_err();
    match &refused {
        Error::Merge { stream, version: 2, reason } => {
            assert_eq!(stream, "t1/Labels/l");
            assert!(reason.contains("rogue"), "{reason}");
        }
        other => panic!("expected a merge error, got {other:?}"),
    }
    assert_eq!(state_of(&store, &key("l", "t1")).await, (2, json!({"tags": ["a"], "rogue": true})));
}

/// Without `on_conflict`, a state-stored aggregate's conflict is not merged: returned
/// without a retry policy, decided again on the other writer's state with one.
pub async fn without_a_merge_a_conflict_is_decided_again<D: TestDb>(db: &D) {
    let (store, strict) = cut_in_store(db).await;
    let plain = StreamKey::new("PlainLabels", "l").with_tenant(Some("t1".to_owned()));
    let add_b = |s: &Value| {
        let mut s = s.clone();
        s["tags"].as_array_mut().unwrap().push(json!("b"));
        s
    };
    let strict = strict.retry_on_conflict(RetryPolicy::NONE).build().unwrap();
    in_tenant("t1", strict.send(TagPlain { id: "l".into(), tag: "a".into() })).await.unwrap();
    store.cut_in(plain.clone(), 1, add_b);
    let refused = in_tenant("t1", strict.send(TagPlain { id: "l".into(), tag: "c".into() })).await.unwrap_err();
    assert!(refused.is_conflict(), "{refused:?}");
    assert_eq!(state_of(&store, &plain).await, (2, json!({"tags": ["a", "b"]})));

    let retrying = cut_in_store(db).await.1.event_store(store.clone());
    let retrying = retrying.retry_on_conflict(RetryPolicy::retries(1)).build().unwrap();
    store.cut_in(plain.clone(), 1, add_b);
    in_tenant("t1", retrying.send(TagPlain { id: "l".into(), tag: "c".into() })).await.unwrap();
    assert_eq!(state_of(&store, &plain).await, (4, json!({"tags": ["a", "b", "b", "c"]})));
}
