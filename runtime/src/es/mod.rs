//! Loading and deciding: the event-sourced and state-stored command path.

use futures::StreamExt;

use crate::domain::{Aggregate, AggregateEvent, Storage};
use crate::error::{Error, Result};
use crate::ports::{EventStore, StoredEvent, StreamKey};

/// An aggregate as loaded, with the version it was at.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (or of the state row).
    pub version: u64,
}

/// Loads an aggregate; `None` when it has no events (or no state row).
pub async fn load<A: Aggregate>(store: &dyn EventStore, key: &StreamKey) -> Result<Option<Loaded<A>>> {
    match A::STORAGE {
        Storage::EventSourced => replay(store, key, A::default(), 0).await,
        Storage::StateStored => {
            let Some(row) = store.load_state(key).await? else {
                return Ok(None);
            };
            let state = serde_json::from_str(&row.state).map_err(|source| Error::Serialization {
                stream: key.to_string(),
                version: row.version,
                event_type: format!("<state of {}>", A::TYPE),
                source,
            })?;
            Ok(Some(Loaded { state, version: row.version }))
        }
    }
}

/// Applies the events after `version` to `state`, streaming them from the store.
pub(crate) async fn replay<A: Aggregate>(
    store: &dyn EventStore,
    key: &StreamKey,
    mut state: A,
    mut version: u64,
) -> Result<Option<Loaded<A>>> {
    let mut events = store.read_stream(key, version).await?;
    while let Some(stored) = events.next().await {
        let stored = stored?;
        let event = decode::<A>(&stored)?;
        state.apply(&event);
        version = stored.version;
    }
    Ok((version > 0).then_some(Loaded { state, version }))
}

/// Decodes one stored event into the aggregate's event enum.
pub fn decode<A: Aggregate>(stored: &StoredEvent) -> Result<A::Event> {
    match A::Event::from_json(&stored.event_type, &stored.payload) {
        Some(Ok(event)) => Ok(event),
        Some(Err(source)) => Err(Error::Serialization {
            stream: stored.stream.to_string(),
            version: stored.version,
            event_type: stored.event_type.clone(),
            source,
        }),
        None => Err(Error::UnknownEventType {
            stream: stored.stream.to_string(),
            version: stored.version,
            event_type: stored.event_type.clone(),
        }),
    }
}
