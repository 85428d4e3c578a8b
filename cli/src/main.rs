//! `cqrs-ddd`: operator commands on a cqrs-ddd database, without an application's code
//! (see the crate docs: embed the tool in your own binary to rebuild your projections
//! and retry your sagas).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    cqrs_ddd_cli::main(|db| async move { db.builder().build() }).await
}
