//! Given events, then documents and query answers: a projection's `#[on]` methods run
//! through the same dispatch as the worker's, on an in-memory read-model store.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::de::DeserializeOwned;

use crate::cqrs::QueryHandler;
use crate::domain::{Event, Metadata, new_id};
use crate::error::{Error, Result};
use crate::memory::MemoryProjectionStore;
use crate::ports::{Document, ProjectionStore, StoredEvent, StreamKey};
use crate::projection::{Projection, ProjectionTx, apply_in};

/// Feeds a projection events one at a time, each applied and committed in its own
/// transaction as a worker would, then answers what the read model holds, directly or
/// through a `#[query_handler]`.
///
/// ```rust,standalone_crate
/// use cqrs_ddd::prelude::*;
/// use cqrs_ddd::testing::ProjectionFixture;
///
/// #[event]
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Deposited { pub amount: u64 }
///
/// pub struct Balances;
///
/// #[projection(name = "fixture_balances")]
/// impl Balances {
///     #[on]
///     async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
///         let amount = e.amount;
///         tx.docs("balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let mut balances = ProjectionFixture::new(Balances);
/// balances.given("Account", "a-1", Deposited { amount: 5 }).await?;
/// balances.given("Account", "a-1", Deposited { amount: 7 }).await?;
/// balances.given_in("acme", "Account", "a-1", Deposited { amount: 1 }).await?;
/// assert_eq!(balances.document::<u64>("balances", "a-1").await?, Some(12));
/// assert_eq!(balances.document_of::<u64>(Some("acme"), "balances", "a-1").await?, Some(1));
/// # Ok(()) }
/// ```
pub struct ProjectionFixture<P: Projection> {
    projection: P,
    store: MemoryProjectionStore,
    position: u64,
    versions: HashMap<StreamKey, u64>,
}

impl<P: Projection> std::fmt::Debug for ProjectionFixture<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionFixture")
            .field("projection", &P::NAME)
            .field("events", &self.position)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionFixture<P> {
    /// An empty read model for `projection`.
    pub fn new(projection: P) -> Self {
        ProjectionFixture { projection, store: MemoryProjectionStore::new(), position: 0, versions: HashMap::new() }
    }

    /// Applies `event` as the next event of stream `stream_type/stream_id` (no tenant).
    /// The projection's error, if it fails on the event, is returned and nothing of the
    /// event is written.
    pub async fn given<E: Event>(&mut self, stream_type: &str, stream_id: &str, event: E) -> Result<&mut Self> {
        self.apply(StreamKey::new(stream_type, stream_id), &event).await
    }

    /// [`ProjectionFixture::given`] for a stream of `tenant`.
    pub async fn given_in<E: Event>(
        &mut self,
        tenant: &str,
        stream_type: &str,
        stream_id: &str,
        event: E,
    ) -> Result<&mut Self> {
        self.apply(StreamKey::new(stream_type, stream_id).with_tenant(Some(tenant.to_owned())), &event).await
    }

    async fn apply<E: Event>(&mut self, stream: StreamKey, event: &E) -> Result<&mut Self> {
        stream.check()?;
        let payload = event.to_json_checked().map_err(|e| Error::Unstorable {
            what: format!("event `{}` of `{stream}`", E::NAME),
            reason: e.to_string(),
        })?;
        let version = self.versions.get(&stream).copied().unwrap_or(0) + 1;
        let position = self.position + 1;
        let stored = StoredEvent {
            metadata: Metadata { tenant_id: stream.tenant_id.clone(), ..Metadata::default() },
            stream: stream.clone(),
            event_id: new_id(),
            version,
            position,
            commit: position,
            event_type: E::NAME.to_owned(),
            schema_version: E::VERSION,
            payload,
            occurred_at: Utc::now(),
        };
        let mut tx = ProjectionTx::new(self.store.begin().await?);
        if let Err(e) = apply_in(&self.projection, &stored, &mut tx).await {
            tx.abandon().rollback().await?;
            return Err(e);
        }
        tx.finish().await?.commit().await?;
        self.versions.insert(stream, version);
        self.position = position;
        Ok(self)
    }

    /// A document of no tenant, decoded.
    pub async fn document<T: DeserializeOwned>(&self, collection: &str, id: &str) -> Result<Option<T>> {
        self.document_of(None, collection, id).await
    }

    /// A document of `tenant`, decoded.
    pub async fn document_of<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        collection: &str,
        id: &str,
    ) -> Result<Option<T>> {
        let Some(doc) = self.store.document_of(tenant, collection, id).await? else { return Ok(None) };
        serde_json::from_str(&doc.json).map(Some).map_err(|e| Error::Unstorable {
            what: format!("document `{collection}/{id}`"),
            reason: format!("it does not decode as the type asked for: {e}"),
        })
    }

    /// The documents of a collection, of no tenant.
    pub async fn documents(&self, collection: &str) -> Result<Vec<Document>> {
        self.store.documents(collection).await
    }

    /// The read-model store, for specifications (`find`, `count`, `page`).
    pub fn store(&self) -> Arc<dyn ProjectionStore> {
        Arc::new(self.store.clone())
    }

    /// Asks a query whose handler reads the read models (`QueryContext::read_models`),
    /// through an application over this store.
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        let app = crate::App::builder().read_models(self.store.clone()).build()?;
        app.query(query).await
    }
}
