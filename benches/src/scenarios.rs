//! What is measured: the scenario groups, the rows (JSON ids) each one produces, the
//! contenders that take part, and the workload sizes of a full and a quick run.

use std::time::Duration;

use crate::stats::group_digits;

/// One contender: a column of the table and a key of the JSON results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Contender {
    /// cqrs-ddd, this project.
    Ours,
    /// cqrs-es 0.5 (its `MemStore` in memory, postgres-es 0.5 on Postgres).
    CqrsEs,
    /// Plain sqlx 0.8 writing and reading the same rows: the physical limit.
    Sqlx,
}

impl Contender {
    pub(crate) const ALL: [Contender; 3] = [Contender::Ours, Contender::CqrsEs, Contender::Sqlx];

    /// The stable key in the JSON results and on the command line of a cell.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Contender::Ours => "cqrs-ddd",
            Contender::CqrsEs => "cqrs-es",
            Contender::Sqlx => "sqlx",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.key() == s)
    }

    /// The crate actually running in `group` (cqrs-es is postgres-es on Postgres).
    pub(crate) fn label(self, group: Group) -> &'static str {
        match (self, group.backend()) {
            (Contender::CqrsEs, Backend::Postgres) => "postgres-es",
            (Contender::Sqlx, _) if group == Group::RedisLock => "redis-rs",
            (Contender::Sqlx, _) if group == Group::Relay => "broker client",
            (Contender::Sqlx, _) if group == Group::Http => "axum by hand",
            _ => self.key(),
        }
    }
}

/// Where a group's events live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Backend {
    /// In the process: no database.
    Memory,
    /// The server at `DATABASE_URL`.
    Postgres,
    /// The server at `MYSQL_URL` (MariaDB or MySQL).
    #[cfg(feature = "mysql")]
    MariaDb,
    /// Files in a temporary directory of the run.
    Sqlite,
}

impl Backend {
    /// The database's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Postgres => "PostgreSQL",
            #[cfg(feature = "mysql")]
            Backend::MariaDb => "MariaDB",
            Backend::Sqlite => "SQLite",
        }
    }

    /// The environment variable that says where the database is.
    pub(crate) fn env(self) -> &'static str {
        match self {
            Backend::Postgres => "DATABASE_URL",
            #[cfg(feature = "mysql")]
            Backend::MariaDb => "MYSQL_URL",
            Backend::Memory | Backend::Sqlite => "TMPDIR",
        }
    }
}

/// A unit of measurement, as written in the table and the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    CommandsPerSec,
    EventsPerSec,
    QueriesPerSec,
    MessagesPerSec,
    Micros,
    Nanos,
    Millis,
    MiB,
}

impl Unit {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::CommandsPerSec => "commands/s",
            Unit::EventsPerSec => "events/s",
            Unit::QueriesPerSec => "queries/s",
            Unit::MessagesPerSec => "messages/s",
            Unit::Micros => "us",
            Unit::Nanos => "ns",
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
        }
    }

    pub(crate) fn higher_is_better(self) -> bool {
        matches!(self, Unit::CommandsPerSec | Unit::EventsPerSec | Unit::QueriesPerSec | Unit::MessagesPerSec)
    }
}

/// One row of the table, one entry of the JSON `scenarios`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) id: &'static str,
    pub(crate) unit: Unit,
}

const fn row(id: &'static str, unit: Unit) -> Row {
    Row { id, unit }
}

/// The ids of a throughput run: the rate, then p50 and p99 latency.
pub(crate) type RateIds = [&'static str; 3];
pub(crate) const MEM_SPREAD: RateIds = ["mem_spread", "mem_spread_p50", "mem_spread_p99"];
pub(crate) const PG_SEQ: RateIds = ["pg_seq", "pg_seq_p50", "pg_seq_p99"];
pub(crate) const PG_CONC16: RateIds = ["pg_conc16", "pg_conc16_p50", "pg_conc16_p99"];
#[cfg(feature = "mysql")]
pub(crate) const MY_SEQ: RateIds = ["my_seq", "my_seq_p50", "my_seq_p99"];
#[cfg(feature = "mysql")]
pub(crate) const MY_CONC16: RateIds = ["my_conc16", "my_conc16_p50", "my_conc16_p99"];
pub(crate) const LITE_SEQ: RateIds = ["lite_seq", "lite_seq_p50", "lite_seq_p99"];
/// Stream lengths of the long-stream scenario and their ids.
pub(crate) const MEM_LONG: [(usize, &str); 4] =
    [(0, "mem_long_0"), (10_000, "mem_long_10k"), (50_000, "mem_long_50k"), (100_000, "mem_long_100k")];
/// Stream lengths of the load scenario and their ids.
pub(crate) const LOADS: [(usize, &str); 3] = [(1_000, "load_1k"), (10_000, "load_10k"), (100_000, "load_100k")];
/// The same loads on MariaDB and on SQLite.
pub(crate) type LoadIds = [(usize, &'static str); 3];
#[cfg(feature = "mysql")]
pub(crate) const MY_LOADS: LoadIds = [(1_000, "my_load_1k"), (10_000, "my_load_10k"), (100_000, "my_load_100k")];
pub(crate) const LITE_LOADS: LoadIds =
    [(1_000, "lite_load_1k"), (10_000, "lite_load_10k"), (100_000, "lite_load_100k")];
pub(crate) const LOAD_SNAP: (usize, &str) = (100_000, "load_snap_100k");
/// The 100k stream loaded from a snapshot kept in Redis (`RedisSnapshots`), shared by
/// processes, with the same tail as `load_snap_100k`.
pub(crate) const LOAD_REDIS_SNAP: (usize, &str) = (100_000, "load_redis_snap_100k");
pub(crate) const LOAD_RSS: (usize, &str) = (100_000, "load_100k_rss");
/// Scenario 19: aggregates in the store, and the id of the row that costs a command there.
pub(crate) const MEM_SCALE: [(usize, &str); 3] =
    [(1_000, "mem_scale_1k"), (100_000, "mem_scale_100k"), (1_000_000, "mem_scale_1m")];
/// Scenario 19: `mem_scale_1k` with 1,024 more command handlers registered.
pub(crate) const MEM_HANDLERS: &str = "mem_handlers_1k";
/// Scenario 20: the same on PostgreSQL, each size in a schema of its own.
pub(crate) const PG_SCALE: [(usize, &str); 2] = [(1_000, "pg_scale_1k"), (100_000, "pg_scale_100k")];
/// Scenarios 19 and 20: commands timed per size, each on an aggregate the application has
/// not touched yet (spread evenly over all of them), so every size does the same work:
/// load a stream of one event, decide, commit.
pub(crate) const SCALE_COMMANDS: usize = 1_000;
pub(crate) const MEDIATOR_SEND: &str = "mediator_overhead";
pub(crate) const MEDIATOR_DIRECT: &str = "direct_call";
pub(crate) const PG_BATCH: &str = "pg_batch100";
pub(crate) const PROJECTION: &str = "projection_catchup";
/// Scenario 15: a read model of this many documents, one tenth of them "available".
pub(crate) const SPEC_DOCUMENTS: usize = 100_000;
pub(crate) const SPEC_PAGE: &str = "spec_page_100k";
pub(crate) const SPEC_COUNT: &str = "spec_count_100k";
/// Scenario 16: an uncontended lock and unlock on Redis.
pub(crate) const REDIS_LOCK: &str = "redis_lock_unlock";
/// Scenario 17: outbox rows relayed to NATS JetStream, with confirms.
pub(crate) const RELAY_NATS: &str = "relay_nats";
/// Scenario 17: from a command's commit to its event's async handler, over NATS.
pub(crate) const E2E_NATS: [&str; 2] = ["e2e_nats_p50", "e2e_nats_p99"];
/// Scenario 17: outbox rows relayed to RabbitMQ, with publisher confirms.
pub(crate) const RELAY_RABBIT: &str = "relay_rabbitmq";
/// Scenario 17: from a command's commit to its event's async handler, over RabbitMQ.
pub(crate) const E2E_RABBIT: [&str; 2] = ["e2e_rabbitmq_p50", "e2e_rabbitmq_p99"];
/// Scenario 18: commands over HTTP on loopback, driven by wrk.
pub(crate) const HTTP_COMMANDS: &str = "http_commands";
/// Scenario 8: the events a projection catches up on, spread over this many accounts.
pub(crate) const PROJECTION_EVENTS: usize = 100_000;
pub(crate) const PROJECTION_ACCOUNTS: usize = 1_000;
/// Events per batch (one transaction with the checkpoint), for both contenders.
pub(crate) const PROJECTION_BATCH: usize = 1_000;
/// A snapshot is taken every this many events (the snapshot row of `load_snap_100k`).
pub(crate) const SNAPSHOT_EVERY: usize = 100;

/// Rows measured together, by one cell per contender and repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Group {
    MemSpread,
    MemLong,
    Mediator,
    PgSeq,
    PgConc16,
    PgBatch100,
    Load,
    Projection,
    LoadRss,
    #[cfg(feature = "mysql")]
    MySeq,
    #[cfg(feature = "mysql")]
    MyConc16,
    #[cfg(feature = "mysql")]
    MyLoad,
    LiteSeq,
    LiteLoad,
    Spec,
    RedisLock,
    Relay,
    Http,
    MemScale,
    PgScale,
}

impl Group {
    /// Every group, in the order they run and are printed. The MariaDB ones exist with the
    /// cargo feature `mysql` (on by default).
    pub(crate) const ALL: &'static [Group] = &[
        Group::MemSpread,
        Group::MemLong,
        Group::Mediator,
        Group::PgSeq,
        Group::PgConc16,
        Group::PgBatch100,
        Group::Load,
        Group::Projection,
        Group::LoadRss,
        #[cfg(feature = "mysql")]
        Group::MySeq,
        #[cfg(feature = "mysql")]
        Group::MyConc16,
        #[cfg(feature = "mysql")]
        Group::MyLoad,
        Group::LiteSeq,
        Group::LiteLoad,
        Group::Spec,
        Group::RedisLock,
        Group::Relay,
        Group::Http,
        Group::MemScale,
        Group::PgScale,
    ];

    /// The name of a cell on the command line of the child process.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::MemSpread => "mem_spread",
            Group::MemLong => "mem_long",
            Group::Mediator => "mediator",
            Group::PgSeq => "pg_seq",
            Group::PgConc16 => "pg_conc16",
            Group::PgBatch100 => "pg_batch100",
            Group::Load => "load",
            Group::Projection => "projection",
            Group::LoadRss => "load_rss",
            #[cfg(feature = "mysql")]
            Group::MySeq => "my_seq",
            #[cfg(feature = "mysql")]
            Group::MyConc16 => "my_conc16",
            #[cfg(feature = "mysql")]
            Group::MyLoad => "my_load",
            Group::LiteSeq => "lite_seq",
            Group::LiteLoad => "lite_load",
            Group::Spec => "spec",
            Group::RedisLock => "redis_lock",
            Group::Relay => "relay",
            Group::Http => "http",
            Group::MemScale => "mem_scale",
            Group::PgScale => "pg_scale",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Group> {
        Group::ALL.iter().copied().find(|g| g.name() == s)
    }

    /// Where the group's events live (the in-memory groups never connect).
    pub(crate) fn backend(self) -> Backend {
        match self {
            // Redis needs no database of the run: the cells connect to `REDIS_URL`.
            Group::MemSpread | Group::MemLong | Group::Mediator | Group::MemScale | Group::RedisLock | Group::Http => {
                Backend::Memory
            }
            Group::PgSeq
            | Group::PgConc16
            | Group::PgBatch100
            | Group::Load
            | Group::Projection
            | Group::LoadRss
            | Group::Spec
            | Group::Relay
            | Group::PgScale => Backend::Postgres,
            #[cfg(feature = "mysql")]
            Group::MySeq | Group::MyConc16 | Group::MyLoad => Backend::MariaDb,
            Group::LiteSeq | Group::LiteLoad => Backend::Sqlite,
        }
    }

    pub(crate) fn contenders(self) -> &'static [Contender] {
        match self {
            Group::MemSpread | Group::MemLong => &[Contender::Ours, Contender::CqrsEs],
            Group::Mediator | Group::MemScale | Group::PgScale => &[Contender::Ours],
            Group::Projection | Group::Spec | Group::RedisLock | Group::Relay | Group::Http => {
                &[Contender::Ours, Contender::Sqlx]
            }
            // MariaDB and SQLite: no cqrs-es column (postgres-es is PostgreSQL only).
            _ if self.backend() != Backend::Postgres => &[Contender::Ours, Contender::Sqlx],
            _ => &Contender::ALL,
        }
    }

    pub(crate) fn rows(self) -> Vec<Row> {
        use Unit::{CommandsPerSec, EventsPerSec, MessagesPerSec, MiB, Micros, Millis, Nanos, QueriesPerSec};
        let rate = |ids: RateIds| vec![row(ids[0], CommandsPerSec), row(ids[1], Micros), row(ids[2], Micros)];
        match self {
            Group::MemSpread => rate(MEM_SPREAD),
            Group::MemLong => MEM_LONG.iter().map(|&(_, id)| row(id, Micros)).collect(),
            Group::Mediator => vec![row(MEDIATOR_SEND, Nanos), row(MEDIATOR_DIRECT, Nanos)],
            Group::PgSeq => rate(PG_SEQ),
            Group::PgConc16 => rate(PG_CONC16),
            Group::PgBatch100 => vec![row(PG_BATCH, EventsPerSec)],
            Group::Load => [LOADS[0], LOADS[1], LOADS[2], LOAD_SNAP, LOAD_REDIS_SNAP]
                .iter()
                .map(|&(_, id)| row(id, Millis))
                .collect(),
            Group::Projection => vec![row(PROJECTION, EventsPerSec)],
            Group::LoadRss => vec![row(LOAD_RSS.1, MiB)],
            #[cfg(feature = "mysql")]
            Group::MySeq => rate(MY_SEQ),
            #[cfg(feature = "mysql")]
            Group::MyConc16 => rate(MY_CONC16),
            #[cfg(feature = "mysql")]
            Group::MyLoad => MY_LOADS.iter().map(|&(_, id)| row(id, Millis)).collect(),
            Group::LiteSeq => rate(LITE_SEQ),
            Group::LiteLoad => LITE_LOADS.iter().map(|&(_, id)| row(id, Millis)).collect(),
            Group::Spec => vec![row(SPEC_PAGE, QueriesPerSec), row(SPEC_COUNT, QueriesPerSec)],
            Group::RedisLock => vec![row(REDIS_LOCK, Micros)],
            Group::Relay => vec![
                row(RELAY_NATS, MessagesPerSec),
                row(E2E_NATS[0], Micros),
                row(E2E_NATS[1], Micros),
                row(RELAY_RABBIT, MessagesPerSec),
                row(E2E_RABBIT[0], Micros),
                row(E2E_RABBIT[1], Micros),
            ],
            Group::Http => vec![row(HTTP_COMMANDS, CommandsPerSec)],
            Group::MemScale => {
                MEM_SCALE.iter().map(|&(_, id)| row(id, Micros)).chain([row(MEM_HANDLERS, Micros)]).collect()
            }
            Group::PgScale => PG_SCALE.iter().map(|&(_, id)| row(id, Micros)).collect(),
        }
    }

    /// What the group measures, as the table's section heading.
    pub(crate) fn title(self, w: &Workload) -> String {
        match self {
            Group::MemSpread => format!(
                "1. in memory, {} aggregates x {} commands: commands/s, p50, p99 (cqrs-es: MemStore)",
                thousands(w.spread_aggregates),
                w.spread_commands_each
            ),
            Group::MemLong => {
                "2. in memory, one aggregate: us per command at stream length 0 / 10k / 50k / 100k".to_owned()
            }
            Group::Mediator => {
                "3. mediator: `send` of a no-op command, and the handler called directly: ns per call".to_owned()
            }
            Group::PgSeq => format!(
                "4. Postgres, 1 client, {} commands over {} aggregates (cqrs-es column: postgres-es)",
                thousands(w.pg_commands),
                thousands(w.pg_aggregates)
            ),
            Group::PgConc16 => format!(
                "5. Postgres, {} clients on distinct aggregates, {} commands over {} aggregates",
                w.pg_clients,
                thousands(w.pg_commands),
                thousands(w.pg_aggregates)
            ),
            Group::PgBatch100 => format!(
                "6. Postgres, one command emitting {} events, {} commands: events/s (sqlx: multi-row INSERT)",
                w.batch_events, w.batch_commands
            ),
            Group::Load => format!(
                "7. Postgres, load of one aggregate of 1k / 10k / 100k events, and from a snapshot every {SNAPSHOT_EVERY}: ms"
            ),
            Group::Projection => format!(
                "8. Postgres, projection catch-up of {} events over {} accounts into a read model: events/s",
                thousands(PROJECTION_EVENTS),
                thousands(PROJECTION_ACCOUNTS)
            ),
            Group::LoadRss => "9. peak resident memory of a process loading 100,000 events: MiB".to_owned(),
            #[cfg(feature = "mysql")]
            Group::MySeq => format!(
                "10. MariaDB, 1 client, {} commands over {} aggregates (no cqrs-es column)",
                thousands(w.pg_commands),
                thousands(w.pg_aggregates)
            ),
            #[cfg(feature = "mysql")]
            Group::MyConc16 => format!(
                "11. MariaDB, {} clients on distinct aggregates, {} commands over {} aggregates",
                w.pg_clients,
                thousands(w.pg_commands),
                thousands(w.pg_aggregates)
            ),
            #[cfg(feature = "mysql")]
            Group::MyLoad => "12. MariaDB, load of one aggregate of 1k / 10k / 100k events: ms".to_owned(),
            Group::LiteSeq => format!(
                "13. SQLite file (WAL, synchronous=FULL), 1 client, {} commands over {} aggregates",
                thousands(w.pg_commands),
                thousands(w.pg_aggregates)
            ),
            Group::LiteLoad => "14. SQLite file, load of one aggregate of 1k / 10k / 100k events: ms".to_owned(),
            Group::RedisLock => format!(
                "16. Redis, {} uncontended lock + unlock round trips of one resource: us per pair \
                 (redis-rs: SET NX PX and a compare-and-delete script)",
                w.lock_cycles
            ),
            Group::Relay => format!(
                "17. the outbox relay: {} rows from Postgres to NATS JetStream and to RabbitMQ, each confirmed, 64 in \
                 flight: messages/s (broker client: async-nats / lapin publishing the same messages, 64 in flight); and \
                 {} commands one at a time, from the call to the async handler in a consumer of the bus: p50, p99",
                thousands(w.relay_messages),
                w.e2e_samples
            ),
            Group::Http => {
                "18. HTTP on loopback, in memory: deposits posted by wrk (2 threads, 32 connections) through \
                 cqrs-ddd-axum's `POST /commands/{name}`: commands/s (axum by hand: one route decoding `Json<Deposit>` \
                 and calling `send`)"
                    .to_owned()
            }
            Group::MemScale => format!(
                "19. in memory, scale: us per command on an aggregate not yet touched, with 1k / 100k / 1M aggregates \
                 stored, and with 1k aggregates and {} more command handlers registered",
                thousands(crate::domain::ours::EXTRA_HANDLERS)
            ),
            Group::PgScale => "20. Postgres, scale: us per command on an aggregate not yet touched, with 1k / 100k \
                 aggregates stored"
                .to_owned(),
            Group::Spec => format!(
                "15. Postgres, a read model of {} documents with a declared index: a specification's page of 20 \
                 (filter + order) and its count: queries/s (sqlx: the same queries written by hand)",
                thousands(SPEC_DOCUMENTS)
            ),
        }
    }

    /// Groups with a row whose id is or starts with one of `names` (`--only`); every group
    /// when `names` is empty. `Err` names what matched nothing.
    pub(crate) fn select(names: &[String]) -> Result<Vec<Group>, String> {
        if names.is_empty() {
            return Ok(Group::ALL.to_vec());
        }
        let matches = |g: Group, n: &str| g.name() == n || g.rows().iter().any(|r| r.id.starts_with(n));
        if let Some(unknown) = names.iter().find(|n| !Group::ALL.iter().any(|&g| matches(g, n))) {
            return Err(format!("`--only {unknown}` matches no scenario"));
        }
        Ok(Group::ALL.iter().copied().filter(|&g| names.iter().any(|n| matches(g, n))).collect())
    }
}

/// A window of commands timed at one stream length: up to `max_commands`, stopping
/// early once `budget` is spent (but after at least `MIN_WINDOW` commands), so a
/// contender that replays its whole stream on every command still finishes in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) max_commands: usize,
    pub(crate) budget: Duration,
}

pub(crate) const MIN_WINDOW: usize = 3;

/// `12345` -> `12,345`.
pub(crate) fn thousands(n: usize) -> String {
    group_digits(&n.to_string())
}

/// Workload sizes. A quick run keeps every scenario's workload (the same 10,000 commands
/// over 1,000 aggregates, the same streams) and cuts repetitions, long-stream windows and
/// the number of timed calls and loads (the table's footer says by how much).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload {
    pub(crate) quick: bool,
    pub(crate) reps: usize,
    pub(crate) spread_aggregates: usize,
    pub(crate) spread_commands_each: usize,
    pub(crate) long_window: Window,
    pub(crate) mediator_calls: usize,
    pub(crate) pg_commands: usize,
    pub(crate) pg_aggregates: usize,
    pub(crate) pg_clients: usize,
    pub(crate) batch_commands: usize,
    pub(crate) batch_events: u32,
    /// Timed loads per repetition for 1k, 10k and 100k events (after one warm-up load).
    pub(crate) loads_timed: [usize; 3],
    /// Queries of each kind per repetition of scenario 15.
    pub(crate) spec_queries: usize,
    /// Lock and unlock pairs per repetition of scenario 16.
    pub(crate) lock_cycles: usize,
    /// Outbox rows relayed per repetition of scenario 17.
    pub(crate) relay_messages: usize,
    /// Commands timed end to end per repetition of scenario 17.
    pub(crate) e2e_samples: usize,
}

impl Workload {
    pub(crate) fn new(quick: bool) -> Self {
        let full = Workload {
            quick,
            reps: 5,
            spread_aggregates: 10_000,
            spread_commands_each: 10,
            long_window: Window { max_commands: 200, budget: Duration::from_millis(1_500) },
            mediator_calls: 1_000_000,
            pg_commands: 10_000,
            pg_aggregates: 1_000,
            pg_clients: 16,
            batch_commands: 200,
            batch_events: 100,
            loads_timed: [20, 10, 3],
            spec_queries: 2_000,
            lock_cycles: 5_000,
            relay_messages: 10_000,
            e2e_samples: 500,
        };
        if !quick {
            return full;
        }
        Workload {
            reps: 3,
            long_window: Window { max_commands: 200, budget: Duration::from_millis(300) },
            mediator_calls: 300_000,
            loads_timed: [5, 3, 1],
            spec_queries: 500,
            lock_cycles: 1_000,
            relay_messages: 3_000,
            e2e_samples: 200,
            ..full
        }
    }

    /// What a quick run measures less of, for the table's footer.
    pub(crate) fn cuts(&self) -> Option<String> {
        let full = Workload::new(false);
        self.quick.then(|| {
            format!(
                "Quick run: {} repetitions (full: {}); long-stream windows stop after {} ms (full: {} ms); {} mediator \
                 calls (full: {}); loads timed {:?} times (full: {:?})",
                self.reps,
                full.reps,
                self.long_window.budget.as_millis(),
                full.long_window.budget.as_millis(),
                thousands(self.mediator_calls),
                thousands(full.mediator_calls),
                self.loads_timed,
                full.loads_timed,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_group_has_rows() {
        let mut ids: Vec<&str> = Group::ALL.iter().flat_map(|g| g.rows()).map(|r| r.id).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert!(Group::ALL.iter().all(|g| !g.rows().is_empty()));
    }

    #[test]
    fn only_selects_by_id_prefix_or_group_name() {
        let s = |names: &[&str]| Group::select(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        assert_eq!(s(&["mem_spread"]), Ok(vec![Group::MemSpread]));
        assert_eq!(s(&["mem_long_10k"]), Ok(vec![Group::MemLong]));
        assert_eq!(s(&["load_100k_rss"]), Ok(vec![Group::LoadRss]));
        assert_eq!(s(&["load"]), Ok(vec![Group::Load, Group::LoadRss]));
        assert_eq!(s(&["direct_call", "pg_seq"]), Ok(vec![Group::Mediator, Group::PgSeq]));
        assert_eq!(s(&["lite_"]), Ok(vec![Group::LiteSeq, Group::LiteLoad]));
        assert_eq!(s(&["lite_load_10k"]), Ok(vec![Group::LiteLoad]));
        assert_eq!(s(&[]).map(|g| g.len()), Ok(Group::ALL.len()));
        assert!(s(&["nope"]).unwrap_err().contains("nope"));
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn the_mariadb_groups_are_selected_by_their_prefix() {
        let s = |names: &[&str]| Group::select(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        assert_eq!(s(&["my_"]), Ok(vec![Group::MySeq, Group::MyConc16, Group::MyLoad]));
        assert_eq!(s(&["my_seq_p99", "my_load"]), Ok(vec![Group::MySeq, Group::MyLoad]));
        assert_eq!(
            Group::MyLoad.rows().iter().map(|r| r.id).collect::<Vec<_>>(),
            ["my_load_1k", "my_load_10k", "my_load_100k"]
        );
        assert!(Group::ALL.iter().filter(|g| g.backend() == Backend::MariaDb).count() == 3);
    }

    #[test]
    fn in_memory_groups_need_no_database() {
        // The four in-memory groups, Redis (its cells connect to `REDIS_URL`) and HTTP
        // (its servers keep their events in memory).
        assert!(Group::ALL.iter().filter(|g| g.backend() == Backend::Memory).count() == 6);
        assert!(
            Group::ALL
                .iter()
                .filter(|g| g.backend() != Backend::Memory && **g != Group::PgScale)
                .all(|g| g.contenders().contains(&Contender::Sqlx))
        );
    }

    #[test]
    fn the_mariadb_and_sqlite_groups_have_no_cqrs_es_column() {
        let others = Group::ALL.iter().filter(|g| !matches!(g.backend(), Backend::Memory | Backend::Postgres));
        assert!(others.clone().count() >= 2);
        assert!(others.clone().all(|g| g.contenders() == [Contender::Ours, Contender::Sqlx]));
        // The load groups of the other databases are not picked up by `--only load`.
        assert!(others.flat_map(|g| g.rows()).all(|r| !r.id.starts_with("load") && !r.id.starts_with("pg_")));
        assert_eq!(Group::LiteSeq.rows().iter().map(|r| r.id).collect::<Vec<_>>(), LITE_SEQ);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn names_round_trip() {
        assert!(Group::ALL.iter().all(|&g| Group::parse(g.name()) == Some(g)));
        assert!(Contender::ALL.iter().all(|&c| Contender::parse(c.key()) == Some(c)));
        assert_eq!(Contender::CqrsEs.label(Group::PgSeq), "postgres-es");
        assert_eq!(Contender::CqrsEs.label(Group::MemSpread), "cqrs-es");
        assert_eq!(Contender::CqrsEs.label(Group::LiteSeq), "cqrs-es");
    }
}
