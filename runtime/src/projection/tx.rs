use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ports::{Document, ProjectionTxn};

/// The transaction a projection writes its read model in; the checkpoint moves in it too.
///
/// Documents are cached for the batch: a document is read from the store once, every
/// change after that stays in the transaction, and the changed documents are written in
/// one go (per collection) just before the checkpoint moves. A projection that updates
/// one account per event thus costs one read and one write per account per batch, not
/// per event. Raw SQL on [`ProjectionTx::connection`] does not see unflushed documents;
/// call [`ProjectionTx::flush`] first when mixing the two.
///
/// Documents are kept per tenant: [`ProjectionTx::docs`] reads and writes the documents
/// of the tenant of the event being applied, so a projection written for one tenant
/// serves many without mixing them ([`ProjectionTx::docs_of`] names a tenant).
pub struct ProjectionTx {
    inner: Box<dyn ProjectionTxn>,
    /// The tenant of the event being applied.
    tenant: Option<String>,
    /// (tenant, collection) → id → the document as this batch sees it (`None`: absent
    /// or deleted).
    cache: HashMap<(Option<String>, String), HashMap<String, Slot>>,
}

struct Slot {
    doc: Option<Document>,
    dirty: bool,
}

impl ProjectionTx {
    pub(crate) fn new(inner: Box<dyn ProjectionTxn>) -> Self {
        ProjectionTx { inner, tenant: None, cache: HashMap::new() }
    }

    /// Flushes the cached documents and hands the transaction back.
    pub(crate) async fn finish(mut self) -> Result<Box<dyn ProjectionTxn>> {
        self.flush().await?;
        Ok(self.inner)
    }

    /// Drops the cached changes and hands the transaction back (for a rollback).
    pub(crate) fn abandon(self) -> Box<dyn ProjectionTxn> {
        self.inner
    }

    pub(crate) fn txn(&mut self) -> &mut dyn ProjectionTxn {
        &mut *self.inner
    }

    /// Scopes the documents to the tenant of the event about to be applied.
    pub(crate) fn set_tenant(&mut self, tenant: Option<&str>) {
        if self.tenant.as_deref() != tenant {
            self.tenant = tenant.map(str::to_owned);
        }
    }

    /// The tenant whose documents [`ProjectionTx::docs`] reaches (the tenant of the
    /// event being applied).
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The JSON documents of `collection`, of the tenant of the event being applied.
    pub fn docs<'a>(&'a mut self, collection: &'a str) -> Docs<'a> {
        let tenant = self.tenant.clone();
        Docs { tx: self, tenant, collection }
    }

    /// The JSON documents of `collection` of another tenant (`None`: without tenant).
    pub fn docs_of<'a>(&'a mut self, tenant: Option<&str>, collection: &'a str) -> Docs<'a> {
        Docs { tx: self, tenant: tenant.map(str::to_owned), collection }
    }

    /// Loads the documents `ids` of `collection` (of the current tenant) into the batch's
    /// cache with one query (absent ones are remembered as absent), so the projection's
    /// reads hit the cache.
    pub async fn prefetch(&mut self, collection: &str, ids: Vec<String>) -> Result<()> {
        let key = (self.tenant.clone(), collection.to_owned());
        let cached = self.cache.entry(key.clone()).or_default();
        let missing: Vec<String> = ids.into_iter().filter(|id| !cached.contains_key(id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = self.inner.get_docs(key.0.as_deref(), collection, &missing).await?;
        let cached = self.cache.entry(key).or_default();
        for id in missing {
            cached.entry(id).or_insert(Slot { doc: None, dirty: false });
        }
        for doc in found {
            cached.insert(doc.id.clone(), Slot { doc: Some(doc), dirty: false });
        }
        Ok(())
    }

    /// Writes the documents changed so far to the transaction.
    pub async fn flush(&mut self) -> Result<()> {
        for ((tenant, collection), slots) in &mut self.cache {
            let mut puts = Vec::new();
            let mut deletes = Vec::new();
            for (id, slot) in slots.iter_mut().filter(|(_, s)| s.dirty) {
                slot.dirty = false;
                match &slot.doc {
                    Some(doc) => puts.push((id.clone(), doc.json.clone())),
                    None => deletes.push(id.clone()),
                }
            }
            if !puts.is_empty() {
                // One order for every writer: two workers racing on a batch lock the
                // same documents in the same order, so they queue instead of deadlocking.
                puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                self.inner.put_docs(tenant.as_deref(), collection, puts).await?;
            }
            for id in deletes {
                self.inner.delete_doc(tenant.as_deref(), collection, &id).await?;
            }
        }
        Ok(())
    }

    /// The backend's connection for typed tables, e.g. `tx.connection::<sqlx::PgConnection>()`
    /// with `cqrs-ddd-sqlx`; `None` for another backend.
    pub fn connection<C: Send + 'static>(&mut self) -> Option<&mut C> {
        self.inner.connection().downcast_mut::<C>()
    }

    async fn slot(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<&mut Slot> {
        let key = (tenant.map(str::to_owned), collection.to_owned());
        let cached = self.cache.get(&key).is_some_and(|c| c.contains_key(id));
        if !cached {
            let doc = self.inner.get_doc(tenant, collection, id).await?;
            self.cache.entry(key.clone()).or_default().insert(id.to_owned(), Slot { doc, dirty: false });
        }
        self.cache.get_mut(&key).and_then(|c| c.get_mut(id)).ok_or_else(|| Error::store("document cache lost an entry"))
    }
}

/// One collection of the JSON document store, inside a projection transaction.
pub struct Docs<'a> {
    tx: &'a mut ProjectionTx,
    tenant: Option<String>,
    collection: &'a str,
}

impl Docs<'_> {
    /// The document `id`, deserialized.
    pub async fn get<T: DeserializeOwned>(&mut self, id: &str) -> Result<Option<T>> {
        match self.get_raw(id).await? {
            Some(doc) => Ok(Some(decode(self.collection, &doc)?)),
            None => Ok(None),
        }
    }

    /// The raw document `id` (JSON and version).
    pub async fn get_raw(&mut self, id: &str) -> Result<Option<Document>> {
        Ok(self.tx.slot(self.tenant.as_deref(), self.collection, id).await?.doc.clone())
    }

    /// Inserts or replaces the document `id`; returns its new version.
    pub async fn put<T: Serialize>(&mut self, id: &str, value: &T) -> Result<u64> {
        let json = serde_json::to_string(value)
            .map_err(|source| Error::Encode { what: format!("document `{}/{id}`", self.collection), source })?;
        let slot = self.tx.slot(self.tenant.as_deref(), self.collection, id).await?;
        let version = slot.doc.as_ref().map_or(1, |d| d.version + 1);
        slot.doc = Some(Document { id: id.to_owned(), version, json });
        slot.dirty = true;
        Ok(version)
    }

    /// Reads the document (or `T::default()`), changes it, writes it back.
    pub async fn update<T, F>(&mut self, id: &str, change: F) -> Result<u64>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnOnce(&mut T),
    {
        let mut value: T = self.get(id).await?.unwrap_or_default();
        change(&mut value);
        self.put(id, &value).await
    }

    /// Deletes the document `id`; whether it existed.
    pub async fn delete(&mut self, id: &str) -> Result<bool> {
        let slot = self.tx.slot(self.tenant.as_deref(), self.collection, id).await?;
        let existed = slot.doc.take().is_some();
        slot.dirty = true;
        Ok(existed)
    }

    /// Deletes every document of the collection, of every tenant (a reset).
    pub async fn clear(&mut self) -> Result<()> {
        self.tx.cache.retain(|(_, c), _| c != self.collection);
        self.tx.inner.clear_docs(self.collection).await
    }
}

/// Deserializes a stored document.
pub(crate) fn decode<T: DeserializeOwned>(collection: &str, doc: &Document) -> Result<T> {
    serde_json::from_str(&doc.json).map_err(|source| Error::Serialization {
        stream: format!("document {collection}/{}", doc.id),
        version: doc.version,
        event_type: "<document>".to_owned(),
        source,
    })
}
