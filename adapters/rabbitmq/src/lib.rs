//! RabbitMQ for cqrs-ddd.

mod bus;
mod codec;
mod connection;
mod consumer;
mod dead_letters;
mod error;
mod topology;

pub use bus::{DEFAULT_CONFIRM_TIMEOUT, DEFAULT_PARTITIONS, DEFAULT_PREFETCH, DEFAULT_PREFIX, RabbitMq};
pub use codec::{CREATED_AT, DEAD_AT};
pub use connection::DEFAULT_CONNECT_TIMEOUT;
pub use dead_letters::MAX_SCAN as MAX_DEAD_LETTERS_SCANNED;
pub use error::RabbitMqError;
pub use lapin;
