//! Connections to one Redis node: a [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself), made lazily so that building a backend never blocks.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Connects lazily to `url` with short timeouts: 1 s to connect, 2 s for an answer, and
/// two reconnection attempts, so an unreachable node is reported in seconds, not minutes.
pub(crate) fn manager(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}
