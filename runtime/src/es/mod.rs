//! Loading and deciding: the event-sourced and state-stored command path.
//!
//! Loading an event-sourced aggregate starts from the newest snapshot (when a snapshot
//! policy is set for it), streams the events after it, brings each payload from its
//! stored schema version to the current one through the upcaster chain, and applies it.
//! A snapshot that no longer deserializes (the aggregate changed shape) is ignored with a
//! warning and the stream is replayed.

pub(crate) mod cache;
mod snapshot;
mod upcast;

pub use cache::AggregateCache;
pub use snapshot::SnapshotPolicy;
pub(crate) use upcast::{UpcastStep, Upcasters};

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::domain::{Aggregate, AggregateEvent, Storage};
use crate::error::{Error, Result};
use crate::ports::{EventStore, SnapshotStore, StreamEvent, StreamKey};

/// An aggregate as loaded, with the version it was at.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (or of the state row).
    pub version: u64,
    /// The version of the snapshot it started from (0: none).
    pub snapshot_version: u64,
}

/// What to do with a stored event whose type the aggregate does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownEventPolicy {
    /// Fail the load with [`Error::UnknownEventType`] (the default).
    #[default]
    Fail,
    /// Skip it with a warning (for events retired from the code on purpose).
    Skip,
}

/// How aggregates are loaded: upcasters, snapshots, unknown events.
#[derive(Default)]
pub struct Loader {
    pub(crate) upcasters: Upcasters,
    pub(crate) unknown: UnknownEventPolicy,
    pub(crate) snapshots: Option<Arc<dyn SnapshotStore>>,
    pub(crate) policies: HashMap<&'static str, SnapshotPolicy>,
}

impl Loader {
    /// The snapshot policy of an aggregate type, when snapshots are on for it.
    pub(crate) fn policy(&self, aggregate_type: &str) -> Option<&SnapshotPolicy> {
        self.snapshots.as_ref()?;
        self.policies.get(aggregate_type).filter(|p| !matches!(p, SnapshotPolicy::Never))
    }

    /// Loads an aggregate; `None` when it has no events (or no state row).
    pub async fn load<A: Aggregate>(&self, store: &dyn EventStore, key: &StreamKey) -> Result<Option<Loaded<A>>> {
        match A::STORAGE {
            Storage::EventSourced => {
                let (state, version) = self.start_state::<A>(key).await?;
                self.replay(store, key, state, version).await
            }
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
                Ok(Some(Loaded { state, version: row.version, snapshot_version: 0 }))
            }
        }
    }

    /// The newest usable snapshot, or the default state at version 0.
    async fn start_state<A: Aggregate>(&self, key: &StreamKey) -> Result<(A, u64)> {
        let Some(store) = self.snapshots.as_ref().filter(|_| self.policy(A::TYPE).is_some()) else {
            return Ok((A::default(), 0));
        };
        let Some(snapshot) = store.load(key).await? else {
            return Ok((A::default(), 0));
        };
        match serde_json::from_str::<A>(&snapshot.state) {
            Ok(state) => Ok((state, snapshot.version)),
            Err(e) => {
                tracing::warn!(
                    stream = %key, version = snapshot.version, error = %e,
                    "snapshot no longer matches the aggregate's shape; replaying the stream"
                );
                metrics::counter!(crate::metrics::STALE_SNAPSHOTS_TOTAL, "aggregate" => A::TYPE).increment(1);
                Ok((A::default(), 0))
            }
        }
    }

    /// Applies the events after `version` to `state`, streaming them from the store.
    async fn replay<A: Aggregate>(
        &self,
        store: &dyn EventStore,
        key: &StreamKey,
        mut state: A,
        snapshot_version: u64,
    ) -> Result<Option<Loaded<A>>> {
        let mut version = snapshot_version;
        let mut events = store.read_stream(key, version).await?;
        while let Some(stored) = events.next().await {
            let stored = stored?;
            if let Some(event) = self.decode::<A>(key, &stored)? {
                state.apply(&event);
            }
            version = stored.version;
        }
        Ok((version > 0).then_some(Loaded { state, version, snapshot_version }))
    }

    /// Decodes one stored event, upcasting it to the current schema version; `None` when
    /// it is unknown and the policy says skip.
    pub fn decode<A: Aggregate>(&self, key: &StreamKey, stored: &StreamEvent) -> Result<Option<A::Event>> {
        let serialization = |source| Error::Serialization {
            stream: key.to_string(),
            version: stored.version,
            event_type: stored.event_type.clone(),
            source,
        };
        let Some(current) = A::Event::current_version(&stored.event_type) else {
            if self.unknown == UnknownEventPolicy::Skip {
                tracing::warn!(stream = %key, version = stored.version, event_type = %stored.event_type, "skipping an unknown event type");
                return Ok(None);
            }
            return Err(Error::UnknownEventType {
                stream: key.to_string(),
                version: stored.version,
                event_type: stored.event_type.clone(),
            });
        };
        let decoded = if stored.schema_version == current {
            A::Event::from_json(&stored.event_type, &stored.payload)
        } else {
            let value = serde_json::from_str(&stored.payload).map_err(serialization)?;
            let value =
                self.upcasters.upcast(&stored.event_type, stored.schema_version, current, value).map_err(|reason| {
                    Error::Upcast {
                        stream: key.to_string(),
                        version: stored.version,
                        event_type: stored.event_type.clone(),
                        reason,
                    }
                })?;
            A::Event::from_value(&stored.event_type, value)
        };
        match decoded {
            Some(Ok(event)) => Ok(Some(event)),
            Some(Err(source)) => Err(serialization(source)),
            None => Err(Error::UnknownEventType {
                stream: key.to_string(),
                version: stored.version,
                event_type: stored.event_type.clone(),
            }),
        }
    }
}
