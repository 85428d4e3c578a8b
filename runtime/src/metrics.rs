//! Every metric the framework emits, through the [`metrics`](https://docs.rs/metrics)
//! facade. Nothing is recorded until the program installs a recorder: an exporter such
//! as `cqrs-ddd-axum`'s `PrometheusMetrics`, or any other `metrics` recorder. Each name
//! is a constant below, and [`ALL`] lists them with their kind, labels and help text
//! ([`describe`] hands those to the recorder).
//!
//! Durations are in seconds. Label values are the stable names the code declares
//! (command, event, aggregate, projection, saga and handler names), never ids, so the
//! number of series stays bounded.
//!
//! | name | kind | labels | what it says |
//! | --- | --- | --- | --- |
//! | `cqrs_ddd_messages_total` | counter | `kind`, `name`, `outcome` | commands and queries handled, with [`MetricsMiddleware`]; `kind` is `command` or `query`, `outcome` is `ok`, `rejected` (a domain error or a failed validation), `conflict` or `error`. Nested commands are counted too |
//! | `cqrs_ddd_message_seconds` | histogram | `kind`, `name` | how long a command or query took, through the rest of the middleware chain (with [`MetricsMiddleware`]) |
//! | `cqrs_ddd_events_appended_total` | counter | `stream_type` | events committed, counted once per commit by aggregate type |
//! | `cqrs_ddd_conflicts_total` | counter | `stream_type` | commits refused because a stream had moved past the expected version |
//! | `cqrs_ddd_conflict_retries_total` | counter | `command` | root commands decided again after a conflict ([`crate::AppBuilder::retry_on_conflict`]) |
//! | `cqrs_ddd_conflict_merges_total` | counter | `stream_type` | state-stored aggregates' conflicts merged instead of decided again ([`crate::conflict`]) |
//! | `cqrs_ddd_transient_retries_total` | counter | `command` | root commands decided again after a transient failure ([`crate::AppBuilder::retry_transient`]) |
//! | `cqrs_ddd_event_handler_failures_total` | counter | `handler` | in-process `#[event_handler]`s that failed after a commit (the command stays committed) |
//! | `cqrs_ddd_async_handler_failures_total` | counter | `handler` | deliveries of an event to an `#[event_handler(async)]` or saga step that failed (it is delivered again) |
//! | `cqrs_ddd_redeliveries_ignored_total` | counter | `handler` | deliveries an async handler had already committed, refused by its idempotency key |
//! | `cqrs_ddd_stale_snapshots_total` | counter | `aggregate` | snapshots that no longer deserialize (the stream is replayed instead) |
//! | `cqrs_ddd_projection_lag` | gauge | `projection` | events between a projection's slowest checkpoint and the head of the log |
//! | `cqrs_ddd_projection_events_applied_total` | counter | `projection` | events a projection applied and committed |
//! | `cqrs_ddd_projection_failures_total` | counter | `projection` | events a projection failed on (before its error policy acts) |
//! | `cqrs_ddd_outbox_published_total` | counter | | outbox messages the relay published |
//! | `cqrs_ddd_outbox_failed_total` | counter | | attempts at publishing that failed and will be retried |
//! | `cqrs_ddd_outbox_dead_total` | counter | | outbox messages that failed their last attempt and are dead |
//! | `cqrs_ddd_outbox_publish_seconds` | histogram | | how long publishing one outbox message took (for the in-process publisher: running its async handlers) |
//! | `cqrs_ddd_outbox_backlog` | gauge | | outbox messages the relay's last claim found waiting, at most its batch size (a value at the batch size means at least that many wait); no extra query |
//! | `cqrs_ddd_saga_transitions_total` | counter | `saga`, `state` | saga instances saved in a new status (`running`, `suspended`, `completed`, `compensating`, `compensated`, `failed`) |
//! | `cqrs_ddd_saga_conflicts_total` | counter | `saga` | saga instance updates reloaded after another process saved the instance first |
//! | `cqrs_ddd_scheduled_sent_total` | counter | | scheduled commands sent |
//! | `cqrs_ddd_scheduled_retried_total` | counter | | scheduled commands that failed and were put back for later |
//! | `cqrs_ddd_scheduled_dead_total` | counter | | scheduled commands given up on |
//! | `cqrs_ddd_jobs_finished_total` | counter | `job`, `outcome` | attempts at background jobs that ended; `outcome` is `completed`, `retried`, `failed` or `cancelled` |
//! | `cqrs_ddd_jobs_swept_total` | counter | | running jobs taken back by the sweeper after their lease ran out |
//! | `cqrs_ddd_worker_retries_total` | counter | `worker`, `name` | rounds of a long-running loop (projection worker, relay, scheduler, saga recovery) that failed transiently and are retried |
//! | `cqrs_ddd_read_horizon_held_seconds` | gauge | `projection` or `relay` | how long the event log's gap-safe read horizon has been held back by an open transaction |
//! | `cqrs_ddd_rabbitmq_published_total` | counter | | messages `cqrs-ddd-rabbitmq` published, confirmed |
//! | `cqrs_ddd_rabbitmq_consumer_outages_total` | counter | | times a `cqrs-ddd-rabbitmq` consumer lost its connection |
//! | `cqrs_ddd_rabbitmq_dead_letters_total` | counter | `group` | messages `cqrs-ddd-rabbitmq` moved to a group's dead letters |
//!
//! What is counted on the command path without any middleware is what a commit does
//! (events appended, conflicts): one counter per committed stream, no more. Commands by
//! name, outcome and latency come from [`MetricsMiddleware`], which a program adds with
//! `App::builder().middleware(MetricsMiddleware)`.
//!
//! [`MetricsMiddleware`]: crate::MetricsMiddleware

use crate::error::{Error, Result};

/// Commands and queries handled (counter; `kind`, `name`, `outcome`).
pub const MESSAGES_TOTAL: &str = "cqrs_ddd_messages_total";
/// How long a command or query took (histogram, seconds; `kind`, `name`).
pub const MESSAGE_SECONDS: &str = "cqrs_ddd_message_seconds";
/// Events committed (counter; `stream_type`).
pub const EVENTS_APPENDED_TOTAL: &str = "cqrs_ddd_events_appended_total";
/// Commits refused by a version conflict (counter; `stream_type`).
pub const CONFLICTS_TOTAL: &str = "cqrs_ddd_conflicts_total";
/// Root commands decided again after a conflict (counter; `command`).
pub const CONFLICT_RETRIES_TOTAL: &str = "cqrs_ddd_conflict_retries_total";
/// State-stored aggregates' conflicts merged instead of decided again (counter;
/// `stream_type`).
pub const CONFLICT_MERGES_TOTAL: &str = "cqrs_ddd_conflict_merges_total";
/// Root commands decided again after a transient failure (counter; `command`).
pub const TRANSIENT_RETRIES_TOTAL: &str = "cqrs_ddd_transient_retries_total";
/// In-process event handlers that failed after a commit (counter; `handler`).
pub const EVENT_HANDLER_FAILURES_TOTAL: &str = "cqrs_ddd_event_handler_failures_total";
/// Failed deliveries to async handlers and saga steps (counter; `handler`).
pub const ASYNC_HANDLER_FAILURES_TOTAL: &str = "cqrs_ddd_async_handler_failures_total";
/// Redeliveries refused by an async handler's idempotency key (counter; `handler`).
pub const REDELIVERIES_IGNORED_TOTAL: &str = "cqrs_ddd_redeliveries_ignored_total";
/// Snapshots that no longer deserialize (counter; `aggregate`).
pub const STALE_SNAPSHOTS_TOTAL: &str = "cqrs_ddd_stale_snapshots_total";
/// Events between a projection's slowest checkpoint and the head (gauge; `projection`).
pub const PROJECTION_LAG: &str = "cqrs_ddd_projection_lag";
/// Events a projection applied (counter; `projection`).
pub const PROJECTION_EVENTS_APPLIED_TOTAL: &str = "cqrs_ddd_projection_events_applied_total";
/// Events a projection failed on (counter; `projection`).
pub const PROJECTION_FAILURES_TOTAL: &str = "cqrs_ddd_projection_failures_total";
/// Outbox messages published (counter).
pub const OUTBOX_PUBLISHED_TOTAL: &str = "cqrs_ddd_outbox_published_total";
/// Failed attempts at publishing an outbox message, to be retried (counter).
pub const OUTBOX_FAILED_TOTAL: &str = "cqrs_ddd_outbox_failed_total";
/// Outbox messages that are dead (counter).
pub const OUTBOX_DEAD_TOTAL: &str = "cqrs_ddd_outbox_dead_total";
/// How long publishing one outbox message took (histogram, seconds).
pub const OUTBOX_PUBLISH_SECONDS: &str = "cqrs_ddd_outbox_publish_seconds";
/// Outbox messages the relay's last claim found waiting, at most a batch (gauge).
pub const OUTBOX_BACKLOG: &str = "cqrs_ddd_outbox_backlog";
/// Saga instances saved in a new status (counter; `saga`, `state`).
pub const SAGA_TRANSITIONS_TOTAL: &str = "cqrs_ddd_saga_transitions_total";
/// Saga instance updates reloaded after a concurrent save (counter; `saga`).
pub const SAGA_CONFLICTS_TOTAL: &str = "cqrs_ddd_saga_conflicts_total";
/// Scheduled commands sent (counter).
pub const SCHEDULED_SENT_TOTAL: &str = "cqrs_ddd_scheduled_sent_total";
/// Scheduled commands put back for later (counter).
pub const SCHEDULED_RETRIED_TOTAL: &str = "cqrs_ddd_scheduled_retried_total";
/// Scheduled commands given up on (counter).
pub const SCHEDULED_DEAD_TOTAL: &str = "cqrs_ddd_scheduled_dead_total";
/// Attempts at background jobs that ended (counter; `job`, `outcome`).
pub const JOBS_FINISHED_TOTAL: &str = "cqrs_ddd_jobs_finished_total";
/// Running jobs taken back after their lease ran out (counter).
pub const JOBS_SWEPT_TOTAL: &str = "cqrs_ddd_jobs_swept_total";
/// Rounds of a long-running loop retried after a transient failure (counter; `worker`, `name`).
pub const WORKER_RETRIES_TOTAL: &str = "cqrs_ddd_worker_retries_total";
/// How long the gap-safe read horizon has been held (gauge, seconds; `projection` or `relay`).
pub const READ_HORIZON_HELD_SECONDS: &str = "cqrs_ddd_read_horizon_held_seconds";
/// Messages `cqrs-ddd-rabbitmq` published (counter).
pub const RABBITMQ_PUBLISHED_TOTAL: &str = "cqrs_ddd_rabbitmq_published_total";
/// Connections a `cqrs-ddd-rabbitmq` consumer lost (counter).
pub const RABBITMQ_CONSUMER_OUTAGES_TOTAL: &str = "cqrs_ddd_rabbitmq_consumer_outages_total";
/// Messages `cqrs-ddd-rabbitmq` dead-lettered (counter; `group`).
pub const RABBITMQ_DEAD_LETTERS_TOTAL: &str = "cqrs_ddd_rabbitmq_dead_letters_total";

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Set to the latest value.
    Gauge,
    /// A distribution of observations (durations, in seconds).
    Histogram,
}

/// One metric of the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its label keys (`projection` / `relay` for the read horizon: one or the other).
    pub labels: &'static [&'static str],
    /// What it says, for the recorder's help text.
    pub help: &'static str,
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: MetricKind::Counter, labels, help }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: MetricKind::Gauge, labels, help }
}

const fn histogram(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: MetricKind::Histogram, labels, help }
}

/// Every metric the framework emits, in the order of the table above.
pub const ALL: &[Metric] = &[
    counter(MESSAGES_TOTAL, &["kind", "name", "outcome"], "Commands and queries handled, by outcome"),
    histogram(MESSAGE_SECONDS, &["kind", "name"], "How long a command or query took, in seconds"),
    counter(EVENTS_APPENDED_TOTAL, &["stream_type"], "Events committed"),
    counter(CONFLICTS_TOTAL, &["stream_type"], "Commits refused by a version conflict"),
    counter(CONFLICT_RETRIES_TOTAL, &["command"], "Root commands decided again after a conflict"),
    counter(
        CONFLICT_MERGES_TOTAL,
        &["stream_type"],
        "State-stored aggregates' conflicts merged instead of decided again",
    ),
    counter(TRANSIENT_RETRIES_TOTAL, &["command"], "Root commands decided again after a transient failure"),
    counter(EVENT_HANDLER_FAILURES_TOTAL, &["handler"], "In-process event handlers that failed after a commit"),
    counter(ASYNC_HANDLER_FAILURES_TOTAL, &["handler"], "Failed deliveries to async event handlers and saga steps"),
    counter(REDELIVERIES_IGNORED_TOTAL, &["handler"], "Redeliveries an async handler had already committed"),
    counter(STALE_SNAPSHOTS_TOTAL, &["aggregate"], "Snapshots that no longer deserialize"),
    gauge(PROJECTION_LAG, &["projection"], "Events between a projection's slowest checkpoint and the head"),
    counter(PROJECTION_EVENTS_APPLIED_TOTAL, &["projection"], "Events a projection applied"),
    counter(PROJECTION_FAILURES_TOTAL, &["projection"], "Events a projection failed on"),
    counter(OUTBOX_PUBLISHED_TOTAL, &[], "Outbox messages published"),
    counter(OUTBOX_FAILED_TOTAL, &[], "Failed attempts at publishing an outbox message, to be retried"),
    counter(OUTBOX_DEAD_TOTAL, &[], "Outbox messages that failed their last attempt"),
    histogram(OUTBOX_PUBLISH_SECONDS, &[], "How long publishing one outbox message took, in seconds"),
    gauge(OUTBOX_BACKLOG, &[], "Outbox messages the relay's last claim found waiting (at most a batch)"),
    counter(SAGA_TRANSITIONS_TOTAL, &["saga", "state"], "Saga instances saved in a new status"),
    counter(SAGA_CONFLICTS_TOTAL, &["saga"], "Saga instance updates reloaded after a concurrent save"),
    counter(SCHEDULED_SENT_TOTAL, &[], "Scheduled commands sent"),
    counter(SCHEDULED_RETRIED_TOTAL, &[], "Scheduled commands put back for later"),
    counter(SCHEDULED_DEAD_TOTAL, &[], "Scheduled commands given up on"),
    counter(JOBS_FINISHED_TOTAL, &["job", "outcome"], "Attempts at background jobs that ended"),
    counter(JOBS_SWEPT_TOTAL, &[], "Running jobs taken back after their lease ran out"),
    counter(WORKER_RETRIES_TOTAL, &["worker", "name"], "Worker rounds retried after a transient failure"),
    gauge(
        READ_HORIZON_HELD_SECONDS,
        &["projection", "relay"],
        "How long the event log's read horizon has been held, in seconds",
    ),
    counter(RABBITMQ_PUBLISHED_TOTAL, &[], "Messages published to RabbitMQ, confirmed"),
    counter(RABBITMQ_CONSUMER_OUTAGES_TOTAL, &[], "Connections a RabbitMQ consumer lost"),
    counter(RABBITMQ_DEAD_LETTERS_TOTAL, &["group"], "Messages moved to a RabbitMQ group's dead letters"),
];

/// The histograms of [`ALL`] (all in seconds), for an exporter's bucket settings.
pub fn histograms() -> impl Iterator<Item = &'static str> {
    ALL.iter().filter(|m| m.kind == MetricKind::Histogram).map(|m| m.name)
}

/// Gives the installed recorder the kind, unit and help text of every metric in
/// [`ALL`] (an exporter shows them as `# HELP` and `# TYPE` lines). Call it after
/// installing the recorder; a recorder installed later knows nothing of it.
pub fn describe() {
    for m in ALL {
        match m.kind {
            MetricKind::Counter => ::metrics::describe_counter!(m.name, m.help),
            MetricKind::Gauge if m.name.ends_with("_seconds") => {
                ::metrics::describe_gauge!(m.name, ::metrics::Unit::Seconds, m.help);
            }
            MetricKind::Gauge => ::metrics::describe_gauge!(m.name, m.help),
            MetricKind::Histogram => ::metrics::describe_histogram!(m.name, ::metrics::Unit::Seconds, m.help),
        }
    }
}

/// The counter of `key` in the installed recorder: for a key made at compile time
/// (`metrics::Key::from_static_parts` in a `const`), where the `metrics::counter!` macro
/// would allocate its labels.
pub(crate) fn counter_of(key: &::metrics::Key) -> ::metrics::Counter {
    static METADATA: ::metrics::Metadata<'static> =
        ::metrics::Metadata::new(module_path!(), ::metrics::Level::INFO, Some(module_path!()));
    ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

/// The `outcome` label of a command or query's result.
pub(crate) fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Domain(_) | Error::Validation { .. }) => "rejected",
        Err(e) if e.is_conflict() => "conflict",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the module docs and [`ALL`] say the same.
    #[test]
    fn the_documented_table_lists_every_metric_with_its_kind_and_labels() {
        let source = include_str!("metrics.rs");
        let rows: Vec<&str> = source.lines().filter(|l| l.starts_with("//! | `cqrs_ddd_")).collect();
        assert_eq!(rows.len(), ALL.len(), "one table row per metric");
        for (row, m) in rows.iter().zip(ALL) {
            let cells: Vec<&str> = row.trim_start_matches("//! |").split(" | ").map(str::trim).collect();
            assert_eq!(cells[0], format!("`{}`", m.name));
            let kind = match m.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            assert_eq!(cells[1], kind, "{}", m.name);
            for label in m.labels {
                assert!(cells[2].contains(&format!("`{label}`")), "{}: label `{label}` missing", m.name);
            }
            let kind_ok = match m.kind {
                MetricKind::Counter => m.name.ends_with("_total"),
                MetricKind::Histogram => m.name.ends_with("_seconds"),
                MetricKind::Gauge => !m.name.ends_with("_total"),
            };
            assert!(kind_ok, "{}: a counter ends in `_total`, a histogram in `_seconds`", m.name);
        }
    }

    /// Every emission site names its metric by one of the constants above, so this
    /// module stays the list of what the runtime emits.
    #[test]
    fn the_runtime_names_its_metrics_by_these_constants() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        for mac in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                            if line.contains(mac) {
                                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                            }
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
        assert!(found.is_empty(), "metrics named by a literal, not a `metrics::` constant:\n{}", found.join("\n"));
    }

    #[test]
    fn outcomes_tell_rejections_and_conflicts_from_errors() {
        assert_eq!(outcome(&Ok(())), "ok");
        assert_eq!(
            outcome::<()>(&Err(Error::Validation { message: "M", reason: "no".into(), fields: Vec::new() })),
            "rejected"
        );
        let conflict = Error::Conflict { stream: "A/1".into(), expected: 1, actual: 2 };
        assert_eq!(outcome::<()>(&Err(conflict)), "conflict");
        assert_eq!(outcome::<()>(&Err(Error::NoBus)), "error");
    }
}
