//! [`RedisCache`]: the cache port on Redis.

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::cache::{CacheBackend, CacheError};
use cqrs_ddd::ports::async_trait;
use redis::aio::ConnectionManager;

use crate::lock::ttl_ms;

/// The prefix of every cache key unless [`RedisCache::with_prefix`] says otherwise.
pub const DEFAULT_CACHE_PREFIX: &str = "cqrs_ddd:cache:";

/// How many keys one `SCAN` step and one `DEL` of [`CacheBackend::clear_prefix`] handle.
const BATCH: usize = 500;

/// A [`CacheBackend`] on Redis: `GET`, `SET … PX`, `DEL`, `MGET`, a pipeline for
/// [`set_many`](CacheBackend::set_many), and `SCAN MATCH` + `DEL` in batches of 500 for
/// [`clear_prefix`](CacheBackend::clear_prefix) (which walks the whole keyspace: keep it
/// for rare invalidations). Every failure is a [`CacheError`]; nothing is swallowed.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn unavailable(operation: &'static str, key: &str, e: &redis::RedisError) -> CacheError {
    CacheError::Unavailable { operation, key: key.to_owned(), reason: e.to_string() }
}

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisCache {
    /// A cache on the node at `url` (connected on first use).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisCache::from_manager(crate::connection::manager(url)?))
    }

    /// A cache over a connection you configured.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        RedisCache { conn, prefix: DEFAULT_CACHE_PREFIX.into() }
    }

    /// Keys under another prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl CacheBackend for RedisCache {
    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("GET").arg(self.key(key)).query_async(&mut conn).await.map_err(|e| unavailable("GET", key, &e))
    }

    async fn set_raw(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        cmd.query_async::<()>(&mut conn).await.map_err(|e| unavailable("SET", key, &e))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL").arg(self.key(key)).query_async::<()>(&mut conn).await.map_err(|e| unavailable("DEL", key, &e))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let mut conn = self.conn.clone();
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        redis::cmd("MGET").arg(full).query_async(&mut conn).await.map_err(|e| unavailable("MGET", first, &e))
    }

    async fn set_many(&self, items: Vec<(String, Vec<u8>)>, ttl: Option<Duration>) -> Result<(), CacheError> {
        let Some(first) = items.first().map(|(k, _)| k.clone()) else { return Ok(()) };
        let mut pipe = redis::pipe();
        for (k, v) in items {
            let cmd = pipe.cmd("SET").arg(self.key(&k)).arg(v);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_ms(ttl));
            }
            cmd.ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(|e| unavailable("SET (pipeline)", &first, &e))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), CacheError> {
        let Some(first) = keys.first() else { return Ok(()) };
        let mut conn = self.conn.clone();
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        redis::cmd("DEL").arg(full).query_async::<()>(&mut conn).await.map_err(|e| unavailable("DEL", first, &e))
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable("SCAN", prefix, &e))?;
            for chunk in keys.chunks(BATCH) {
                let n: u64 = redis::cmd("DEL")
                    .arg(chunk)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| unavailable("DEL", prefix, &e))?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn health(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(|e| unavailable("PING", "", &e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    }
}
