//! The admin page end to end, in headless Chromium driven over WebDriver (chromedriver,
//! through fantoccini): an operator opens `/admin#token=..`, rebuilds a projection and
//! follows its progress to 100 %, retries a dead letter once its cause is fixed, puts a
//! dead outbox row back and compensates a saga.
//! The page's screenshot is saved to `{CARGO_TARGET_TMPDIR}/admin-page.png`, and to
//! `docs/admin-page.png` when `CQRS_DDD_UPDATE_SCREENSHOT=1`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `bash scripts/browser.sh` installs them, as CI does); without them
//! the test fails and says so.

mod admin_app;
mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use admin_app::*;
use common::{Balances, Deposit};
use cqrs_ddd::projection::WorkerOptions;
use cqrs_ddd_axum::admin::AdminPage;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long anything in the browser may take, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// An account whose name is markup: the page must show it as text.
const HOSTILE: &str = r#"<img src=x onerror="window.__injected=1">"#;

/// chromedriver on a spare loopback port, in a process group of its own that is killed
/// (with the browser it started) when dropped.
struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Driver {
    fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the admin page's browser test needs Debian's `chromium` and `chromium-driver`; \
                 install them with `bash scripts/browser.sh`"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromedriver.log");
        let child = std::os::unix::process::CommandExt::process_group(&mut Command::new(CHROMEDRIVER), 0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        Driver { child, url: format!("http://127.0.0.1:{port}"), log }
    }

    /// A browser session, once the driver answers.
    async fn connect(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                ],
            }),
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let attempt =
                ClientBuilder::new(HttpConnector::new()).capabilities(capabilities.clone()).connect(&self.url).await;
            match attempt {
                Ok(client) => return client,
                // Not listening yet.
                Err(fantoccini::error::NewSessionError::FailedC(_) | fantoccini::error::NewSessionError::Failed(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session from {CHROMEDRIVER} (its log: {}): {e}", self.log.display()),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group: chromedriver and the browser it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `probe` finds what it looks for, [`PATIENCE`] at most; on time out says
/// what the page shows.
async fn eventually<T, F, Fut>(client: &Client, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if Instant::now() >= deadline {
            let shown = text(client, "body").await.unwrap_or_default();
            let shown: String = shown.chars().take(3000).collect();
            panic!("{what}: not within {PATIENCE:?}; the page shows:\n{shown}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element `css` selects, if there is one.
async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn click(client: &Client, css: &str) {
    let element = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
    element.click().await.unwrap_or_else(|e| panic!("`{css}` cannot be clicked: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rebuilds_a_projection_and_retries_a_dead_letter_in_a_browser() {
    let driver = Driver::start();

    // 300 deposits over twelve accounts, one of them unlucky; `balances` reads them ten
    // at a time, so its rebuild moves in steps; `picky` has a dead letter; the outbox a
    // dead row; a payout saga runs; a command is due in an hour.
    let fault = Arc::new(AtomicBool::new(true));
    let payments = Arc::new(Payments::default());
    let app = builder(&fault, &payments)
        .projection_with(Balances, WorkerOptions { batch_size: 10, ..WorkerOptions::default() })
        .build()
        .expect("wired");
    deposits(&app, 300, 12, 150).await;
    app.send(Deposit { account: HOSTILE.to_owned(), amount: 2 }).await.unwrap();
    let picky = app.projection("picky").unwrap();
    picky.catch_up(|_| ControlFlow::Continue(())).await.unwrap();
    assert_eq!(picky.dead_letters().await.unwrap().len(), 1);
    let outbox = app.outbox().unwrap();
    let row = outbox.pending(1).await.unwrap().remove(0).message.id;
    outbox.mark_failed(row, "the broker is away", Duration::ZERO, 1).await.unwrap();
    ask_payout(&app, "p-1").await.unwrap();
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    app.schedule(&Reserve { account: "p-2".into() }, due).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = router(app.clone(), AdminPage::new());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let client = driver.connect().await;
    client.set_window_size(1280, 900).await.unwrap();
    client.goto(&format!("http://{address}/admin#token={}", admin_token(None))).await.unwrap();
    let c = &client;

    // The page keeps the token and drops it from the address; it lists the projections.
    eventually(c, "the projection `balances` is listed", || async move {
        c.find(Locator::Css(r#"tr[data-scope="balances"] [data-testid="rebuild"]"#)).await.ok()
    })
    .await;
    let address_bar = client.current_url().await.unwrap();
    assert!(!address_bar.as_str().contains("token"), "the token stays out of the address: {address_bar}");
    assert_eq!(text(c, r#"[data-testid="whoami"]"#).await.as_deref(), Some("ops · every tenant"));
    // Every section is read (the tenants last) and none failed.
    eventually(c, "the tenants are listed", || async move {
        text(c, r#"[data-testid="tenants"] .empty"#).await.filter(|t| t == "No tenant has events.")
    })
    .await;
    assert_eq!(text(c, "#message").await.as_deref(), Some(""), "no section failed");
    let scheduled = text(c, r#"[data-testid="schedule"] pre"#).await.expect("the scheduled command is listed");
    assert_eq!(serde_json::from_str::<Value>(&scheduled).unwrap(), json!({"account": "p-2"}));

    // Rebuilt, with its progress followed to the end.
    click(c, r#"tr[data-scope="balances"] [data-testid="rebuild"]"#).await;
    eventually(c, "the rebuild of `balances` reaches 100 %", || async move {
        let percent = text(c, r#"tr[data-scope="balances"] [data-testid="rebuild-percent"]"#).await?;
        let state = text(c, r#"tr[data-scope="balances"] [data-testid="rebuild-state"]"#).await?;
        (percent == "100 %" && state.starts_with("done")).then_some(())
    })
    .await;
    eventually(c, "the status after the rebuild shows no lag", || async move {
        (text(c, r#"tr[data-scope="balances"] [data-testid="lag"]"#).await? == "0").then_some(())
    })
    .await;
    let balances = app.read_model_store().unwrap().documents("balances").await.unwrap();
    assert_eq!(balances.len(), 13, "every account's balance is rebuilt");

    // The dead letter, with its payload; retried once the cause is fixed, its row goes.
    let payload = eventually(c, "picky's dead letter is listed", || async move {
        text(c, r#"[data-testid="dead-letter"] pre"#).await
    })
    .await;
    let payload: Value = serde_json::from_str(&payload).expect("the payload, pretty-printed JSON");
    assert_eq!(payload, json!({"amount": UNLUCKY}));
    fault.store(false, Ordering::SeqCst);
    click(c, r#"[data-testid="dead-letter"] [data-testid="dead-letter-retry"]"#).await;
    eventually(c, "the dead letter's row is gone", || async move {
        c.find_all(Locator::Css(r#"[data-testid="dead-letter"]"#)).await.ok()?.is_empty().then_some(())
    })
    .await;
    assert!(picky.dead_letters().await.unwrap().is_empty(), "retried in the application");
    let message = text(c, "#message").await.unwrap_or_default();
    assert!(message.starts_with("Retried event"), "{message}");

    // The dead outbox row, put back.
    let counts = text(c, r#"[data-testid="outbox-counts"]"#).await.unwrap_or_default();
    assert!(counts.contains("1 dead"), "{counts}");
    click(c, r#"[data-testid="outbox-row"] [data-testid="outbox-retry"]"#).await;
    eventually(c, "the outbox row is back to pending", || async move {
        let counts = text(c, r#"[data-testid="outbox-counts"]"#).await?;
        let rows = c.find_all(Locator::Css(r#"[data-testid="outbox-row"]"#)).await.ok()?;
        (counts.contains("0 dead") && rows.is_empty()).then_some(())
    })
    .await;
    assert_eq!(outbox.counts().await.unwrap().dead, 0);

    // The saga, with its history, compensated once the operator confirms.
    let saga = r#"[data-testid="saga"][data-saga-id="p-1"]"#;
    assert_eq!(text(c, &format!("{saga} [data-testid=\"saga-state\"]")).await.as_deref(), Some("running"));
    click(c, &format!("{saga} summary")).await;
    let sent = text(c, &format!("{saga} [data-testid=\"saga-command\"]")).await.unwrap_or_default();
    assert!(sent.contains("Reserve") && sent.contains("sent"), "{sent}");
    click(c, &format!("{saga} [data-testid=\"saga-compensate\"]")).await;
    client.accept_alert().await.expect("the operator is asked to confirm");
    eventually(c, "the saga is compensated", || async move {
        (text(c, &format!("{saga} [data-testid=\"saga-state\"]")).await? == "compensated").then_some(())
    })
    .await;
    assert_eq!(payments.sent(), ["Reserve(p-1)", "Release(p-1)"]);

    // Markup in the data is shown as text: no element comes of it.
    let shown = eventually(c, "the newest events are listed", || async move {
        let rows = c.find_all(Locator::Css(r#"[data-testid="event"]"#)).await.ok()?;
        (!rows.is_empty()).then_some(rows.len())
    })
    .await;
    assert_eq!(shown, 50, "the newest 50 events");
    let page = client
        .execute(
            "return {images: document.querySelectorAll('main img').length, injected: window.__injected === 1, \
             shown: document.body.innerText.includes(arguments[0])}",
            vec![json!(HOSTILE)],
        )
        .await
        .unwrap();
    assert_eq!(page, json!({"images": 0, "injected": false, "shown": true}));

    save_screenshot(&client.screenshot().await.unwrap());
    client.close().await.unwrap();
    server.abort();
}

/// Saves the page's screenshot for people to look at, and as the docs' picture when asked.
fn save_screenshot(png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-page.png");
    std::fs::write(&target, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    if std::env::var("CQRS_DDD_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&target, docs.join("admin-page.png")).unwrap();
    }
}
