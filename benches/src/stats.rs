//! Numbers from samples: rates and percentiles of one run, median / min / max across
//! repetitions.

use std::time::Duration;

/// Per-command latencies of one run, and the wall time the run took.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    sorted: Vec<Duration>,
    elapsed: Duration,
}

impl Latencies {
    pub(crate) fn new(mut samples: Vec<Duration>, elapsed: Duration) -> Self {
        samples.sort_unstable();
        Latencies { sorted: samples, elapsed }
    }

    /// Commands per second of wall time.
    pub(crate) fn per_second(&self) -> f64 {
        count_f64(self.sorted.len()) / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `p`-th percentile (0 < p <= 100) in microseconds, nearest rank.
    pub(crate) fn percentile_us(&self, p: f64) -> f64 {
        percentile(&self.sorted, p).as_secs_f64() * 1e6
    }
}

/// Nearest-rank percentile of sorted samples; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * count_f64(sorted.len())).ceil();
    // `rank` is in 1..=len for 0 < p <= 100; clamp anything else.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let index = (rank as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// A count as a float, for rates (exact below 2^52, far beyond any count here).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn count_f64(n: usize) -> f64 {
    n as f64
}

/// Commas between groups of three digits: `1234567` -> `1,234,567`.
pub(crate) fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Median, minimum and maximum of one figure across repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Summary {
    /// `None` for no values.
    pub(crate) fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 { v[mid] } else { f64::midpoint(v[mid - 1], v[mid]) };
        Some(Summary { median, min: v[0], max: v[v.len() - 1] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_millis(x)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let lat = Latencies::new(ms(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]), Duration::from_secs(2));
        assert!((lat.percentile_us(50.0) - 5_000.0).abs() < 1e-6);
        assert!((lat.percentile_us(99.0) - 10_000.0).abs() < 1e-6);
        assert!((lat.percentile_us(10.0) - 1_000.0).abs() < 1e-6);
        assert!((lat.per_second() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn percentile_of_nothing_is_zero() {
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn summary_takes_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]), Some(Summary { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]), Some(Summary { median: 2.5, min: 1.0, max: 4.0 }));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }
}
