//! The timing loops the contenders share, and what a cell reports.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::error::BenchError;
use crate::scenarios::{MIN_WINDOW, RateIds, Window};
use crate::stats::{Latencies, count_f64};

/// The figures of one cell (one contender, one group, one repetition), by row id, and
/// notes on how they were taken: `(row id, value, what the value counts)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) figures: Vec<(&'static str, f64)>,
    pub(crate) notes: Vec<(&'static str, f64, &'static str)>,
}

impl Outcome {
    pub(crate) fn figure(&mut self, id: &'static str, value: f64) {
        self.figures.push((id, value));
    }

    pub(crate) fn note(&mut self, id: &'static str, value: f64, what: &'static str) {
        self.notes.push((id, value, what));
    }

    /// Commands per second, p50 and p99 latency in microseconds.
    pub(crate) fn rates(&mut self, ids: RateIds, lat: &Latencies) {
        self.figure(ids[0], lat.per_second());
        self.figure(ids[1], lat.percentile_us(50.0));
        self.figure(ids[2], lat.percentile_us(99.0));
    }
}

/// Runs `op(0..n)` one after the other, timing each.
pub(crate) async fn sequential(
    n: usize,
    mut op: impl AsyncFnMut(usize) -> Result<(), BenchError>,
) -> Result<Latencies, BenchError> {
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for k in 0..n {
        let t = Instant::now();
        op(k).await?;
        samples.push(t.elapsed());
    }
    Ok(Latencies::new(samples, start.elapsed()))
}

/// Runs each client's plan (see [`client_plan`]) in its own task, all at once, timing
/// each command; `op` runs one command of a client on aggregate `a`.
pub(crate) async fn concurrent<S: Send + 'static>(
    clients: Vec<(S, Vec<usize>)>,
    op: for<'a> fn(&'a mut S, usize) -> BoxFuture<'a, Result<(), BenchError>>,
) -> Result<Latencies, BenchError> {
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(mut state, plan)| {
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(plan.len());
                for a in plan {
                    let t = Instant::now();
                    op(&mut state, a).await?;
                    samples.push(t.elapsed());
                }
                Ok::<_, BenchError>(samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let samples = task.await.map_err(|e| BenchError::Check(format!("a client task died: {e}")))??;
        all.extend(samples);
    }
    Ok(Latencies::new(all, start.elapsed()))
}

/// Runs `op` for one [`Window`] and returns the mean microseconds per call and the number
/// of calls timed.
pub(crate) async fn window(
    w: Window,
    mut op: impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<(f64, usize), BenchError> {
    let start = Instant::now();
    let mut n = 0;
    while n < w.max_commands && (n < MIN_WINDOW || start.elapsed() < w.budget) {
        op().await?;
        n += 1;
    }
    Ok((micros(start.elapsed()) / count_f64(n.max(1)), n))
}

/// Nanoseconds per call of `n` calls of `op`, after `n / 10` untimed warm-up calls.
pub(crate) async fn per_call_ns(
    n: usize,
    mut op: impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<f64, BenchError> {
    for _ in 0..n / 10 {
        op().await?;
    }
    let start = Instant::now();
    for _ in 0..n {
        op().await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e9 / count_f64(n.max(1)))
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median time of `timed` runs of `op`, after one untimed warm-up run (which fills
/// caches and prepares statements, as any loader that has run once would have).
pub(crate) async fn median_of(
    timed: usize,
    mut op: impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<Duration, BenchError> {
    op().await?;
    let mut times = Vec::with_capacity(timed);
    for _ in 0..timed.max(1) {
        let t = Instant::now();
        op().await?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

/// The commands of client `client` of `clients`: `commands` in all, command `k` going to
/// aggregate `k % aggregates`; each client owns the aggregates `a % clients == client`,
/// so no two clients touch one aggregate. Returns the aggregate of each command, in order.
pub(crate) fn client_plan(client: usize, clients: usize, commands: usize, aggregates: usize) -> Vec<usize> {
    (0..commands).map(|k| k % aggregates).filter(|a| a % clients == client).collect()
}

/// Reads this process's peak resident set (`VmHWM`) in MiB.
pub(crate) fn peak_rss_mib() -> Result<f64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::io("reading /proc/self/status (peak memory needs Linux)", e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| BenchError::Check("/proc/self/status has no readable VmHWM line".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_split_the_commands_without_sharing_an_aggregate() {
        let plans: Vec<Vec<usize>> = (0..16).map(|c| client_plan(c, 16, 10_000, 1_000)).collect();
        assert_eq!(plans.iter().map(Vec::len).sum::<usize>(), 10_000);
        for (c, plan) in plans.iter().enumerate() {
            assert!(plan.iter().all(|a| a % 16 == c));
        }
        // Ten commands per aggregate, round robin.
        assert_eq!(client_plan(3, 16, 10_000, 1_000).iter().filter(|&&a| a == 19).count(), 10);
    }

    #[tokio::test]
    async fn a_window_stops_at_its_budget_but_not_before_the_minimum() {
        let slow = Window { max_commands: 1_000, budget: Duration::ZERO };
        let (_, n) = window(slow, async || Ok(())).await.unwrap();
        assert_eq!(n, MIN_WINDOW);
        let capped = Window { max_commands: 7, budget: Duration::from_secs(60) };
        let (_, n) = window(capped, async || Ok(())).await.unwrap();
        assert_eq!(n, 7);
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        let mib = peak_rss_mib().unwrap();
        assert!(mib > 0.1 && mib < 100_000.0, "{mib}");
    }
}
