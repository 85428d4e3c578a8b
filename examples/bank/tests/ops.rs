//! `example-bank ops ..`: the operator tool embedded in the application sees its
//! projection.

use std::process::Command;

#[test]
fn the_embedded_tool_knows_the_balances_projection() {
    let url = format!("sqlite://{}/ops-{}.db?mode=rwc", env!("CARGO_TARGET_TMPDIR"), std::process::id());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_example-bank"))
            .arg("ops")
            .args(["--database-url", &url])
            .args(args)
            .env_remove("CQRS_DDD_TENANT")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["migrate"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["--json", "projections", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "balances");
    let (code, out, err) = run(&["--json", "projections", "rebuild", "balances"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"stopped\": false"), "{out}");
    assert_eq!(run(&["projections", "rebuild", "ledger"]).0, Some(3), "no such projection");
}
