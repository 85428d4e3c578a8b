//! `example-bank serve`: the binary serves the bank over HTTP on SQLite, with its workers,
//! health, metrics and OpenAPI document; the README's curl lines go through the same
//! routes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `example-bank serve` on a free port in a directory of its own; its base URL.
fn start(dir: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-bank"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bank binary starts");
    let stdout = child.stdout.take().expect("its output");
    let server = Server(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line of output");
        if let Some(url) = line.strip_prefix("listening on ") {
            return (server, url.trim().to_owned());
        }
    }
    panic!("the server ended before it said where it listens");
}

#[tokio::test]
async fn the_bank_serves_commands_queries_health_metrics_and_its_document() {
    let dir = std::env::temp_dir().join(format!("cqrs_ddd_bank_serve_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, base) = start(&dir);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    let id = format!("acc-{}", std::process::id());
    let open = http
        .post(format!("{base}/commands/OpenAccount"))
        .json(&json!({"id": id, "owner": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200, "{:?}", open.text().await);
    let deposit =
        http.post(format!("{base}/commands/Deposit")).json(&json!({"id": id, "amount": 250})).send().await.unwrap();
    assert_eq!(deposit.status(), 200);
    let position = deposit.headers()["x-cqrs-position"].to_str().unwrap().to_owned();

    // Read your write: the projection runs in the server's host.
    let account: Value = http
        .get(format!("{base}/queries/GetAccount?id={id}"))
        .header("x-cqrs-min-position", &position)
        .header("x-cqrs-wait-ms", "30000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["balance"], 250, "{account}");
    let balance: Value =
        http.get(format!("{base}/queries/GetBalance?id={id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(balance, json!(250));

    let overdraft = http
        .post(format!("{base}/commands/Withdraw"))
        .json(&json!({"id": id, "amount": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(overdraft.status(), 422);
    let problem: Value = overdraft.json().await.unwrap();
    assert_eq!(problem["fields"]["InsufficientFunds"]["balance"], 250, "{problem}");

    let page: Value = http
        .get(format!("{base}/read-models/balances?filter=owner:eq:Ada&sort=-balance"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["document"]["owner"], "Ada", "{page}");

    let ready = http.get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["status"], "up", "{report}");

    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cqrs_ddd_messages_total"), "{metrics}");

    let document: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["paths"]["/commands/Deposit"].is_object(), "{document}");
    let _ = std::fs::remove_dir_all(&dir);
}
