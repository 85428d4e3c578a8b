//! The conformance suite every cqrs-ddd broker adapter passes, on the real broker and a
//! shared PostgreSQL event store:
//!
//! - 10,000 events reach two consumer processes of one group: each handler's effect
//!   exactly once, and the events of each stream handled in their order;
//! - a consumer process SIGKILLed mid-stream, and another started, loses nothing and
//!   repeats no effect;
//! - every connection to the broker cut by a TCP proxy inside the test, then restored,
//!   loses nothing and repeats no effect (publisher and consumers behind the proxy);
//! - a poison message ends in the dead letters after the last delivery while later
//!   messages keep flowing, and is replayed once the handler is fixed;
//! - tenants: the handlers of a tenant's events run in that tenant.
//!
//! An adapter implements [`TestBus`] and calls [`broker_suite!`] in one test file; the
//! child processes are that test binary itself, started on its
//! `broker_consumer_process` test.

pub mod domain;
pub mod proxy;
pub mod suite;

use std::future::Future;

use cqrs_ddd::Result;
use cqrs_ddd::broker::Bus;

/// How the suite reaches a broker.
pub trait TestBus: Send + Sync + 'static {
    /// The adapter's bus.
    type Bus: Bus + Clone;

    /// `host:port` of the broker (the suite's proxy forwards to it).
    fn address() -> String;

    /// A bus on the broker at `address` (`host:port`), its names under `prefix`.
    fn connect(address: &str, prefix: &str) -> impl Future<Output = Result<Self::Bus>> + Send;

    /// Removes what the test made on the broker (best effort).
    fn clean(bus: &Self::Bus) -> impl Future<Output = ()> + Send;
}

/// The suite's tests for `$bus` (a [`TestBus`]), plus the test the child processes run.
#[macro_export]
macro_rules! broker_suite {
    ($bus:ty) => {
        /// A consumer process of the suite: does nothing unless started by it.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn broker_consumer_process() {
            $crate::suite::child::<$bus>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn ten_thousand_events_reach_two_consumer_processes_once_and_in_order() {
            $crate::suite::ten_thousand_events::<$bus>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_consumer_process_killed_mid_stream_loses_and_repeats_nothing() {
            $crate::suite::killed_consumer::<$bus>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn connections_cut_and_restored_lose_and_repeat_nothing() {
            $crate::suite::cut_connections::<$bus>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_poison_message_ends_in_the_dead_letters_while_others_flow() {
            $crate::suite::poison::<$bus>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn handlers_run_in_the_tenant_of_the_event() {
            $crate::suite::tenants::<$bus>().await;
        }
    };
}
