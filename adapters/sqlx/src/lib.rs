//! PostgreSQL and SQLite adapters of cqrs-ddd.
//!
//! DOCS PLACEHOLDER

mod common;
#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore};
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
