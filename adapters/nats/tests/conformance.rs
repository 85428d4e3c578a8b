//! The broker conformance suite (cqrs-ddd-broker-tests) on NATS JetStream (`NATS_URL`,
//! default the loopback server) and PostgreSQL (`DATABASE_URL`).

use cqrs_ddd::Result;
use cqrs_ddd_broker_tests::{TestBus, broker_suite};
use cqrs_ddd_nats::Nats;

struct OnNats;

impl TestBus for OnNats {
    type Bus = Nats;

    fn address() -> String {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        url.trim_start_matches("nats://").to_owned()
    }

    async fn connect(address: &str, prefix: &str) -> Result<Nats> {
        Ok(Nats::connect(&format!("nats://{address}")).await?.prefix(prefix))
    }

    async fn clean(bus: &Nats) {
        bus.delete_streams().await;
    }
}

broker_suite!(OnNats);
