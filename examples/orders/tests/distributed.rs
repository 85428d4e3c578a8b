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
    // How much was in stock when the third order's saga asked depends on whether the
    // other two had reserved theirs yet: the three sagas run side by side.
    assert!(stdout.lines().any(|l| l.contains("because: only ") && l.ends_with("in stock, 50 ordered")), "{stdout}");
    assert!(stdout.contains(": 7 in stock"), "{stdout}");
}
