//! The adapter contract on the in-memory stores, so memory, SQLite and PostgreSQL cannot
//! drift apart: every contract that needs no raw SQL runs here too.

#[macro_use]
mod common;

use std::time::Duration;

use common::deadlines::*;
use common::jobs::*;
use common::mem::Mem;
use common::merging::*;
use common::projections::*;
use common::saga_engine::*;
use common::sagas::*;
use common::tenancy::*;
use common::undo::*;
use common::*;
use cqrs_ddd::Result;
use cqrs_ddd::ports::{CommitBatch, CommitReceipt, async_trait};

/// One set of in-memory stores; every `store()` is another handle onto it.
#[derive(Default)]
struct Memory {
    shared: Mem,
}

#[async_trait]
impl TestDb for Memory {
    type Store = Mem;
    const SQLITE: bool = false;

    async fn store(&self) -> Mem {
        self.shared.clone()
    }

    async fn exec(&self, sql: &str) {
        panic!("the in-memory contract runs no raw SQL (`{sql}`); keep SQL-only contracts out of tests/memory.rs")
    }

    async fn count(&self, table: &str) -> i64 {
        panic!("the in-memory contract counts no table rows (`{table}`)")
    }

    async fn commit_slowly(&self, _: &Mem, _: CommitBatch, _: Duration) -> Result<()> {
        panic!("the in-memory store commits one batch at a time; it has no open transactions")
    }

    async fn commit_in_one_transaction(&self, _: &Mem, _: Vec<CommitBatch>) -> Vec<Result<CommitReceipt>> {
        panic!("the in-memory store has no caller-controlled transactions")
    }
}

macro_rules! memory_tests {
    ($($name:ident => $contract:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $contract(&Memory::default() $(, $arg)*).await;
        }
    )*};
}

memory_tests! {
    concurrent_commands_on_one_aggregate_lose_no_update => concurrent_commands_lose_no_update(8, 100);
}

every_store_contract!(memory_tests);

/// The geometry fixtures on the in-memory store (the evaluator itself).
#[cfg(feature = "geo")]
mod geometry {
    use super::*;

    #[tokio::test]
    async fn geometry_operators_answer_the_fixtures() {
        common::geometry::geometry_operators_answer_the_fixtures(&Mem::default()).await;
    }

    #[tokio::test]
    async fn bad_geometry_values_are_refused() {
        common::geometry::bad_geometry_values_are_refused_alike(&Mem::default()).await;
    }
}
