//! The read models a query handler reads: the projection document store, scoped to the
//! query's tenant.

use std::sync::Arc;

use crate::Result;
use crate::ports::{Document, ProjectionStore};
use crate::spec::{Aggregation, Page, QueryOptions};

/// The document store registered with [`AppBuilder::read_models`](crate::AppBuilder::read_models).
#[derive(Clone)]
pub(crate) struct ReadModelStore(pub(crate) Arc<dyn ProjectionStore>);

/// The read models of one tenant: what [`QueryContext::read_models`](crate::QueryContext::read_models)
/// gives a query handler. Every call reads the documents of the query's tenant (none
/// outside a tenant's scope); the specifications run where the store runs them (in SQL
/// on the SQL stores).
#[derive(Clone)]
pub struct ReadModels {
    store: Arc<dyn ProjectionStore>,
    tenant: Option<String>,
}

impl ReadModels {
    pub(crate) fn new(store: Arc<dyn ProjectionStore>, tenant: Option<String>) -> Self {
        ReadModels { store, tenant }
    }

    /// The tenant whose documents these are.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// One document by id.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>> {
        self.store.document_of(self.tenant(), collection, id).await
    }

    /// The documents a query selects, in its order and page.
    pub async fn find(&self, collection: &str, query: &QueryOptions) -> Result<Vec<Document>> {
        self.store.find_of(self.tenant(), collection, query).await
    }

    /// A page and the cursor of the next one.
    pub async fn page(&self, collection: &str, query: &QueryOptions) -> Result<Page<Document>> {
        self.store.page_of(self.tenant(), collection, query).await
    }

    /// How many documents the query's filter selects.
    pub async fn count(&self, collection: &str, query: &QueryOptions) -> Result<u64> {
        self.store.count_of(self.tenant(), collection, query).await
    }

    /// Groups and measures.
    pub async fn aggregate(&self, collection: &str, aggregate: &Aggregation) -> Result<Vec<serde_json::Value>> {
        self.store.aggregate_of(self.tenant(), collection, aggregate).await
    }

    /// The typed documents a query selects (each document read into `T`).
    pub async fn find_as<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        query: &QueryOptions,
    ) -> Result<Vec<T>> {
        self.find(collection, query)
            .await?
            .into_iter()
            .map(|doc| {
                serde_json::from_str(&doc.json).map_err(|e| {
                    crate::Error::store(format!("document `{collection}/{}` does not read as its type: {e}", doc.id))
                })
            })
            .collect()
    }
}
