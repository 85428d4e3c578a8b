use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ports::{Document, ProjectionTxn};

/// The transaction a projection writes its read model in; the checkpoint moves in it too.
pub struct ProjectionTx {
    inner: Box<dyn ProjectionTxn>,
}

impl ProjectionTx {
    pub(crate) fn new(inner: Box<dyn ProjectionTxn>) -> Self {
        ProjectionTx { inner }
    }

    pub(crate) fn into_inner(self) -> Box<dyn ProjectionTxn> {
        self.inner
    }

    pub(crate) fn txn(&mut self) -> &mut dyn ProjectionTxn {
        &mut *self.inner
    }

    /// The JSON documents of `collection`.
    pub fn docs<'a>(&'a mut self, collection: &'a str) -> Docs<'a> {
        Docs { tx: &mut *self.inner, collection }
    }

    /// The backend's connection for typed tables, e.g. `tx.connection::<sqlx::PgConnection>()`
    /// with `cqrs-ddd-sqlx`; `None` for another backend.
    pub fn connection<C: Send + 'static>(&mut self) -> Option<&mut C> {
        self.inner.connection().downcast_mut::<C>()
    }
}

/// One collection of the JSON document store, inside a projection transaction.
pub struct Docs<'a> {
    tx: &'a mut dyn ProjectionTxn,
    collection: &'a str,
}

impl Docs<'_> {
    /// The document `id`, deserialized.
    pub async fn get<T: DeserializeOwned>(&mut self, id: &str) -> Result<Option<T>> {
        match self.tx.get_doc(self.collection, id).await? {
            Some(doc) => Ok(Some(decode(self.collection, &doc)?)),
            None => Ok(None),
        }
    }

    /// The raw document `id` (JSON and version).
    pub async fn get_raw(&mut self, id: &str) -> Result<Option<Document>> {
        self.tx.get_doc(self.collection, id).await
    }

    /// Inserts or replaces the document `id`; returns its new version.
    pub async fn put<T: Serialize>(&mut self, id: &str, value: &T) -> Result<u64> {
        let json = serde_json::to_string(value)
            .map_err(|source| Error::Encode { what: format!("document `{}/{id}`", self.collection), source })?;
        self.tx.put_doc(self.collection, id, json).await
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
        self.tx.delete_doc(self.collection, id).await
    }

    /// Deletes every document of the collection.
    pub async fn clear(&mut self) -> Result<()> {
        self.tx.clear_docs(self.collection).await
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
