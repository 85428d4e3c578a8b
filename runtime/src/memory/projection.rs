use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ports::{Cursor, DeadLetter, Document, ProjectionStore, ProjectionTxn};

/// Checkpoints, leases, dead letters and documents in memory. Transactions keep their
/// writes aside and apply them at commit, under one lock.
#[derive(Clone, Default)]
pub struct MemoryProjectionStore {
    inner: Arc<Mutex<State>>,
}

/// A document's tenant and id within its collection.
type DocKey = (Option<String>, String);

fn doc_key(tenant: Option<&str>, id: &str) -> DocKey {
    (tenant.map(str::to_owned), id.to_owned())
}

#[derive(Default)]
struct State {
    /// collection → (tenant, id) → document.
    docs: HashMap<String, BTreeMap<DocKey, Document>>,
    checkpoints: HashMap<(String, u32), Cursor>,
    leases: HashMap<(String, u32), (String, Instant)>,
    dead: Vec<DeadLetter>,
}

impl MemoryProjectionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProjectionStore for MemoryProjectionStore {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        Ok(Box::new(MemoryTxn { store: self.inner.clone(), ..MemoryTxn::default() }))
    }

    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>> {
        Ok(self.inner.lock().checkpoints.get(&(projection.to_owned(), partition)).copied())
    }

    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut st = self.inner.lock();
        let key = (projection.to_owned(), partition);
        match st.leases.get(&key) {
            Some((holder, until)) if holder != owner && *until > now => Ok(false),
            _ => {
                st.leases.insert(key, (owner.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let key = (projection.to_owned(), partition);
        if st.leases.get(&key).is_some_and(|(holder, _)| holder == owner) {
            st.leases.remove(&key);
        }
        Ok(())
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        Ok(self.inner.lock().dead.iter().filter(|d| d.projection == projection).cloned().collect())
    }

    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()> {
        self.inner.lock().dead.retain(|d| !(d.projection == projection && d.event_id == event_id));
        Ok(())
    }

    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        crate::ports::check_tenant(tenant)?;
        Ok(self.inner.lock().docs.get(collection).and_then(|c| c.get(&doc_key(tenant, id))).cloned())
    }

    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        crate::ports::check_tenant(tenant)?;
        let st = self.inner.lock();
        let Some(c) = st.docs.get(collection) else { return Ok(Vec::new()) };
        Ok(c.iter().filter(|((t, _), _)| t.as_deref() == tenant).map(|(_, d)| d.clone()).collect())
    }
}

#[derive(Default)]
struct MemoryTxn {
    store: Arc<Mutex<State>>,
    /// `None` value: deleted in this transaction.
    writes: HashMap<(String, DocKey), Option<Document>>,
    cleared: HashSet<String>,
    checkpoints: Vec<(String, u32, Option<Cursor>, Cursor)>,
    reset: Vec<String>,
    dead: Vec<DeadLetter>,
    /// Typed-table access does not exist in memory; this stands in for it.
    connection: (),
}

impl MemoryTxn {
    fn read(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        crate::ports::check_tenant(tenant)?;
        let key = doc_key(tenant, id);
        if let Some(w) = self.writes.get(&(collection.to_owned(), key.clone())) {
            return Ok(w.clone());
        }
        if self.cleared.contains(collection) {
            return Ok(None);
        }
        Ok(self.store.lock().docs.get(collection).and_then(|c| c.get(&key)).cloned())
    }
}

#[async_trait]
impl ProjectionTxn for MemoryTxn {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        self.read(tenant, collection, id)
    }

    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        let version = self.read(tenant, collection, id)?.map_or(1, |d| d.version + 1);
        let doc = Document { id: id.to_owned(), version, json };
        self.writes.insert((collection.to_owned(), doc_key(tenant, id)), Some(doc));
        Ok(version)
    }

    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        let existed = self.read(tenant, collection, id)?.is_some();
        self.writes.insert((collection.to_owned(), doc_key(tenant, id)), None);
        Ok(existed)
    }

    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        self.writes.retain(|(c, _), _| c != collection);
        self.cleared.insert(collection.to_owned());
        Ok(())
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()> {
        self.checkpoints.push((projection.to_owned(), partition, expected, to));
        Ok(())
    }

    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        self.reset.push(projection.to_owned());
        Ok(())
    }

    async fn dead_letter(&mut self, letter: DeadLetter) -> Result<()> {
        self.dead.push(letter);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let me = *self;
        let mut st = me.store.lock();
        for (projection, partition, expected, _) in &me.checkpoints {
            let actual = st.checkpoints.get(&(projection.clone(), *partition)).copied();
            let reset = me.reset.contains(projection);
            if !reset && actual != *expected {
                return Err(Error::Conflict {
                    stream: format!("checkpoint {projection}/{partition}"),
                    expected: expected.map_or(0, |c| c.position),
                    actual: actual.map_or(0, |c| c.position),
                });
            }
        }
        for projection in &me.reset {
            st.checkpoints.retain(|(p, _), _| p != projection);
        }
        for collection in &me.cleared {
            st.docs.remove(collection);
        }
        for ((collection, id), doc) in me.writes {
            let c = st.docs.entry(collection).or_default();
            match doc {
                Some(d) => {
                    c.insert(id, d);
                }
                None => {
                    c.remove(&id);
                }
            }
        }
        for (projection, partition, _, to) in me.checkpoints {
            st.checkpoints.insert((projection, partition), to);
        }
        st.dead.extend(me.dead);
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    fn connection(&mut self) -> &mut (dyn Any + Send) {
        &mut self.connection
    }
}
