//! HTTP glue for cqrs-ddd on axum.

pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
