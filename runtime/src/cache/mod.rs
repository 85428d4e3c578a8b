//! A cache port: a [`CacheBackend`] stores raw bytes under string keys; the typed
//! [`Cache`] handle (de)serialises values with serde and puts every key in the current
//! tenant's namespace, by construction.
//!
//! Errors are returned, never swallowed: the caller decides whether a cache failure
//! degrades to a miss ([`CacheError`] converts into [`crate::Error::Store`]).
//!
//! ```
//! use std::time::Duration;
//! use cqrs_ddd::cache::{Cache, MemoryCache};
//! use cqrs_ddd::RequestContext;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cqrs_ddd::cache::CacheError> {
//! let cache = Cache::new(MemoryCache::new());
//! RequestContext::new().with_tenant("t1").scope(async {
//!     cache.set("balance:a-1", &100u64, Some(Duration::from_secs(60))).await
//! }).await?;
//! // Another tenant does not see it.
//! let seen: Option<u64> = RequestContext::new().with_tenant("t2").scope(cache.get("balance:a-1")).await?;
//! assert_eq!(seen, None);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::async_trait;

mod read_models;

pub use read_models::CachedDocuments;

/// Why a cache call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend did not answer or refused the command.
    #[error("the cache backend is unavailable ({operation} on `{key}`): {reason}")]
    Unavailable {
        /// What was asked (`GET`, `SET`, ...).
        operation: &'static str,
        /// The (first) key concerned.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// A value could not be encoded, or a stored value decoded into the asked type.
    #[error("the cached value of `{key}` cannot be (de)serialised: {source}")]
    Serde {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<CacheError> for crate::Error {
    fn from(e: CacheError) -> Self {
        crate::Error::store(e)
    }
}

/// A cache backend on raw keys and bytes (Redis, memory). Keys arrive already namespaced
/// by [`Cache`]; a backend may add its own prefix.
#[async_trait]
pub trait CacheBackend: Send + Sync + 'static {
    /// The value of `key`, if present and not expired.
    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Stores `value` under `key`, expiring after `ttl` (never when `None`).
    async fn set_raw(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Removes `key` (absent is not an error).
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// The values of several keys, in the order asked.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError>;
    /// Stores several values with one `ttl`.
    async fn set_many(&self, items: Vec<(String, Vec<u8>)>, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Removes several keys.
    async fn delete_many(&self, keys: &[String]) -> Result<(), CacheError>;
    /// Removes every key that starts with `prefix`; returns how many.
    async fn clear_prefix(&self, prefix: &str) -> Result<u64, CacheError>;
    /// Whether the backend answers.
    async fn health(&self) -> Result<(), CacheError>;
}

/// A typed cache over a shared [`CacheBackend`]. Every key is put in the namespace of the
/// current tenant ([`crate::RequestContext::current`]`.tenant_id`; outside a request or
/// without a tenant, a namespace of its own), so one tenant never reads another's values.
/// Values are JSON.
#[derive(Clone)]
pub struct Cache {
    backend: Arc<dyn CacheBackend>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

/// The current tenant's namespace: `t/<tenant>/` (with `%` and `/` escaped) or `-/`.
fn namespace() -> String {
    match crate::RequestContext::current().and_then(|r| r.tenant_id) {
        Some(t) => format!("t/{}/", t.replace('%', "%25").replace('/', "%2F")),
        None => "-/".to_owned(),
    }
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, CacheError> {
    serde_json::to_vec(value).map_err(|source| CacheError::Serde { key: key.to_owned(), source })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: Option<Vec<u8>>) -> Result<Option<T>, CacheError> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(|source| CacheError::Serde { key: key.to_owned(), source }))
        .transpose()
}

impl Cache {
    /// A cache over a backend.
    pub fn new(backend: impl CacheBackend) -> Self {
        Cache { backend: Arc::new(backend) }
    }

    /// A cache over a shared backend.
    pub fn from_arc(backend: Arc<dyn CacheBackend>) -> Self {
        Cache { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn CacheBackend> {
        &self.backend
    }

    /// The key `key` is stored under for the current tenant.
    pub fn scoped_key(key: &str) -> String {
        format!("{}{key}", namespace())
    }

    /// The value of `key`, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let bytes = self.backend.get_raw(&Cache::scoped_key(key)).await?;
        decode(key, bytes)
    }

    /// Stores `value` under `key` for `ttl` (for ever when `None`).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let bytes = encode(key, value)?;
        self.backend.set_raw(&Cache::scoped_key(key), bytes, ttl).await
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.backend.delete(&Cache::scoped_key(key)).await
    }

    /// The values of several keys, in the order asked.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<Option<T>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let scoped: Vec<String> = keys.iter().map(|k| Cache::scoped_key(k)).collect();
        let values = self.backend.get_many(&scoped).await?;
        keys.iter().zip(values).map(|(k, v)| decode(k, v)).collect()
    }

    /// Stores several values with one `ttl`.
    pub async fn set_many<T: Serialize>(&self, items: &[(&str, T)], ttl: Option<Duration>) -> Result<(), CacheError> {
        if items.is_empty() {
            return Ok(());
        }
        let encoded = items
            .iter()
            .map(|(k, v)| Ok((Cache::scoped_key(k), encode(k, v)?)))
            .collect::<Result<Vec<_>, CacheError>>()?;
        self.backend.set_many(encoded, ttl).await
    }

    /// Removes several keys.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let scoped: Vec<String> = keys.iter().map(|k| Cache::scoped_key(k)).collect();
        self.backend.delete_many(&scoped).await
    }

    /// Removes the current tenant's keys that start with `prefix`; returns how many.
    pub async fn clear_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        self.backend.clear_prefix(&Cache::scoped_key(prefix)).await
    }

    /// Whether the backend answers.
    pub async fn health(&self) -> Result<(), CacheError> {
        self.backend.health().await
    }
}

/// A cache in this process, with per-key expiry (expired entries are dropped when read
/// and whenever the map is written to).
#[derive(Clone, Default)]
pub struct MemoryCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A value and when it expires.
type Entry = (Vec<u8>, Option<Instant>);

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("entries", &self.entries.lock().len()).finish()
    }
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        MemoryCache::default()
    }

    fn live(entry: &Entry, now: Instant) -> bool {
        entry.1.is_none_or(|until| until > now)
    }
}

#[async_trait]
impl CacheBackend for MemoryCache {
    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        Ok(self.entries.lock().get(key).filter(|e| MemoryCache::live(e, now)).map(|e| e.0.clone()))
    }

    async fn set_raw(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.set_many(vec![(key.to_owned(), value)], ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.lock().remove(key);
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let now = Instant::now();
        let entries = self.entries.lock();
        Ok(keys.iter().map(|k| entries.get(k).filter(|e| MemoryCache::live(e, now)).map(|e| e.0.clone())).collect())
    }

    async fn set_many(&self, items: Vec<(String, Vec<u8>)>, ttl: Option<Duration>) -> Result<(), CacheError> {
        let now = Instant::now();
        let until = ttl.map(|t| now + t);
        let mut entries = self.entries.lock();
        entries.retain(|_, e| MemoryCache::live(e, now));
        for (k, v) in items {
            entries.insert(k, (v, until));
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), CacheError> {
        let mut entries = self.entries.lock();
        for k in keys {
            entries.remove(k);
        }
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        entries.retain(|_, e| MemoryCache::live(e, now));
        let before = entries.len();
        entries.retain(|k, _| !k.starts_with(prefix));
        Ok((before - entries.len()) as u64)
    }

    async fn health(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestContext;

    #[tokio::test]
    async fn values_round_trip_expire_and_stay_in_their_tenant() {
        let cache = Cache::new(MemoryCache::new());
        let t1 = RequestContext::new().with_tenant("t1");
        t1.clone()
            .scope(async {
                cache.set("a", &1u32, None).await.unwrap();
                cache.set("short", &2u32, Some(Duration::from_millis(1))).await.unwrap();
                cache.set_many(&[("p:1", 10u32), ("p:2", 20)], None).await.unwrap();
            })
            .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        t1.clone()
            .scope(async {
                assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
                assert_eq!(cache.get::<u32>("short").await.unwrap(), None, "expired");
                assert_eq!(cache.get_many::<u32>(&["p:2", "x", "p:1"]).await.unwrap(), [Some(20), None, Some(10)]);
            })
            .await;
        assert_eq!(RequestContext::new().with_tenant("t2").scope(cache.get::<u32>("a")).await.unwrap(), None);
        assert_eq!(cache.get::<u32>("a").await.unwrap(), None, "no tenant is a namespace of its own");
        assert_eq!(RequestContext::new().with_tenant("t2").scope(cache.clear_prefix("")).await.unwrap(), 0);
        t1.scope(async {
            assert_eq!(cache.clear_prefix("p:").await.unwrap(), 2);
            assert!(matches!(cache.get::<String>("a").await, Err(CacheError::Serde { .. })));
            cache.delete_many(&["a"]).await.unwrap();
            assert_eq!(cache.get::<u32>("a").await.unwrap(), None);
        })
        .await;
    }
}
