//! The suite's domain: clocks tick, and an async handler records every tick in a ledger
//! of the same id, with the process that handled it. A ledger that reads `1, 2, …, n`
//! shows each tick handled once and in order.

use std::sync::atomic::{AtomicBool, Ordering};

use cqrs_ddd::prelude::*;

/// One tick of a clock.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticked {
    /// 1, 2, … per clock.
    pub n: u64,
}

/// A tick recorded by the handler.
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    /// The tick.
    pub n: u64,
    /// The process that handled it.
    pub by: u32,
}

/// The suite's domain never refuses.
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

/// A clock: its last tick.
#[aggregate(id = String, events(Ticked), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Clock {
    last: u64,
}

#[aggregate]
impl Clock {
    #[handle(create_if_missing)]
    fn tick(&self, c: &Tick) -> Result<Vec<ClockEvent>, Never> {
        Ok((self.last + 1..=self.last + c.count).map(|n| Ticked { n }.into()).collect())
    }

    #[apply]
    fn ticked(&mut self, e: &Ticked) {
        self.last = e.n;
    }
}

/// Ticks a clock `count` times in one command.
#[command(aggregate = Clock)]
pub struct Tick {
    /// The clock.
    #[id]
    pub clock: String,
    /// How many ticks.
    pub count: u64,
}

/// What the handler recorded for a clock: `(tick, process)` in the order handled.
#[aggregate(id = String, events(Recorded), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// The ticks, in the order they were recorded.
    pub seen: Vec<(u64, u32)>,
}

#[aggregate]
impl Ledger {
    #[handle(create_if_missing)]
    fn record(&self, c: &Record) -> Result<Vec<LedgerEvent>, Never> {
        Ok(vec![Recorded { n: c.n, by: c.by }.into()])
    }

    #[apply]
    fn recorded(&mut self, e: &Recorded) {
        self.seen.push((e.n, e.by));
    }
}

/// Records a tick.
#[command(aggregate = Ledger)]
pub struct Record {
    /// The clock's id.
    #[id]
    pub ledger: String,
    /// The tick.
    pub n: u64,
    /// The process.
    pub by: u32,
}

/// The fault the suite injects: ticks of clocks named `poison…` fail while it is on.
#[derive(Debug)]
pub struct Faults {
    poison: AtomicBool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { poison: AtomicBool::new(true) }
    }
}

impl Faults {
    /// Ticks of poison clocks succeed from now on.
    pub fn heal(&self) {
        self.poison.store(false, Ordering::SeqCst);
    }
}

/// Records each tick in the ledger of its clock.
#[event_handler(async)]
async fn record_tick(e: &Envelope<Ticked>, ctx: &EventContext, faults: Dep<Faults>) -> Result<()> {
    let clock = &e.header.stream_id;
    if clock.starts_with("poison") && faults.poison.load(Ordering::SeqCst) {
        return Err(cqrs_ddd::Error::handler(format!("poisoned tick {} of {clock}", e.n)));
    }
    ctx.send(Record { ledger: clock.clone(), n: e.n, by: std::process::id() }).await
}
