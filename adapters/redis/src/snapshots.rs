//! [`RedisSnapshots`]: aggregate snapshots in Redis, shared by every process.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{Snapshot, SnapshotStore, StreamKey, async_trait};
use cqrs_ddd::{Error, Result};
use redis::aio::ConnectionManager;

/// The prefix of every snapshot key unless [`RedisSnapshots::with_prefix`] says otherwise.
pub const DEFAULT_SNAPSHOT_PREFIX: &str = "cqrs_ddd:snapshot:";

/// Stores a snapshot unless the stored one is as new or newer (compared by version), in
/// one step on the server.
const SAVE: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', ARGV[2], 'taken_at', ARGV[3])
return 1
";

/// A [`SnapshotStore`] on Redis: the aggregate state shared across processes.
///
/// Give it to the application (`App::builder().snapshot_store(..)` with a
/// `SnapshotPolicy`): a process loads an aggregate from the newest snapshot any process
/// saved, then reads only the events after it, so a snapshot behind the stream is
/// caught up, never trusted as current: an outdated entry costs a longer tail, never a
/// lost update. A save never replaces a newer snapshot (two processes saving at once).
/// The tenant is part of every key. Redis that does not answer is a store error naming
/// the stream (load the aggregate from its events instead by leaving the snapshot store
/// out).
#[derive(Clone)]
pub struct RedisSnapshots {
    conn: ConnectionManager,
    prefix: Arc<str>,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSnapshots").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisSnapshots {
    /// Snapshots on the node at `url` (connected on first use).
    pub fn new(url: &str) -> std::result::Result<Self, redis::RedisError> {
        Ok(RedisSnapshots::from_manager(crate::connection::manager(url)?))
    }

    /// Snapshots over a connection you configured.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        RedisSnapshots { conn, prefix: DEFAULT_SNAPSHOT_PREFIX.into(), script: Arc::new(redis::Script::new(SAVE)) }
    }

    /// Keys start with `prefix` instead of [`DEFAULT_SNAPSHOT_PREFIX`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    fn key(&self, stream: &StreamKey) -> String {
        let part = |s: &str| s.replace('%', "%25").replace('/', "%2F");
        format!(
            "{}{}/{}/{}",
            self.prefix,
            stream.tenant_id.as_deref().map_or_else(|| "-".to_owned(), |t| format!("t{}", part(t))),
            part(&stream.stream_type),
            part(&stream.stream_id)
        )
    }
}

fn failed(stream: &StreamKey, what: &str, e: impl std::fmt::Display) -> Error {
    Error::store(format!("snapshot of `{}/{}` {what} in Redis: {e}", stream.stream_type, stream.stream_id))
}

#[async_trait]
impl SnapshotStore for RedisSnapshots {
    async fn load(&self, stream: &StreamKey) -> Result<Option<Snapshot>> {
        let mut conn = self.conn.clone();
        let (version, state, taken_at): (Option<u64>, Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(stream))
            .arg("version")
            .arg("state")
            .arg("taken_at")
            .query_async(&mut conn)
            .await
            .map_err(|e| failed(stream, "could not be read", e))?;
        let (Some(version), Some(state), Some(taken_at)) = (version, state, taken_at) else { return Ok(None) };
        let taken_at = DateTime::parse_from_rfc3339(&taken_at)
            .map_err(|e| failed(stream, "has an unreadable time", e))?
            .with_timezone(&Utc);
        Ok(Some(Snapshot { stream: stream.clone(), version, state, taken_at }))
    }

    async fn save(&self, snapshot: Snapshot) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .script
            .key(self.key(&snapshot.stream))
            .arg(snapshot.version)
            .arg(&snapshot.state)
            .arg(snapshot.taken_at.to_rfc3339())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| failed(&snapshot.stream, "could not be saved", e))?;
        Ok(())
    }
}
