//! State-stored aggregates: a JSON state row with a version, events journaled alongside.

use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::ports::{CommitBatch, EventStore, NewEvent, StateWrite, StreamAppend, StreamKey};
use cqrs_ddd::prelude::*;
use futures::StreamExt;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Renamed {
    name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("blank name")]
struct BlankName;

#[aggregate(id = String, events(Renamed), error = BlankName, state_stored)]
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Profile {
    name: String,
    renames: u32,
}

#[aggregate]
impl Profile {
    #[handle(create_if_missing)]
    fn rename(&self, cmd: &Rename) -> Result<Vec<ProfileEvent>, BlankName> {
        if cmd.name.trim().is_empty() {
            return Err(BlankName);
        }
        Ok(vec![Renamed { name: cmd.name.clone() }.into()])
    }

    #[apply]
    fn renamed(&mut self, e: &Renamed) {
        self.name.clone_from(&e.name);
        self.renames += 1;
    }
}

#[command(aggregate = Profile)]
struct Rename {
    #[id]
    id: String,
    name: String,
}

#[tokio::test]
async fn state_row_is_the_truth_and_events_are_journaled() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).build().unwrap();
    app.send(Rename { id: "p".into(), name: "ann".into() }).await.unwrap();
    app.send(Rename { id: "p".into(), name: "bea".into() }).await.unwrap();

    let key = StreamKey::new("Profile", "p");
    let row = store.load_state(&key).await.unwrap().expect("a state row");
    assert_eq!(row.version, 2);
    assert_eq!(serde_json::from_str::<Profile>(&row.state).unwrap(), Profile { name: "bea".into(), renames: 2 });
    let journal: Vec<_> = store.read_stream(&key, 0).await.unwrap().collect().await;
    assert_eq!(journal.len(), 2);

    let loaded = app.load::<Profile>(&"p".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.name.as_str()), (2, "bea"));
}

#[tokio::test]
async fn state_is_loaded_from_the_row_not_replayed() {
    // The row and the journal disagree on purpose: loading must read the row.
    let store = MemoryStore::new();
    let key = StreamKey::new("Profile", "p");
    let state = serde_json::to_string(&Profile { name: "from-row".into(), renames: 41 }).unwrap();
    let journal = NewEvent {
        event_id: cqrs_ddd::new_id(),
        event_type: "Renamed",
        schema_version: 1,
        payload: r#"{"name":"from-journal"}"#.into(),
        metadata: Metadata::default(),
        occurred_at: chrono::Utc::now(),
    };
    store
        .commit(CommitBatch {
            appends: vec![StreamAppend { stream: key.clone(), expected_version: 0, events: vec![journal] }],
            states: vec![StateWrite { stream: key, expected_version: 0, version: 1, state }],
            ..CommitBatch::default()
        })
        .await
        .unwrap();
    let app = App::builder().event_store(store).build().unwrap();
    assert_eq!(app.load::<Profile>(&"p".to_owned()).await.unwrap().state.name, "from-row");
    app.send(Rename { id: "p".into(), name: "next".into() }).await.unwrap();
    let loaded = app.load::<Profile>(&"p".to_owned()).await.unwrap();
    assert_eq!((loaded.version, loaded.state.renames), (2, 42));
}

#[tokio::test]
async fn a_stale_state_write_conflicts() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).build().unwrap();
    app.send(Rename { id: "p".into(), name: "ann".into() }).await.unwrap();
    let stale =
        StateWrite { stream: StreamKey::new("Profile", "p"), expected_version: 0, version: 1, state: "{}".into() };
    let err = store.commit(CommitBatch { states: vec![stale], ..CommitBatch::default() }).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { expected: 0, actual: 1, .. }), "{err}");
}

#[tokio::test]
async fn a_corrupt_state_row_is_a_typed_error() {
    let store = MemoryStore::new();
    let bad =
        StateWrite { stream: StreamKey::new("Profile", "p"), expected_version: 0, version: 3, state: "[1,2]".into() };
    store.commit(CommitBatch { states: vec![bad], ..CommitBatch::default() }).await.unwrap();
    let app = App::builder().event_store(store).build().unwrap();
    let err = app.load::<Profile>(&"p".to_owned()).await.unwrap_err();
    assert!(matches!(err, Error::Serialization { version: 3, .. }), "{err}");
}

#[tokio::test]
async fn a_domain_error_writes_nothing() {
    let store = MemoryStore::new();
    let app = App::builder().event_store(store.clone()).build().unwrap();
    let err = app.send(Rename { id: "p".into(), name: " ".into() }).await.unwrap_err();
    assert!(err.domain_error::<BlankName>().is_some());
    assert!(store.load_state(&StreamKey::new("Profile", "p")).await.unwrap().is_none());
    assert_eq!(store.event_count(), 0);
}
