//! The operator tool, embedded in an application (`operated`), run as a process against
//! PostgreSQL, SQLite and MariaDB: every listing and action, the exit statuses a script
//! relies on, a rebuild interrupted by Ctrl-C and resumed, and a followed tail.
//!
//! PostgreSQL at `POSTGRES_URL` (default the loopback server as `postgres`), a schema per
//! test; MariaDB at `MYSQL_URL` (default the loopback server as root), a database per
//! test; SQLite in a file per test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cqrs_ddd::ports::Cursor;
use cqrs_ddd_cli::Database;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_operated");

/// One test's database, dropped (best effort) at the end.
struct Db {
    url: String,
    schema: String,
    drop: Option<(String, String)>,
}

impl Db {
    fn sqlite(name: &str) -> Db {
        let path = format!("{}/{name}-{}.db", env!("CARGO_TARGET_TMPDIR"), uuid::Uuid::now_v7().simple());
        Db { url: format!("sqlite://{path}?mode=rwc"), schema: "public".into(), drop: None }
    }

    fn postgres() -> Db {
        let server =
            std::env::var("POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
        Db {
            url: server.clone(),
            schema: schema.clone(),
            drop: Some((server, format!("DROP SCHEMA \"{schema}\" CASCADE"))),
        }
    }

    async fn mariadb() -> Db {
        let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned());
        let database = format!("cli_{}", uuid::Uuid::now_v7().simple());
        let root = sqlx::MySqlPool::connect(&server).await.unwrap_or_else(|e| {
            panic!("MariaDB is not reachable at {server} ({e}); start it with scripts/services.sh")
        });
        sqlx::raw_sql(&format!("CREATE DATABASE `{database}`")).execute(&root).await.unwrap();
        Db {
            url: format!("{server}/{database}"),
            schema: "public".into(),
            drop: Some((server, format!("DROP DATABASE `{database}`"))),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .env("DATABASE_URL", &self.url)
            .env("CQRS_DDD_SCHEMA", &self.schema)
            .env_remove("CQRS_DDD_TENANT")
            .env_remove("E2E_REFUSE")
            .env_remove("E2E_GATE")
            .env_remove("E2E_FAIL_WELCOME")
            .env_remove("E2E_FAIL_RECALL")
            .env_remove("E2E_FAIL_AUDIT");
        cmd
    }

    /// Runs `operated args` with `env`; its exit status, standard output and error.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = assert_cmd::Command::from_std(self.command(args));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.timeout(Duration::from_mins(2)).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// Runs `operated --json args`, expecting success; its JSON answer.
    fn json(&self, args: &[&str]) -> Value {
        self.json_with(args, &[])
    }

    fn json_with(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all, env);
        assert_eq!(code, 0, "`{}` failed: {err}{out}", args.join(" "));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{}` answered no JSON ({e}): {out}", args.join(" ")))
    }

    /// Runs a command expecting `code`; its standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let (got, out, err) = self.run(args, &[]);
        assert_eq!(got, code, "`{}`: {err}{out}", args.join(" "));
        err
    }

    fn seed(&self, tenant: &str, accounts: u32, deposits: u32, env: &[(&str, &str)]) {
        let (code, out, err) = self.run(&["seed", tenant, &accounts.to_string(), &deposits.to_string()], env);
        assert_eq!(code, 0, "seed: {err}{out}");
    }

    async fn database(&self) -> Database {
        Database::connect(&self.url, &self.schema).await.unwrap()
    }

    async fn cleanup(self) {
        if let Some((server, sql)) = &self.drop {
            if server.starts_with("postgres") {
                if let Ok(pool) = sqlx::PgPool::connect(server).await {
                    let _ = sqlx::raw_sql(sql).execute(&pool).await;
                }
            } else if let Ok(pool) = sqlx::MySqlPool::connect(server).await {
                let _ = sqlx::raw_sql(sql).execute(&pool).await;
            }
        }
    }
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x[field].as_str().unwrap_or_default().to_owned()).collect()
}

/// Every listing and action on a seeded database, and the exit statuses of mistakes.
async fn operate(db: Db) {
    assert_eq!(db.json(&["migrate"])["migrated"], true);
    // Untenanted: three accounts whose welcome fails (their sagas fail), one deposit
    // whose audit fails (its outbox row dies). Tenant t1: two accounts, one deposit.
    db.seed("-", 3, 1, &[("E2E_FAIL_WELCOME", "1"), ("E2E_FAIL_AUDIT", "1")]);
    db.seed("t1", 2, 1, &[]);

    // Tenants and events.
    assert_eq!(db.json(&["tenants", "list"]), serde_json::json!(["t1"]));
    assert_eq!(db.json(&["--tenant", "t2", "tenants", "list"]), serde_json::json!([]));
    let tail = db.json(&["events", "tail", "-n", "2"]);
    assert_eq!(len(&tail), 2);
    assert_eq!(strings(&tail, "event_type"), ["Opened", "Deposited"], "the newest two, oldest first");
    assert_eq!(strings(&tail, "stream_id"), ["t1-1", "t1-1"]);
    let t1 = db.json(&["--tenant", "t1", "events", "tail", "-n", "100"]);
    assert_eq!(len(&t1), 3, "{t1}");
    assert!(t1.as_array().unwrap().iter().all(|e| e["tenant"] == "t1"));
    let stream = db.json(&["events", "stream", "Account", "acc-1"]);
    assert_eq!(strings(&stream, "event_type"), ["Opened", "Deposited"]);
    assert_eq!(stream[1]["payload"]["amount"], 1);
    assert_eq!(len(&db.json(&["--tenant", "t1", "events", "stream", "Account", "t1-1"])), 2);
    let found = db.json(&["events", "stream", "Account", "t1-1"]);
    assert_eq!(len(&found), 2, "found in the one tenant that has it");
    assert!(db.fails(&["events", "stream", "Account", "nobody"], 3).contains("does not exist"));
    db.fails(&["--tenant", "t1", "events", "stream", "Account", "acc-1"], 3);
    let (code, table, _) = db.run(&["events", "tail", "-n", "1"], &[]);
    assert_eq!(code, 0);
    assert!(table.starts_with("CURSOR") && table.contains("t1:Account/t1-1 v2"), "{table}");

    // Scheduled commands: one per seed.
    let schedules = db.json(&["schedules", "list"]);
    assert_eq!(len(&schedules), 2, "{schedules}");
    let t1_schedule = db.json(&["--tenant", "t1", "schedules", "list"]);
    assert_eq!(len(&t1_schedule), 1);
    let id = t1_schedule[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(t1_schedule[0]["command_type"], "Deposit");
    assert_eq!(db.json(&["schedules", "cancel", &id])["cancelled"], id.as_str(), "found in its tenant");
    assert_eq!(len(&db.json(&["schedules", "list"])), 1);
    assert!(db.fails(&["schedules", "cancel", &id], 3).contains("does not exist"));
    db.fails(&["schedules", "cancel", "not-a-uuid"], 2);
    assert_eq!(db.json(&["schedules", "list", "--dead"]), serde_json::json!([]));

    // Jobs: per seed one completed, one failed, one pending.
    let stats = db.json(&["jobs", "stats"]);
    assert_eq!(stats, serde_json::json!({"pending": 2, "running": 0, "completed": 2, "failed": 2, "cancelled": 0}));
    let t1_stats = db.json(&["--tenant", "t1", "jobs", "stats"]);
    assert_eq!((t1_stats["pending"].as_u64(), t1_stats["failed"].as_u64()), (Some(1), Some(1)), "{t1_stats}");
    let failed = db.json(&["jobs", "list", "--status", "failed"]);
    assert_eq!(len(&failed), 2, "{failed}");
    assert!(failed[0]["error"].as_str().unwrap().contains("refused"), "{failed}");
    assert_eq!(len(&db.json(&["jobs", "list", "--status", "completed", "--status", "pending"])), 4);
    assert_eq!(len(&db.json(&["jobs", "list", "--limit", "2", "--offset", "5"])), 1, "paged");
    let t1_failed = db.json(&["--tenant", "t1", "jobs", "list", "--status", "failed"]);
    assert_eq!(len(&t1_failed), 1);
    let t1_failed = t1_failed[0]["id"].as_str().unwrap().to_owned();
    let other_failed = strings(&failed, "id").into_iter().find(|id| *id != t1_failed).unwrap();
    let crossed = db.json(&["--tenant", "t1", "jobs", "retry", &other_failed]);
    assert_eq!((crossed["done"].as_u64(), crossed["skipped"].as_u64()), (Some(0), Some(1)), "another tenant's job");
    let retried = db.json(&["--tenant", "t1", "jobs", "retry", &t1_failed]);
    assert_eq!((retried["done"].as_u64(), retried["skipped"].as_u64()), (Some(1), Some(0)));
    let pending = db.json(&["--tenant", "t1", "jobs", "list", "--status", "pending"]);
    assert_eq!(len(&pending), 2, "the retried job waits to run again: {pending}");
    let ids = strings(&pending, "id");
    let cancelled = db.json(&["jobs", "cancel", &ids[0], &ids[1]]);
    assert_eq!((cancelled["done"].as_u64(), cancelled["skipped"].as_u64()), (Some(2), Some(0)));
    db.fails(&["jobs", "cancel", "not-a-uuid"], 2);
    db.fails(&["jobs", "cancel"], 2);
    db.fails(&["jobs", "list", "--status", "sleepy"], 2);
    db.fails(&["jobs", "purge", "--before", "yesterday"], 2);
    assert_eq!(db.json(&["jobs", "purge", "--before", "2000-01-01"])["purged"], 0);
    let purged = db.json(&["jobs", "purge", "--before", "2999-12-31T00:00:00Z"]);
    assert_eq!(purged["purged"], 4, "two completed and two cancelled: {purged}");
    let left = db.json(&["jobs", "stats"]);
    assert_eq!((left["pending"].as_u64(), left["failed"].as_u64()), (Some(1), Some(1)), "{left}");
    let (code, table, _) = db.run(&["jobs", "list"], &[]);
    assert_eq!(code, 0);
    assert!(table.starts_with("ID") && table.contains("statement"), "{table}");

    // Sagas: three failed, t1-0 running, t1-1 completed.
    let sagas = db.json(&["sagas", "list"]);
    assert_eq!(len(&sagas), 5, "{sagas}");
    let running = db.json(&["sagas", "list", "--status", "running"]);
    assert_eq!(strings(&running, "saga_id"), ["t1-0"]);
    assert_eq!(len(&db.json(&["sagas", "list", "--status", "failed", "--type", "welcome"])), 3);
    assert_eq!(len(&db.json(&["--tenant", "t1", "sagas", "list"])), 2);
    db.fails(&["sagas", "list", "--status", "sleepy"], 2);
    let failed = db.json(&["sagas", "show", "acc-0"]);
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("mail server refused"), "{failed}");
    // Compensated while its compensation fails: it waits for an operator's retry.
    let forced = db.json_with(&["sagas", "compensate", "t1-0", "--reason", "closed"], &[("E2E_FAIL_RECALL", "1")]);
    assert_eq!(forced["status"], "failed");
    let commands = forced["commands"].as_array().unwrap();
    assert_eq!(commands.last().unwrap()["command_type"], "RecallWelcome");
    assert_eq!(commands.last().unwrap()["dispatched"], false);
    let retried = db.json(&["--tenant", "t1", "sagas", "retry", "t1-0", "--type", "welcome"]);
    assert_eq!(retried["status"], "compensated", "{retried}");
    assert_eq!(retried["commands"].as_array().unwrap().last().unwrap()["dispatched"], true);
    let (code, shown, _) = db.run(&["sagas", "show", "t1-0"], &[]);
    assert_eq!(code, 0);
    assert!(shown.contains("compensation RecallWelcome (sent)"), "{shown}");
    assert!(db.fails(&["sagas", "show", "nobody"], 3).contains("does not exist"));
    db.fails(&["--tenant", "t1", "sagas", "show", "acc-0"], 3);

    // The outbox: the refused audit died; retried, it waits again.
    let status = db.json(&["outbox", "status"]);
    assert_eq!((status["pending"].as_u64(), status["dead"].as_u64()), (Some(0), Some(1)), "{status}");
    let dead = db.json(&["outbox", "dead"]);
    assert_eq!(len(&dead), 1);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("audit log refused"), "{dead}");
    assert_eq!(dead[0]["payload"]["payload"]["amount"], 1, "the event as sent");
    assert_eq!(db.json(&["--tenant", "t1", "outbox", "dead"]), serde_json::json!([]));
    db.fails(&["outbox", "retry-dead", &uuid::Uuid::now_v7().to_string()], 3);
    assert_eq!(db.json(&["outbox", "retry-dead"])["retried"], 1);
    let status = db.json(&["outbox", "status"]);
    assert_eq!((status["pending"].as_u64(), status["dead"].as_u64()), (Some(1), Some(0)));

    // Projections: a refused deposit becomes a dead letter; retried once it is accepted.
    let list = db.json(&["projections", "list"]);
    assert_eq!(strings(&list, "name"), ["balances"]);
    assert!(list[0]["lag"].as_u64().unwrap() > 0);
    let caught = db.json_with(&["projections", "catch-up", "balances"], &[("E2E_REFUSE", "1")]);
    assert_eq!(caught["stopped"], false);
    assert_eq!(caught["lag"], 0);
    let letters = db.json(&["projections", "dead", "balances"]);
    assert_eq!(len(&letters), 2, "both deposits of 1: {letters}");
    assert!(letters[0]["error"].as_str().unwrap().contains("is refused"));
    assert_eq!(letters[0]["payload"]["amount"], 1);
    let (first, second) = (letters[0]["event_id"].as_str().unwrap(), letters[1]["event_id"].as_str().unwrap());
    let still = db.run(&["--json", "projections", "retry-dead", "balances", first], &[("E2E_REFUSE", "1")]);
    assert_eq!(still.0, 1, "a retry that fails again says so: {still:?}");
    assert_eq!(db.json(&["projections", "retry-dead", "balances", first])["retried"][0], first);
    assert_eq!(db.json(&["projections", "skip-dead", "balances", second])["skipped"], second);
    assert_eq!(db.json(&["projections", "dead", "balances"]), serde_json::json!([]));
    db.fails(&["projections", "skip-dead", "balances", second], 3);
    let status = db.json(&["projections", "status", "balances"]);
    assert_eq!((status["lag"].as_u64(), status["dead_letters"].as_u64()), (Some(0), Some(0)));
    let store = db.database().await.read_models();
    let one = store.document_of(None, "balances", "acc-1").await.unwrap().expect("the retried deposit");
    assert_eq!(one.json, "1");
    assert!(store.document_of(Some("t1"), "balances", "t1-1").await.unwrap().is_none(), "the skipped deposit");

    // Mistakes a script must be able to tell apart.
    assert!(db.fails(&["projections", "status", "nope"], 3).contains("nope"));
    db.fails(&["projections", "rebuild", "balances", "--partition", "3"], 3);
    db.fails(&["--tenant", "", "events", "tail"], 2);
    db.fails(&["projections"], 2);
    let mut no_url = db.command(&["tenants", "list"]);
    no_url.env_remove("DATABASE_URL");
    let out = no_url.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    let (code, _, err) = db.run(&["--database-url", "postgres://postgres@127.0.0.1:1/none", "tenants", "list"], &[]);
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = db.run(&["--json", "--database-url", "redis://127.0.0.1", "tenants", "list"], &[]);
    assert_eq!(code, 4);
    let err: Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "unavailable");
    db.cleanup().await;
}

/// The read model's total and the events up to its checkpoint agree.
async fn consistent(db: &Db) -> (u64, Cursor, u64) {
    let database = db.database().await;
    let checkpoint = database.read_models().checkpoint("balances", 0).await.unwrap().unwrap_or(Cursor::START);
    let docs = database.read_models().documents("balances").await.unwrap();
    let total: u64 = docs.iter().map(|d| d.json.parse::<u64>().unwrap()).sum();
    let mut expected = 0;
    let mut all = 0;
    let mut cursor = Cursor::START;
    loop {
        let page = database.event_store().read_all(cursor, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        for e in page.iter().filter(|e| e.event_type == "Deposited") {
            let amount = serde_json::from_str::<Value>(&e.payload).unwrap()["amount"].as_u64().unwrap();
            all += amount;
            if e.cursor() <= checkpoint {
                expected += amount;
            }
        }
    }
    assert_eq!(total, expected, "the read model holds exactly the events up to its checkpoint {checkpoint}");
    (total, checkpoint, all)
}

/// Sends SIGINT, as Ctrl-C does.
fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Reads standard error until a line contains `what` (bounded); the lines read.
fn wait_for_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let found = line.contains(what);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("the tool ended without printing `{what}`: {seen:?}")
}

/// A rebuild stopped by Ctrl-C stops after a batch with the read model at its
/// checkpoint; a catch-up resumes it to the end.
async fn rebuild_interrupted_and_resumed(db: Db) {
    db.seed("-", 2, 400, &[]);
    let (_, _, all) = consistent(&db).await;
    // A rebuild to the end first, and a partition's.
    let done = db.json(&["projections", "rebuild", "balances"]);
    assert_eq!((done["stopped"].as_bool(), done["lag"].as_u64()), (Some(false), Some(0)), "{done}");
    assert_eq!(consistent(&db).await.0, all);
    let partition = db.json(&["projections", "rebuild", "balances", "--partition", "0"]);
    assert_eq!(partition["stopped"], false);
    let docs = db.database().await.read_models().documents("balances").await.unwrap();
    let total: u64 = docs.iter().map(|d| d.json.parse::<u64>().unwrap()).sum();
    assert_eq!(total, all * 2, "a partition's events are applied over its documents as they are");

    // The deposit of 7777 waits at a gate: Ctrl-C lands before its batch ends.
    let gate = format!("{}/gate-{}", env!("CARGO_TARGET_TMPDIR"), uuid::Uuid::now_v7().simple());
    std::fs::write(&gate, b"closed").unwrap();
    let mut child = db
        .command(&["projections", "rebuild", "balances"])
        .env("E2E_GATE", &gate)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_line(&mut lines, "events read");
    interrupt(&child);
    wait_for_line(&mut lines, "stopping after the batch in flight");
    std::fs::remove_file(&gate).unwrap();
    let rest: Vec<String> = lines.map_while(std::io::Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("projections catch-up balances")), "{rest:?}");
    let (total, checkpoint, _) = consistent(&db).await;
    assert!(total < all && checkpoint.position > 0, "stopped midway: {total} of {all} at {checkpoint}");
    assert!(db.json(&["projections", "status", "balances"])["lag"].as_u64().unwrap() > 0);

    let resumed = db.json(&["projections", "catch-up", "balances"]);
    assert_eq!((resumed["stopped"].as_bool(), resumed["lag"].as_u64()), (Some(false), Some(0)), "{resumed}");
    assert_eq!(consistent(&db).await.0, all, "resumed to the end, nothing applied twice");
    db.cleanup().await;
}

/// `events tail --follow` prints what commits after it started, one JSON line each,
/// and ends on Ctrl-C with status 0.
async fn tail_follows(db: Db) {
    db.seed("-", 1, 0, &[]);
    let mut child = db
        .command(&["--json", "events", "tail", "-n", "1", "--follow", "--poll-ms", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["stream_id"], "acc-0");
    db.seed("t2", 2, 0, &[]);
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut followed = Vec::new();
    while followed.len() < 2 && Instant::now() < deadline {
        let line = lines.next().unwrap().unwrap();
        followed.push(serde_json::from_str::<Value>(&line).unwrap()["stream_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(followed, ["t2-0", "t2-1"]);
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_operated() {
    operate(Db::sqlite("operate")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_operated() {
    operate(Db::postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_operated() {
    operate(Db::mariadb().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_rebuild_interrupted_and_resumed() {
    rebuild_interrupted_and_resumed(Db::sqlite("rebuild")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_rebuild_interrupted_and_resumed() {
    rebuild_interrupted_and_resumed(Db::postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_rebuild_interrupted_and_resumed() {
    rebuild_interrupted_and_resumed(Db::mariadb().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_tail_follows() {
    tail_follows(Db::sqlite("tail")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tail_follows() {
    tail_follows(Db::postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_tail_follows() {
    tail_follows(Db::mariadb().await).await;
}
