//! Locks on PostgreSQL advisory locks, for applications that run only PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::lock::{Lease, LockBackend, LockError, LockMode, LockOptions, Resource};
use cqrs_ddd::ports::async_trait;
use parking_lot::Mutex;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::Instant;

use crate::PgStore;
use crate::dialect::Dialect as _;

/// A [`LockBackend`] on PostgreSQL's advisory locks (`pg_advisory_lock` for writers,
/// `pg_advisory_lock_shared` for readers), so readers share and writers exclude, across
/// every process on the database.
///
/// - Each held lock keeps a connection of its own (taken from the store's pool and
///   detached from it, so the pool opens another): advisory locks belong to a session.
///   A process that dies closes its connections, and the database releases their locks.
/// - Waiting uses the database's `lock_timeout`: the database queues waiters (not
///   strictly first come, first served, but without polling).
/// - A lease ends after its TTL unless extended: this process then unlocks it (the
///   database has no lease of its own).
/// - Fencing tokens come from a counter row per resource (`lock_fences`), incremented
///   once the lock is held.
/// - The advisory key is a 64-bit hash of the resource (tenant, kind, id): two
///   resources whose hashes collide share a lock, which is safe but may make one wait.
#[derive(Clone)]
pub struct PgLocks {
    pool: PgPool,
    schema: String,
    held: Arc<Mutex<HashMap<String, Holding>>>,
    idle: Arc<Mutex<Vec<PgConnection>>>,
}

struct Holding {
    until: Instant,
    conn: Option<PgConnection>,
    key: i64,
    mode: LockMode,
}

/// Connections kept for the next locks once theirs were released.
const IDLE: usize = 4;

impl PgLocks {
    /// Locks on the store's database (its schema holds the fencing counters; run
    /// `migrate` first).
    pub fn new(store: &PgStore) -> Self {
        PgLocks {
            pool: store.pool().clone(),
            schema: store.dialect.prefix().to_owned(),
            held: Arc::new(Mutex::new(HashMap::new())),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn connection(&self, resource: &Resource) -> Result<PgConnection, LockError> {
        let idle = self.idle.lock().pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                self.pool.acquire().await.map(sqlx::pool::PoolConnection::detach).map_err(|e| unavailable(resource, &e))
            }
        }
    }

    /// Unlocks and keeps the connection for another lock (or closes it).
    async fn unlock(&self, mut conn: PgConnection, key: i64, mode: LockMode) {
        let sql = match mode {
            LockMode::Write => "SELECT pg_advisory_unlock($1)",
            LockMode::Read => "SELECT pg_advisory_unlock_shared($1)",
        };
        match sqlx::query(sql).bind(key).execute(&mut conn).await {
            Ok(_) if self.idle.lock().len() < IDLE => self.idle.lock().push(conn),
            _ => {
                let _ = conn.close().await;
            }
        }
    }

    /// Ends a lease whose TTL passed without an extension.
    fn expire_later(&self, token: String) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let until = me.held.lock().get(&token).map(|h| h.until);
                let Some(until) = until else { return };
                if Instant::now() < until {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                let ended = me.held.lock().remove(&token);
                if let Some(Holding { conn: Some(conn), key, mode, .. }) = ended {
                    me.unlock(conn, key, mode).await;
                }
                return;
            }
        });
    }
}

fn unavailable(resource: &Resource, e: &dyn std::fmt::Display) -> LockError {
    LockError::Unavailable { resource: resource.clone(), reason: e.to_string() }
}

/// The advisory key of a resource (FNV-1a of its key).
fn advisory_key(resource: &Resource) -> i64 {
    let h = resource
        .key()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    i64::from_ne_bytes(h.to_ne_bytes())
}

#[async_trait]
impl LockBackend for PgLocks {
    async fn acquire(&self, resource: &Resource, mode: LockMode, options: &LockOptions) -> Result<Lease, LockError> {
        let key = advisory_key(resource);
        let mut conn = self.connection(resource).await?;
        let wait = match mode {
            LockMode::Write => "SELECT pg_advisory_lock($1)",
            LockMode::Read => "SELECT pg_advisory_lock_shared($1)",
        };
        let timeout_ms = options.timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
        let locked = async {
            sqlx::query("SELECT set_config('lock_timeout', $1, false)").bind(&timeout_ms).execute(&mut conn).await?;
            let r = sqlx::query(wait).bind(key).execute(&mut conn).await;
            sqlx::query("SELECT set_config('lock_timeout', '0', false)").execute(&mut conn).await?;
            r
        }
        .await;
        match locked {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
                let _ = sqlx::query("SELECT set_config('lock_timeout', '0', false)").execute(&mut conn).await;
                self.idle.lock().push(conn);
                return Err(LockError::Timeout { resource: resource.clone(), timeout: options.timeout });
            }
            Err(e) => return Err(unavailable(resource, &e)),
        }
        let fence: Result<i64, sqlx::Error> = sqlx::query_scalar(&format!(
            "INSERT INTO {}lock_fences (resource, fence) VALUES ($1, 1) \
             ON CONFLICT (resource) DO UPDATE SET fence = {0}lock_fences.fence + 1 RETURNING fence",
            self.schema
        ))
        .bind(resource.key())
        .fetch_one(&mut conn)
        .await;
        let fence = match fence {
            Ok(f) => u64::try_from(f).unwrap_or(0),
            Err(e) => {
                self.unlock(conn, key, mode).await;
                return Err(unavailable(resource, &e));
            }
        };
        let token = uuid::Uuid::now_v7().to_string();
        self.held
            .lock()
            .insert(token.clone(), Holding { until: Instant::now() + options.ttl, conn: Some(conn), key, mode });
        self.expire_later(token.clone());
        Ok(Lease { resource: resource.clone(), mode, token, fence })
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<(), LockError> {
        let mut held = self.held.lock();
        match held.get_mut(&lease.token) {
            Some(h) if h.until > Instant::now() => {
                h.until = Instant::now() + ttl;
                Ok(())
            }
            _ => Err(LockError::Lost { resource: lease.resource.clone() }),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let ended = self.held.lock().remove(&lease.token);
        if let Some(Holding { conn: Some(conn), key, mode, .. }) = ended {
            self.unlock(conn, key, mode).await;
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), LockError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&Resource::of_tenant(None, "health", "postgres"), &e))
    }
}
