//! Tenancy has one meaning on every store: readers of all events see every tenant,
//! idempotency keys, documents and scheduled ids are per tenant, an empty tenant id is
//! refused, and a command cannot cross tenants outside a system scope.

use std::sync::Arc;

use cqrs_ddd::ports::{
    CommitBatch, Cursor, EventStore, ProjectionStore, ScheduleStore, ScheduledCommand, StreamAppend, StreamKey,
    TenantScope,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::ProjectionWorker;
use cqrs_ddd::{RequestContext, TenantError};
use uuid::Uuid;

use super::domain::*;
use super::projections::{Balance, Balances};
use super::{TestDb, app, new_event, visible};

fn is_empty_tenant(e: &Error) -> bool {
    matches!(e, Error::Tenant(TenantError::Empty))
}

async fn in_tenant<F: std::future::Future>(tenant: &str, fut: F) -> F::Output {
    RequestContext::new().with_tenant(tenant).scope(fut).await
}

/// Readers of all events see every tenant, whatever scope they run in; a reader of one
/// tenant asks for it; loads stay inside the tenant of the scope.
pub async fn readers_of_all_events_see_every_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for tenant in ["t1", "t2"] {
        in_tenant(tenant, async { app.send(Open { account: "same".into(), owner: tenant.into() }).await.unwrap() })
            .await;
    }
    app.send(Open { account: "same".into(), owner: "nobody".into() }).await.unwrap();
    visible(&store, 3).await;
    let in_scope = in_tenant("t1", store.read_all(Cursor::START, 100)).await.unwrap();
    assert_eq!(in_scope.len(), 3, "read_all inside a tenant scope still reads every tenant");
    let t1 = store.read_tenant(Some("t1"), Cursor::START, 100).await.unwrap();
    assert_eq!(t1.iter().map(|e| e.stream.tenant_id.as_deref()).collect::<Vec<_>>(), [Some("t1")]);
    let untenanted = store.read_tenant(None, Cursor::START, 100).await.unwrap();
    assert_eq!(untenanted.len(), 1);
    assert_eq!(untenanted[0].stream.tenant_id, None);
    let owner = in_tenant("t2", async { app.load::<Account>(&"same".to_owned()).await.unwrap().state.owner }).await;
    assert_eq!(owner, "t2");
}

/// Tenant B may use an idempotency key tenant A used; each tenant gets it once.
pub async fn idempotency_keys_are_per_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for tenant in ["t1", "t2"] {
        in_tenant(tenant, app.send(Open { account: "a".into(), owner: tenant.into() })).await.unwrap();
    }
    let key = cqrs_ddd::new_id();
    let send = |tenant: &'static str| {
        let app = app.clone();
        let meta = Metadata { tenant_id: Some(tenant.to_owned()), ..Metadata::default() };
        async move { app.send_idempotent(Deposit { account: "a".into(), amount: 1 }, key, Some(meta)).await }
    };
    send("t1").await.unwrap();
    send("t2").await.unwrap();
    assert!(matches!(send("t1").await, Err(Error::AlreadyProcessed { .. })));
    assert!(matches!(send("t2").await, Err(Error::AlreadyProcessed { .. })));
    for tenant in ["t1", "t2"] {
        let stream = StreamKey::new("Account", "a").with_tenant(Some(tenant.to_owned()));
        assert_eq!(store.stream_version(&stream).await.unwrap(), 2, "{tenant}: one deposit applied");
    }
}

/// `Some("")` is refused by every port instead of meaning "no tenant" on some stores.
pub async fn an_empty_tenant_id_is_refused_everywhere<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    let empty = StreamKey::new("Account", "a").with_tenant(Some(String::new()));
    let batch = CommitBatch {
        appends: vec![StreamAppend {
            stream: empty.clone(),
            expected_version: 0,
            events: vec![new_event("Opened", 1, serde_json::json!({"owner": "x"}))],
        }],
        ..CommitBatch::default()
    };
    assert!(is_empty_tenant(&store.commit(batch).await.unwrap_err()));
    assert!(is_empty_tenant(&store.stream_version(&empty).await.unwrap_err()));
    assert!(is_empty_tenant(&store.read_stream(&empty, 0).await.err().unwrap()));
    assert!(is_empty_tenant(&store.read_tenant(Some(""), Cursor::START, 10).await.unwrap_err()));
    assert!(is_empty_tenant(&store.document_of(Some(""), "balances", "a").await.unwrap_err()));
    let scheduled = ScheduledCommand {
        id: cqrs_ddd::new_id(),
        command_type: "Open".into(),
        payload: "{}".into(),
        due_at: chrono::Utc::now(),
        metadata: Metadata { tenant_id: Some(String::new()), ..Metadata::default() },
        attempts: 0,
        last_error: None,
        created_at: chrono::Utc::now(),
    };
    assert!(is_empty_tenant(&store.schedule(&scheduled).await.unwrap_err()));
    let meta = Metadata { tenant_id: Some(String::new()), ..Metadata::default() };
    let err = app.send_with(Open { account: "a".into(), owner: "x".into() }, Some(meta)).await.unwrap_err();
    assert!(is_empty_tenant(&err), "{err}");
    let err = in_tenant("", app.send(Open { account: "a".into(), owner: "x".into() })).await.unwrap_err();
    assert!(is_empty_tenant(&err), "{err}");
    assert_eq!(store.read_all(Cursor::START, 10).await.unwrap().len(), 0, "nothing was written");
}

/// Inside tenant A's scope a command naming tenant B is refused; a system scope may
/// name any tenant.
pub async fn commands_cannot_cross_tenants_outside_a_system_scope<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    let to_b = || Some(Metadata { tenant_id: Some("b".to_owned()), ..Metadata::default() });
    let err = in_tenant("a", app.send_with(Open { account: "x".into(), owner: "o".into() }, to_b())).await.unwrap_err();
    assert!(
        matches!(&err, Error::Tenant(TenantError::CrossTenant { scope, named }) if scope == "a" && named == "b"),
        "{err}"
    );
    assert_eq!(store.stream_version(&StreamKey::new("Account", "x").with_tenant(Some("b".into()))).await.unwrap(), 0);
    // The same tenant named again is fine; so is a system scope naming any tenant.
    let to_a = Some(Metadata { tenant_id: Some("a".to_owned()), ..Metadata::default() });
    in_tenant("a", app.send_with(Open { account: "x".into(), owner: "o".into() }, to_a)).await.unwrap();
    RequestContext::system()
        .scope(app.send_with(Open { account: "x".into(), owner: "o".into() }, to_b()))
        .await
        .unwrap();
    assert_eq!(store.stream_version(&StreamKey::new("Account", "x").with_tenant(Some("b".into()))).await.unwrap(), 1);
}

/// A projection writes each event's documents under that event's tenant: two tenants'
/// accounts with one id never overwrite each other, and a tenant scope reads its own.
pub async fn documents_are_kept_per_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for (tenant, amount) in [("t1", 10), ("t2", 20)] {
        in_tenant(tenant, async {
            app.send(Open { account: "acc".into(), owner: tenant.into() }).await.unwrap();
            app.send(Deposit { account: "acc".into(), amount }).await.unwrap();
        })
        .await;
    }
    app.send(Open { account: "acc".into(), owner: "plain".into() }).await.unwrap();
    visible(&store, 5).await;
    let worker = ProjectionWorker::new(Balances, Arc::new(store.clone()), Arc::new(store.clone()));
    // Run inside a tenant scope on purpose: the worker still reads every tenant.
    assert_eq!(in_tenant("t1", worker.catch_up()).await.unwrap(), 5);
    let read =
        |doc: Option<cqrs_ddd::ports::Document>| -> Balance { serde_json::from_str(&doc.unwrap().json).unwrap() };
    let t1 = read(in_tenant("t1", store.document("balances", "acc")).await.unwrap());
    let t2 = read(in_tenant("t2", store.document("balances", "acc")).await.unwrap());
    let plain = read(store.document("balances", "acc").await.unwrap());
    assert_eq!((t1.owner.as_str(), t1.balance), ("t1", 10));
    assert_eq!((t2.owner.as_str(), t2.balance), ("t2", 20));
    assert_eq!((plain.owner.as_str(), plain.balance), ("plain", 0));
    assert_eq!(in_tenant("t2", store.documents("balances")).await.unwrap().len(), 1);
    assert_eq!(store.documents_of(Some("t1"), "balances").await.unwrap().len(), 1);
}

/// Tenant B may schedule under an id tenant A uses; each cancels only its own.
pub async fn scheduled_ids_are_per_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let id = cqrs_ddd::new_id();
    let scheduled = |tenant: &str| ScheduledCommand {
        id,
        command_type: format!("for-{tenant}"),
        payload: "{}".into(),
        due_at: chrono::Utc::now(),
        metadata: Metadata { tenant_id: Some(tenant.to_owned()), ..Metadata::default() },
        attempts: 0,
        last_error: None,
        created_at: chrono::Utc::now(),
    };
    store.schedule(&scheduled("a")).await.unwrap();
    store.schedule(&scheduled("b")).await.unwrap();
    assert_eq!(store.get(Some("a"), id).await.unwrap().unwrap().command_type, "for-a");
    assert_eq!(store.get(Some("b"), id).await.unwrap().unwrap().command_type, "for-b");
    assert!(store.get(None, id).await.unwrap().is_none());
    assert!(store.cancel(Some("a"), id).await.unwrap());
    assert!(store.get(Some("a"), id).await.unwrap().is_none());
    assert_eq!(store.get(Some("b"), id).await.unwrap().unwrap().command_type, "for-b");
}

/// What operators list (the newest events, the tenants, scheduled commands) covers one
/// tenant or all of them, and a tail read on from the newest events misses nothing.
pub async fn operators_list_one_tenant_or_all<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    assert_eq!(store.tenants().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.latest(TenantScope::All, 10).await.unwrap(), []);
    for (tenant, account) in [("t2", "a"), ("t1", "b"), ("t2", "c")] {
        in_tenant(tenant, app.send(Open { account: account.into(), owner: tenant.into() })).await.unwrap();
    }
    app.send(Open { account: "d".into(), owner: "nobody".into() }).await.unwrap();
    visible(&store, 4).await;
    assert_eq!(store.tenants().await.unwrap(), ["t1", "t2"]);
    let ids =
        |events: Vec<cqrs_ddd::ports::StoredEvent>| events.into_iter().map(|e| e.stream.stream_id).collect::<Vec<_>>();
    assert_eq!(ids(store.latest(TenantScope::All, 10).await.unwrap()), ["a", "b", "c", "d"]);
    assert_eq!(ids(store.latest(TenantScope::All, 2).await.unwrap()), ["c", "d"], "the newest, oldest first");
    assert_eq!(ids(store.latest(TenantScope::Only(Some("t2")), 10).await.unwrap()), ["a", "c"]);
    assert_eq!(ids(store.latest(TenantScope::Only(None), 10).await.unwrap()), ["d"]);
    assert_eq!(store.latest(TenantScope::All, 0).await.unwrap(), []);
    assert!(store.latest(TenantScope::Only(Some("")), 1).await.is_err(), "an empty tenant id is refused");
    // A tail goes on with `read_all` after the newest it showed.
    let newest = store.latest(TenantScope::All, 1).await.unwrap();
    in_tenant("t1", app.send(Open { account: "e".into(), owner: "t1".into() })).await.unwrap();
    visible(&store, 5).await;
    assert_eq!(ids(store.read_all(newest[0].cursor(), 10).await.unwrap()), ["e"]);

    let at = chrono::Utc::now();
    let scheduled = |tenant: Option<&str>, minutes: i64| ScheduledCommand {
        id: cqrs_ddd::new_id(),
        command_type: format!("for-{}", tenant.unwrap_or("none")),
        payload: "{}".into(),
        due_at: at + chrono::Duration::minutes(minutes),
        metadata: Metadata { tenant_id: tenant.map(str::to_owned), ..Metadata::default() },
        attempts: 0,
        last_error: None,
        created_at: at,
    };
    let (a1, a2, b, none) =
        (scheduled(Some("a"), 2), scheduled(Some("a"), 1), scheduled(Some("b"), 3), scheduled(None, 4));
    for c in [&a1, &a2, &b, &none] {
        store.schedule(c).await.unwrap();
    }
    store.mark_dead(Some("a"), a1.id, "refused").await.unwrap();
    let listed = |scope, dead| {
        let store = store.clone();
        async move { store.scheduled(scope, dead, 10).await.unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>() }
    };
    assert_eq!(listed(TenantScope::All, false).await, [a2.id, b.id, none.id], "earliest due first");
    assert_eq!(listed(TenantScope::Only(Some("a")), false).await, [a2.id]);
    assert_eq!(listed(TenantScope::Only(Some("a")), true).await, [a1.id]);
    assert_eq!(listed(TenantScope::Only(Some("b")), true).await, Vec::<Uuid>::new());
    assert_eq!(listed(TenantScope::Only(None), false).await, [none.id]);
    assert_eq!(store.scheduled(TenantScope::All, false, 1).await.unwrap().len(), 1);
}

/// One step of a random two-tenant interleaving.
#[derive(Debug, Clone)]
enum Op {
    Open { tenant: usize, account: usize },
    Deposit { tenant: usize, account: usize, amount: u64 },
    Idempotent { tenant: usize, account: usize, key: usize },
    Schedule { tenant: usize, id: usize, label: u8 },
    Cancel { tenant: usize, id: usize },
    Cross { scope: usize, named: usize, account: usize },
}

fn random_ops(rng: &mut impl rand::Rng, n: usize) -> Vec<Op> {
    (0..n)
        .map(|_| {
            let (tenant, account) = (rng.random_range(0..2), rng.random_range(0..3));
            match rng.random_range(0..6) {
                0 => Op::Open { tenant, account },
                1 => Op::Deposit { tenant, account, amount: rng.random_range(1..100) },
                2 => Op::Idempotent { tenant, account, key: rng.random_range(0..3) },
                3 => Op::Schedule { tenant, id: rng.random_range(0..3), label: rng.random_range(0..4) },
                4 => Op::Cancel { tenant, id: rng.random_range(0..3) },
                _ => Op::Cross { scope: tenant, named: 1 - tenant, account },
            }
        })
        .collect()
}

/// Runs `ops` for tenants `tenants` on `store` and describes everything a tenant can
/// observe: each step's outcome, then each tenant's events, stream versions and
/// scheduled commands. Positions and times are left out (they differ by backend).
async fn observe<S>(store: S, tenants: &[String; 2], ops: &[Op], keys: &[Uuid; 3], ids: &[Uuid; 3]) -> Vec<String>
where
    S: EventStore + cqrs_ddd::ports::SagaStore + ScheduleStore + Clone,
{
    let app = app(store.clone()).build().unwrap();
    let mut seen = Vec::new();
    for op in ops {
        let outcome = match op.clone() {
            Op::Open { tenant, account } => {
                in_tenant(&tenants[tenant], app.send(Open { account: format!("acc-{account}"), owner: "o".into() }))
                    .await
            }
            Op::Deposit { tenant, account, amount } => {
                in_tenant(&tenants[tenant], app.send(Deposit { account: format!("acc-{account}"), amount })).await
            }
            Op::Idempotent { tenant, account, key } => {
                let meta = Metadata { tenant_id: Some(tenants[tenant].clone()), ..Metadata::default() };
                let cmd = Deposit { account: format!("acc-{account}"), amount: 1000 };
                app.send_idempotent(cmd, keys[key], Some(meta)).await
            }
            Op::Schedule { tenant, id, label } => store
                .schedule(&ScheduledCommand {
                    id: ids[id],
                    command_type: format!("label-{label}"),
                    payload: "{}".into(),
                    due_at: chrono::DateTime::from_timestamp_millis(4_000_000_000_000).unwrap(),
                    metadata: Metadata { tenant_id: Some(tenants[tenant].clone()), ..Metadata::default() },
                    attempts: 0,
                    last_error: None,
                    created_at: chrono::DateTime::from_timestamp_millis(1_000_000_000_000).unwrap(),
                })
                .await
                .map(drop),
            Op::Cancel { tenant, id } => store.cancel(Some(&tenants[tenant]), ids[id]).await.map(drop),
            Op::Cross { scope, named, account } => {
                let meta = Metadata { tenant_id: Some(tenants[named].clone()), ..Metadata::default() };
                let cmd = Deposit { account: format!("acc-{account}"), amount: 7 };
                in_tenant(&tenants[scope], app.send_with(cmd, Some(meta))).await
            }
        };
        seen.push(match outcome {
            Ok(()) => format!("{op:?}: ok"),
            Err(e) => format!("{op:?}: {}", error_kind(&e)),
        });
    }
    for (i, tenant) in tenants.iter().enumerate() {
        let mut total = 0;
        for account in 0..3 {
            let key = StreamKey::new("Account", format!("acc-{account}")).with_tenant(Some(tenant.clone()));
            let version = store.stream_version(&key).await.unwrap();
            total += version;
            seen.push(format!("tenant {i}: acc-{account} at {version}"));
        }
        // Stream versions are read directly; readers of all events see a commit once
        // the gap-safe horizon passes it: wait (bounded) until they see all of them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let events = loop {
            let mut events = Vec::new();
            let mut cursor = Cursor::START;
            loop {
                let page = store.read_tenant(Some(tenant), cursor, 50).await.unwrap();
                let Some(last) = page.last() else { break };
                cursor = last.cursor();
                events.extend(page);
            }
            if events.len() as u64 >= total || std::time::Instant::now() > deadline {
                break events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        for e in &events {
            seen.push(format!("tenant {i}: {} v{} {} {}", e.stream.stream_id, e.version, e.event_type, e.payload));
        }
        for (n, id) in ids.iter().enumerate() {
            let got = store.get(Some(tenant), *id).await.unwrap().map(|c| c.command_type);
            seen.push(format!("tenant {i}: scheduled {n} = {got:?}"));
        }
    }
    seen
}

fn error_kind(e: &Error) -> String {
    match e {
        Error::AlreadyExists { .. } => "already exists".into(),
        Error::NotFound { .. } => "not found".into(),
        Error::AlreadyProcessed { .. } => "already processed".into(),
        Error::Tenant(t) => format!("tenant: {t}"),
        other => format!("unexpected: {other}"),
    }
}

/// Random interleavings of two tenants' commands, idempotent sends, schedules and
/// cross-tenant attempts give exactly what the in-memory stores give: the same outcome
/// for every step, the same events, versions and scheduled commands per tenant.
pub async fn random_two_tenant_interleavings_agree_with_memory<D: TestDb>(db: &D, cases: u64, steps: usize) {
    use rand::SeedableRng;
    for case in 0..cases {
        let seed = 0x7e4a_0000 + case;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ops = random_ops(&mut rng, steps);
        let run = cqrs_ddd::new_id().simple().to_string();
        let tenants = [format!("a-{run}"), format!("b-{run}")];
        let keys = [cqrs_ddd::new_id(), cqrs_ddd::new_id(), cqrs_ddd::new_id()];
        let ids = [cqrs_ddd::new_id(), cqrs_ddd::new_id(), cqrs_ddd::new_id()];
        let expected = observe(super::mem::Mem::default(), &tenants, &ops, &keys, &ids).await;
        let actual = observe(db.store().await, &tenants, &ops, &keys, &ids).await;
        assert!(!expected.iter().any(|l| l.contains("unexpected")), "seed {seed:#x}: {expected:#?}");
        for (n, (e, a)) in expected.iter().zip(&actual).enumerate() {
            assert_eq!(a, e, "seed {seed:#x}, line {n}: the backend disagrees with memory");
        }
        assert_eq!(actual.len(), expected.len(), "seed {seed:#x}");
    }
}

/// A worker of one tenant reads only that tenant's events and keeps a checkpoint of its
/// own: it never moves the checkpoint of the worker that reads every tenant (which
/// would skip the other tenants' events for ever).
pub async fn a_worker_of_one_tenant_keeps_its_own_checkpoint<D: TestDb>(db: &D) {
    use cqrs_ddd::projection::WorkerOptions;
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    for tenant in ["t1", "t2"] {
        in_tenant(tenant, async {
            app.send(Open { account: "acc".into(), owner: tenant.into() }).await.unwrap();
            app.send(Deposit { account: "acc".into(), amount: 1 }).await.unwrap();
        })
        .await;
    }
    app.send(Open { account: "acc".into(), owner: "plain".into() }).await.unwrap();
    visible(&store, 5).await;
    let worker = |tenant: Option<&str>| {
        ProjectionWorker::new(Balances, Arc::new(store.clone()), Arc::new(store.clone()))
            .with_options(WorkerOptions { tenant: tenant.map(str::to_owned), ..WorkerOptions::default() })
    };
    let t1 = worker(Some("t1"));
    assert_eq!(t1.scope(), "balances@t1");
    assert_eq!(t1.catch_up().await.unwrap(), 2, "only t1's events");
    assert_eq!(t1.catch_up().await.unwrap(), 0);
    assert!(store.checkpoint("balances@t1", 0).await.unwrap().is_some());
    assert_eq!(store.checkpoint("balances", 0).await.unwrap(), None, "the all-tenant checkpoint did not move");
    assert_eq!(worker(None).catch_up().await.unwrap(), 5, "the all-tenant worker still sees every event");
    assert_eq!(worker(Some("t2")).catch_up().await.unwrap(), 2);
}

/// Specifications find and count documents of the tenant in scope only, with the same
/// order, page, selection and NULL semantics on every store.
pub async fn documents_are_found_and_counted_by_specification_per_tenant<D: TestDb>(db: &D) {
    use cqrs_ddd::spec::{Dir, Op, QueryOptions, Spec};
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    let books = [
        ("t1", "b1", r#"{"title": "Odyssey", "status": "available", "copies": 2}"#),
        ("t1", "b2", r#"{"title": "Iliad", "status": "lent", "copies": 1}"#),
        ("t1", "b3", r#"{"title": "Antigone", "status": "available", "copies": 5}"#),
        ("t1", "b4", r#"{"title": "Medea", "status": null}"#),
        ("t2", "b1", r#"{"title": "Aeneid", "status": "available", "copies": 9}"#),
    ];
    for (tenant, id, json) in books {
        tx.put_doc(Some(tenant), "books", id, json.to_owned()).await.unwrap();
    }
    tx.commit().await.unwrap();

    let available = QueryOptions::new().filter(Spec::leaf("status", Op::Eq, "available")).order_by("title", Dir::Asc);
    let found = in_tenant("t1", store.find("books", &available)).await.unwrap();
    assert_eq!(found.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["b3", "b1"]);
    assert_eq!(in_tenant("t1", store.count("books", &available)).await.unwrap(), 2);
    assert_eq!(in_tenant("t2", store.count("books", &available)).await.unwrap(), 1);
    assert_eq!(store.count_of(Some("t2"), "books", &available).await.unwrap(), 1);

    // `!=` does not match a null status, and neither does its negation.
    let not_lent = QueryOptions::new().filter(Spec::leaf("status", Op::Ne, "lent"));
    assert_eq!(store.count_of(Some("t1"), "books", &not_lent).await.unwrap(), 2);
    let lent = QueryOptions::new().filter(!Spec::leaf("status", Op::Ne, "lent"));
    assert_eq!(store.count_of(Some("t1"), "books", &lent).await.unwrap(), 1);

    let page = QueryOptions::new().order_by("copies", Dir::Desc).page(2, 1).select(["title"]);
    let found = store.find_of(Some("t1"), "books", &page).await.unwrap();
    let titles: Vec<serde_json::Value> = found.iter().map(|d| serde_json::from_str(&d.json).unwrap()).collect();
    assert_eq!(titles, [serde_json::json!({"title": "Antigone"}), serde_json::json!({"title": "Odyssey"})]);

    let bad = QueryOptions::new().filter(Spec::leaf("copies", Op::Between, 3));
    assert!(matches!(store.count_of(Some("t1"), "books", &bad).await, Err(Error::Spec(_))));
}
