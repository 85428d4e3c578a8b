//! The broker conformance suite (cqrs-ddd-broker-tests) on RabbitMQ (`AMQP_URL`, default
//! the loopback server as guest) and PostgreSQL (`DATABASE_URL`).

use cqrs_ddd::Result;
use cqrs_ddd_broker_tests::{TestBus, broker_suite};
use cqrs_ddd_rabbitmq::RabbitMq;

struct OnRabbitMq;

fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `scheme://credentials@` and `/vhost?query` of [`url`] around its `host:port`.
fn around_address() -> (String, String, String) {
    let url = url();
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url.as_str()));
    let (authority, tail) = rest.split_once('/').map_or((rest, String::new()), |(a, t)| (a, format!("/{t}")));
    let (credentials, address) = authority.rsplit_once('@').map_or(("", authority), |(c, a)| (c, a));
    let address = if address.contains(':') { address.to_owned() } else { format!("{address}:5672") };
    let before = if credentials.is_empty() { format!("{scheme}://") } else { format!("{scheme}://{credentials}@") };
    (before, address, tail)
}

impl TestBus for OnRabbitMq {
    type Bus = RabbitMq;

    fn address() -> String {
        around_address().1
    }

    async fn connect(address: &str, prefix: &str) -> Result<RabbitMq> {
        let (before, _, after) = around_address();
        // The suite's consumer group, declared by the publisher too, so that events
        // published before the consumers started are routed.
        Ok(RabbitMq::connect(&format!("{before}{address}{after}")).await?.prefix(prefix).groups(["workers"]))
    }

    async fn clean(bus: &RabbitMq) {
        if let Err(e) = bus.delete_topology(&[]).await {
            eprintln!("cleaning up RabbitMQ: {e}");
        }
    }
}

broker_suite!(OnRabbitMq);
