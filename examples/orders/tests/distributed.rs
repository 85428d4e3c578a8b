//! The orders example split into three processes over NATS (`orders_nats all`), run as a
//! user would run it from the README.

use std::process::Command;

#[test]
fn the_three_processes_fulfil_the_orders_over_nats() {
    let out = Command::new(env!("CARGO_BIN_EXE_orders_nats"))
        .arg("all")
        .output()
        .expect("the example starts (PostgreSQL and NATS must run: scripts/services.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the example failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("saga completed, order confirmed, on the board: confirmed"), "{stdout}");
    assert!(stdout.contains("because: card declined by the issuer"), "{stdout}");
    assert!(stdout.contains("because: only 5 in stock, 50 ordered"), "{stdout}");
    assert!(stdout.contains(": 7 in stock"), "{stdout}");
}
