//! The standalone `cqrs-ddd` binary: it knows the tables, not an application's code.

use assert_cmd::Command;

fn tool(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cqrs-ddd"));
    cmd.env("DATABASE_URL", url).env_remove("CQRS_DDD_TENANT").env_remove("CQRS_DDD_SCHEMA");
    cmd
}

fn sqlite() -> String {
    format!("sqlite://{}/standalone-{}.db?mode=rwc", env!("CARGO_TARGET_TMPDIR"), uuid::Uuid::now_v7().simple())
}

#[test]
fn migrates_and_lists_an_empty_database() {
    let url = sqlite();
    let out = tool(&url).args(["--json", "migrate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer, serde_json::json!({ "migrated": true, "database": "SQLite" }));
    // Twice is fine.
    tool(&url).arg("migrate").assert().success().stdout("the SQLite tables are up to date\n");
    for listing in [&["projections", "list"][..], &["tenants", "list"], &["sagas", "list"], &["schedules", "list"]] {
        let out = tool(&url).arg("--json").args(listing).output().unwrap();
        assert!(out.status.success(), "{listing:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
        tool(&url).args(listing).assert().success().stdout("(none)\n");
    }
    let out = tool(&url).args(["--json", "outbox", "status"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{\n  \"pending\": 0,\n  \"dead\": 0\n}");
}

#[test]
fn what_needs_the_applications_code_says_so() {
    let url = sqlite();
    tool(&url).arg("migrate").assert().success();
    let out = tool(&url).args(["projections", "rebuild", "balances"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no projection named `balances`"), "{err}");
}

#[test]
fn the_command_line_is_checked() {
    let url = sqlite();
    tool(&url).arg("--help").assert().success();
    tool(&url).arg("--version").assert().success();
    tool(&url).arg("frobnicate").assert().code(2);
    tool(&url).args(["sagas", "list", "--limit", "many"]).assert().code(2);
    tool("ftp://example.invalid/db").args(["tenants", "list"]).assert().code(4);
}
