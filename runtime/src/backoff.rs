//! How long to wait before trying again: one type for every retry loop of the runtime.
//!
//! Each loop keeps its own options (how many attempts, which delays), and turns them
//! into a [`Backoff`] to wait:
//!
//! | loop | attempts | waits |
//! | --- | --- | --- |
//! | every worker's `run` after a failed round ([`crate::worker`]) | until shutdown | its `outage_backoff` |
//! | a root aggregate command after a version conflict | [`RetryPolicy::max_retries`](crate::RetryPolicy) | `base_delay` doubling ×1024 at most, up to half of it off at random |
//! | publishing one outbox message | [`RelayOptions::max_attempts`](crate::RelayOptions) | `base_backoff` doubling up to `max_backoff` |
//! | sending one scheduled command | [`SchedulerOptions::max_attempts`](crate::scheduling::SchedulerOptions) | `backoff` doubling up to `max_backoff` |
//! | sending one saga command | [`SagaOptions::max_retries`](crate::saga::SagaOptions) | `backoff` doubling up to `max_backoff` |
//! | saving a saga instance updated concurrently | `SagaOptions::max_conflict_retries` | 3 ms more per attempt up to 30 ms, up to two thirds off at random |
//! | a projection's event under [`ErrorPolicy::Retry`](crate::projection::ErrorPolicy) | its `attempts` | its `backoff` more per attempt |
//! | a projection's event after a transient failure | 3 | the worker's `outage_backoff` |

use std::time::{Duration, Instant};

/// How the wait grows with each further failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Growth {
    /// `initial`, then twice as long per further failure.
    #[default]
    Doubling,
    /// `initial`, then `initial` longer per further failure.
    Linear,
}

/// How long to wait after consecutive failures: `initial`, growing per further failure
/// (doubling, or linearly) up to `max`, less a random part of up to `jitter` of it (so
/// that tasks which failed together do not all come back at the same instant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// The part of each wait (0.0 to 1.0) that is taken off at random; 0 waits exactly.
    pub jitter: f64,
    /// How the wait grows.
    pub growth: Growth,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 30 s, a quarter of it random.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.25,
            growth: Growth::Doubling,
        }
    }
}

impl Backoff {
    /// `initial` doubling up to `max`, with the default jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, ..Backoff::default() }
    }

    /// `step`, `2 × step`, `3 × step`… up to `max`, with the default jitter.
    pub fn linear(step: Duration, max: Duration) -> Self {
        Backoff { initial: step, max, growth: Growth::Linear, ..Backoff::default() }
    }

    /// The same with `jitter` (clamped to 0.0..=1.0).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The longest wait after `failures` consecutive failures (1 for the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let grown = match self.growth {
            Growth::Doubling => self.initial.saturating_mul(1 << failures.saturating_sub(1).min(31)),
            Growth::Linear => self.initial.saturating_mul(failures.max(1)),
        };
        grown.min(self.max)
    }

    /// The wait after `failures` consecutive failures: [`Backoff::ceiling`] less a random
    /// part of up to `jitter` of it.
    pub fn delay(&self, failures: u32) -> Duration {
        let jitter = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        self.ceiling(failures).mul_f64(1.0 - jitter * random_unit())
    }
}

/// A number in `0.0..1.0` from the standard library's randomly keyed hasher (no
/// dependency for a jitter).
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one(Instant::now()) >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits: exact in an f64
    let unit = bits as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.0);
        let ms: Vec<u128> = (1..=6).map(|f| b.delay(f).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1), "no overflow for long streaks");
        let jittered = b.with_jitter(0.5);
        let delays: Vec<Duration> = (0..200).map(|_| jittered.delay(3)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(200) && *d <= Duration::from_millis(400)));
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies the waits");
        assert_eq!(b.with_jitter(f64::NAN).delay(1), Duration::from_millis(100), "a nonsense jitter is none");
    }

    #[test]
    fn linear_backoff_adds_one_step_per_failure_up_to_the_cap() {
        let b = Backoff::linear(Duration::from_millis(3), Duration::from_millis(30)).with_jitter(0.0);
        let ms: Vec<u128> = [1, 2, 3, 10, 11, u32::MAX].iter().map(|f| b.delay(*f).as_millis()).collect();
        assert_eq!(ms, [3, 6, 9, 30, 30, 30]);
        let unbounded = Backoff::linear(Duration::from_millis(7), Duration::MAX).with_jitter(0.0);
        assert_eq!(unbounded.delay(4), Duration::from_millis(28));
        assert_eq!(unbounded.delay(0), Duration::from_millis(7), "no failure yet waits one step");
    }
}
