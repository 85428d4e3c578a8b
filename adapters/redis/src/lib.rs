//! Redis for cqrs-ddd: leased locks with fencing tokens.

mod connection;
mod lock;
mod redlock;
mod scripts;

pub use lock::{DEFAULT_LOCK_PREFIX, RedisLocks};
pub use redis;
pub use redlock::Redlock;
