use std::fmt;
use std::sync::Arc;

/// When to take a snapshot of an event-sourced aggregate (after a commit).
#[derive(Clone, Default)]
pub enum SnapshotPolicy {
    /// Never (the default).
    #[default]
    Never,
    /// Each time the version crosses a multiple of `n`.
    Every(u64),
    /// When the predicate says so, given the new version and the number of events since
    /// the last snapshot.
    When(Arc<dyn Fn(u64, u64) -> bool + Send + Sync>),
}

impl SnapshotPolicy {
    /// A snapshot every `n` events.
    pub fn every(n: u64) -> Self {
        SnapshotPolicy::Every(n.max(1))
    }

    /// A snapshot when `predicate(version, events_since_last_snapshot)` is true.
    pub fn when(predicate: impl Fn(u64, u64) -> bool + Send + Sync + 'static) -> Self {
        SnapshotPolicy::When(Arc::new(predicate))
    }

    /// Whether a commit that moved the stream from `before` to `after` calls for a
    /// snapshot, the last one being at `last`.
    pub(crate) fn due(&self, before: u64, after: u64, last: u64) -> bool {
        match self {
            SnapshotPolicy::Never => false,
            SnapshotPolicy::Every(n) => after / n > before / n,
            SnapshotPolicy::When(f) => after > before && f(after, after - last),
        }
    }
}

impl fmt::Debug for SnapshotPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotPolicy::Never => f.write_str("Never"),
            SnapshotPolicy::Every(n) => write!(f, "Every({n})"),
            SnapshotPolicy::When(_) => f.write_str("When(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_n_fires_when_a_multiple_is_crossed() {
        let p = SnapshotPolicy::every(100);
        assert!(!p.due(0, 99, 0));
        assert!(p.due(99, 100, 0));
        assert!(p.due(95, 105, 0));
        assert!(!p.due(100, 199, 100));
        assert!(p.due(150, 350, 100));
    }

    #[test]
    fn predicate_sees_events_since_last_snapshot() {
        let p = SnapshotPolicy::when(|_, since| since >= 10);
        assert!(!p.due(5, 9, 0));
        assert!(p.due(9, 10, 0));
        assert!(!p.due(10, 12, 10));
    }
}
