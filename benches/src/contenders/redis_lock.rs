//! Scenario 16: an uncontended lock and unlock of one resource on Redis, through
//! `cqrs-ddd-redis`'s `RedisLocks` (one script to acquire with its fencing counter, one to
//! release), against the plain pattern with redis-rs: `SET key token NX PX ttl` and a
//! compare-and-delete script.

use std::time::Duration;

use cqrs_ddd::lock::{LockBackend, LockMode, LockOptions, Resource};
use cqrs_ddd_redis::RedisLocks;
use redis::aio::ConnectionManager;

use crate::error::BenchError;
use crate::measure::{Outcome, sequential};
use crate::scenarios::{REDIS_LOCK, Workload};

const ME: &str = "cqrs-ddd";

/// Where Redis is: `REDIS_URL`, else the loopback default.
pub(crate) fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Microseconds per lock and unlock pair.
fn per_pair(lat: &crate::stats::Latencies) -> f64 {
    1e6 / lat.per_second()
}

/// cqrs-ddd: `RedisLocks::acquire` then `release`.
pub(crate) async fn ours(w: &Workload) -> Result<Outcome, BenchError> {
    let locks = RedisLocks::new(&url())
        .map_err(|e| BenchError::framework(ME, "RedisLocks::new", e))?
        .with_prefix(format!("bench:{}:", std::process::id()));
    let resource = Resource::of_tenant(None, "Bench", "one");
    let options = LockOptions { timeout: Duration::from_secs(5), ttl: Duration::from_secs(30) };
    // One pair first: the connection and the scripts are loaded before timing.
    let lease = locks
        .acquire(&resource, LockMode::Write, &options)
        .await
        .map_err(|e| BenchError::framework(ME, "acquire", e))?;
    locks.release(&lease).await.map_err(|e| BenchError::framework(ME, "release", e))?;
    let lat = sequential(w.lock_cycles, async |_| {
        let lease = locks
            .acquire(&resource, LockMode::Write, &options)
            .await
            .map_err(|e| BenchError::framework(ME, "acquire", e))?;
        locks.release(&lease).await.map_err(|e| BenchError::framework(ME, "release", e))
    })
    .await?;
    let mut out = Outcome::default();
    out.figure(REDIS_LOCK, per_pair(&lat));
    Ok(out)
}

/// redis-rs: `SET NX PX`, then a compare-and-delete script.
pub(crate) async fn plain(w: &Workload) -> Result<Outcome, BenchError> {
    let client = redis::Client::open(url()).map_err(|e| BenchError::framework("redis-rs", "open", e))?;
    let mut conn = ConnectionManager::new(client).await.map_err(|e| BenchError::framework("redis-rs", "connect", e))?;
    let key = format!("bench:{}:plain", std::process::id());
    let release = redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    );
    let mut pair = async |k: usize| -> Result<(), BenchError> {
        let token = format!("t{k}");
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(&mut conn)
            .await
            .map_err(|e| BenchError::framework("redis-rs", "SET NX", e))?;
        if set.is_none() {
            return Err(BenchError::Check("redis-rs: the uncontended key was taken".to_owned()));
        }
        let _: i64 = release
            .key(&key)
            .arg(&token)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BenchError::framework("redis-rs", "release", e))?;
        Ok(())
    };
    pair(usize::MAX).await?;
    let lat = sequential(w.lock_cycles, async |k| pair(k).await).await?;
    let mut out = Outcome::default();
    out.figure(REDIS_LOCK, per_pair(&lat));
    Ok(out)
}
