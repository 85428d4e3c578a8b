//! Trace context across processes: the hook a tracing backend (OpenTelemetry, through
//! `cqrs-ddd-axum`'s `otel` module) installs so that the framework's spans join the
//! trace of the request that caused them, through the outbox and the brokers' headers.
//!
//! Without a [`Propagator`] the runtime still carries a W3C `traceparent` in every
//! outbox message (made from the correlation id, see [`crate::broker::traceparent`]),
//! but its spans do not name a remote parent.

use std::sync::OnceLock;

/// Reads and sets the trace context of `tracing` spans.
pub trait Propagator: Send + Sync + 'static {
    /// The W3C `traceparent` of the current span, when it belongs to a sampled or
    /// recorded trace.
    fn current(&self) -> Option<String>;
    /// Makes the span `traceparent` names the remote parent of `span` (ignored when the
    /// header is malformed).
    fn set_parent(&self, span: &tracing::Span, traceparent: &str);
}

static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Installs the process's propagator; the first one stays (returns `false` when one
/// was installed before).
pub fn set_propagator(propagator: impl Propagator) -> bool {
    PROPAGATOR.set(Box::new(propagator)).is_ok()
}

/// The `traceparent` of the current span, if a propagator is installed and the span is
/// part of a trace.
pub fn current_traceparent() -> Option<String> {
    PROPAGATOR.get().and_then(|p| p.current())
}

/// Makes `traceparent` the remote parent of `span`, if a propagator is installed.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if let Some(p) = PROPAGATOR.get() {
        p.set_parent(span, traceparent);
    }
}
