//! Redis for cqrs-ddd: leased locks with fencing tokens.

mod cache;
mod connection;
mod lock;
mod redlock;
mod scripts;

pub use cache::{DEFAULT_CACHE_PREFIX, RedisCache};
pub use lock::{DEFAULT_LOCK_PREFIX, RedisLocks};
pub use redis;
pub use redlock::Redlock;
