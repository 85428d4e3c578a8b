//! Read-model queries answered from a cache, invalidated after the projection commits.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::CacheBackend;
use crate::Result;
use crate::ports::{Cursor, DeadLetter, Document, ProjectionStore, ProjectionTxn, async_trait};
use crate::spec::{Aggregation, Page, QueryOptions};

/// A [`ProjectionStore`] whose read-model queries (`find_of`, `page_of`, `count_of`,
/// `aggregate_of`) are answered from a cache when they can be.
///
/// Each (tenant, collection) has a **generation** in the cache, and a cached answer is
/// stored under the generation it was read in. A projection transaction that writes
/// documents of a collection gives it a new generation **after it committed** (never
/// before, never on a rollback), so answers read before the commit are not served again.
/// A new generation is a fresh random value, not an increment, so two processes
/// committing at once cannot leave one generation standing for two states. Clearing a
/// collection (a rebuild) renews the generation of the whole collection.
///
/// The tenant is in every key, so a cached answer is never served to another tenant. A
/// cache that does not answer is bypassed (the store answers, with a warning); a
/// generation that could not be renewed after a commit leaves the old answers until
/// their TTL ends, which bounds how stale they can be.
pub struct CachedDocuments<S> {
    inner: S,
    cache: Arc<dyn CacheBackend>,
    ttl: Duration,
}

impl<S: ProjectionStore> CachedDocuments<S> {
    /// Queries of `inner` cached in `cache` for at most `ttl`.
    pub fn new(inner: S, cache: Arc<dyn CacheBackend>, ttl: Duration) -> Self {
        CachedDocuments { inner, cache, ttl }
    }

    /// The store answering the misses.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cache key of a query's answer under the current generations, if the cache
    /// answers.
    async fn key(&self, tenant: Option<&str>, collection: &str, what: &str, query: &str) -> Option<String> {
        let keys = [generation_key(Of::Everyone, collection), generation_key(Of::Tenant(tenant), collection)];
        match self.cache.get_many(&keys).await {
            Ok(gens) => {
                let gen_of =
                    |g: &Option<Vec<u8>>| g.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                Some(format!(
                    "docs/{}/{}/{}/{}/{what}/{query}",
                    scope(tenant),
                    escape(collection),
                    gen_of(&gens[0]),
                    gen_of(&gens[1])
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the read-model cache does not answer; querying the store");
                None
            }
        }
    }

    async fn cached<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        key: Option<String>,
        load: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(key) = key else { return load.await };
        if let Ok(Some(bytes)) = self.cache.get_raw(&key).await
            && let Ok(value) = serde_json::from_slice(&bytes)
        {
            return Ok(value);
        }
        let value = load.await?;
        if let Ok(bytes) = serde_json::to_vec(&value)
            && let Err(e) = self.cache.set_raw(&key, bytes, Some(self.ttl)).await
        {
            tracing::warn!(error = %e, "a read-model answer could not be cached");
        }
        Ok(value)
    }
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

fn scope(tenant: Option<&str>) -> String {
    tenant.map_or_else(|| "-".to_owned(), |t| format!("t{}", escape(t)))
}

/// Whose documents a generation covers.
#[derive(Clone, Copy)]
enum Of<'a> {
    /// One tenant's (or those without tenant).
    Tenant(Option<&'a str>),
    /// Every tenant's.
    Everyone,
}

/// The key of a generation of a collection's documents.
fn generation_key(of: Of<'_>, collection: &str) -> String {
    match of {
        Of::Tenant(t) => format!("docs-gen/{}/{}", scope(t), escape(collection)),
        Of::Everyone => format!("docs-gen/*/{}", escape(collection)),
    }
}

/// A document as cached: (id, version, json).
type Row = (String, u64, String);

fn rows(docs: &[Document]) -> Vec<Row> {
    docs.iter().map(|d| (d.id.clone(), d.version, d.json.clone())).collect()
}

fn documents(rows: Vec<Row>) -> Vec<Document> {
    rows.into_iter().map(|(id, version, json)| Document { id, version, json }).collect()
}

#[async_trait]
impl<S: ProjectionStore> ProjectionStore for CachedDocuments<S> {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        let inner = self.inner.begin().await?;
        Ok(Box::new(Invalidating {
            inner,
            cache: self.cache.clone(),
            written: BTreeSet::new(),
            cleared: BTreeSet::new(),
        }))
    }

    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>> {
        self.inner.checkpoint(projection, partition).await
    }

    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool> {
        self.inner.acquire_lease(projection, partition, owner, ttl).await
    }

    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()> {
        self.inner.release_lease(projection, partition, owner).await
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(projection).await
    }

    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()> {
        self.inner.remove_dead_letter(projection, event_id).await
    }

    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.inner.document_of(tenant, collection, id).await
    }

    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        self.inner.documents_of(tenant, collection).await
    }

    async fn find_of(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<Vec<Document>> {
        let key = self.key(tenant, collection, "find", &format!("{query:?}")).await;
        let found = self.cached(key, async { Ok(rows(&self.inner.find_of(tenant, collection, query).await?)) });
        Ok(documents(found.await?))
    }

    async fn page_of(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<Page<Document>> {
        let key = self.key(tenant, collection, "page", &format!("{query:?}")).await;
        let page = self.cached(key, async {
            let page = self.inner.page_of(tenant, collection, query).await?;
            Ok((rows(&page.items), page.next))
        });
        let (items, next) = page.await?;
        Ok(Page { items: documents(items), next })
    }

    async fn count_of(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<u64> {
        let key = self.key(tenant, collection, "count", &format!("{:?}", query.spec)).await;
        self.cached(key, self.inner.count_of(tenant, collection, query)).await
    }

    async fn aggregate_of(
        &self,
        tenant: Option<&str>,
        collection: &str,
        aggregation: &Aggregation,
    ) -> Result<Vec<serde_json::Value>> {
        let key = self.key(tenant, collection, "aggregate", &format!("{aggregation:?}")).await;
        self.cached(key, self.inner.aggregate_of(tenant, collection, aggregation)).await
    }

    async fn ensure_index(&self, collection: &str, index: &crate::spec::Index) -> Result<()> {
        self.inner.ensure_index(collection, index).await
    }
}

/// A projection transaction that renews the generations of what it wrote once it
/// committed.
struct Invalidating {
    inner: Box<dyn ProjectionTxn>,
    cache: Arc<dyn CacheBackend>,
    written: BTreeSet<(Option<String>, String)>,
    cleared: BTreeSet<String>,
}

impl Invalidating {
    fn wrote(&mut self, tenant: Option<&str>, collection: &str) {
        self.written.insert((tenant.map(ToOwned::to_owned), collection.to_owned()));
    }
}

#[async_trait]
impl ProjectionTxn for Invalidating {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.inner.get_doc(tenant, collection, id).await
    }

    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        self.wrote(tenant, collection);
        self.inner.put_doc(tenant, collection, id, json).await
    }

    async fn get_docs(&mut self, tenant: Option<&str>, collection: &str, ids: &[String]) -> Result<Vec<Document>> {
        self.inner.get_docs(tenant, collection, ids).await
    }

    async fn put_docs(&mut self, tenant: Option<&str>, collection: &str, docs: Vec<(String, String)>) -> Result<()> {
        self.wrote(tenant, collection);
        self.inner.put_docs(tenant, collection, docs).await
    }

    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        self.wrote(tenant, collection);
        self.inner.delete_doc(tenant, collection, id).await
    }

    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        self.cleared.insert(collection.to_owned());
        self.inner.clear_docs(collection).await
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()> {
        self.inner.save_checkpoint(projection, partition, expected, to).await
    }

    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        self.inner.reset_checkpoints(projection).await
    }

    async fn dead_letter(&mut self, letter: DeadLetter) -> Result<()> {
        self.inner.dead_letter(letter).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let Invalidating { inner, cache, written, cleared } = *self;
        inner.commit().await?;
        let keys = written
            .iter()
            .map(|(tenant, collection)| generation_key(Of::Tenant(tenant.as_deref()), collection))
            .chain(cleared.iter().map(|collection| generation_key(Of::Everyone, collection)));
        let renewed: Vec<(String, Vec<u8>)> = keys.map(|k| (k, Uuid::now_v7().to_string().into_bytes())).collect();
        if !renewed.is_empty()
            && let Err(e) = cache.set_many(renewed, None).await
        {
            tracing::error!(error = %e, "read-model cache generations not renewed after a commit; cached answers stay until their TTL");
        }
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }

    fn connection(&mut self) -> &mut (dyn std::any::Any + Send) {
        self.inner.connection()
    }
}
