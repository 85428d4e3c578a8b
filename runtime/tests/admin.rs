//! Operators' listings and actions (`cqrs_ddd::admin`) on the in-memory stores: every
//! listing narrows to one tenant, lookups by id find the one tenant that has it, and
//! what is not there or could be several things is a typed error.

use cqrs_ddd::memory::MemoryStore;
use cqrs_ddd::prelude::*;
use cqrs_ddd::projection::WorkerOptions;
use cqrs_ddd::{MemoryProjectionStore, RequestContext};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, thiserror::Error, Serialize)]
enum Never {}

#[aggregate(id = String, events(Deposited), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, Never> {
        Ok(vec![Deposited { amount: c.amount }.into()])
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[command(aggregate = Account)]
#[derive(Serialize, Deserialize)]
struct Deposit {
    #[id]
    account: String,
    amount: u64,
}

struct Totals;

#[projection(name = "admin_totals")]
impl Totals {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        let amount = e.amount;
        tx.docs("admin_totals").update(&e.header.stream_id, |t: &mut u64| *t += amount).await?;
        Ok(())
    }
}

fn app() -> Mediator {
    let events = MemoryStore::new();
    App::builder()
        .event_store(events.clone())
        .read_models(MemoryProjectionStore::new())
        .projection(Totals)
        .projection_with(Totals, WorkerOptions { tenant: Some("a".into()), ..WorkerOptions::default() })
        .build()
        .unwrap()
}

async fn in_tenant<T>(tenant: &str, fut: impl std::future::Future<Output = T>) -> T {
    RequestContext::new().with_tenant(tenant).scope(fut).await
}

#[tokio::test]
async fn listings_narrow_to_a_tenant() {
    let app = app();
    in_tenant("b", app.send(Deposit { account: "x".into(), amount: 1 })).await.unwrap();
    in_tenant("a", app.send(Deposit { account: "x".into(), amount: 2 })).await.unwrap();
    app.send(Deposit { account: "y".into(), amount: 3 }).await.unwrap();
    let admin = app.admin();
    let only_a = app.admin().for_tenant(Some("a".into()));
    assert_eq!(only_a.tenant(), Some("a"));

    assert_eq!(admin.tenants().await.unwrap(), ["a", "b"]);
    assert_eq!(only_a.tenants().await.unwrap(), ["a"]);
    assert!(app.admin().for_tenant(Some("c".into())).tenants().await.unwrap().is_empty());

    let latest = admin.latest(10).await.unwrap();
    assert_eq!(latest.iter().map(|e| e.payload["amount"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(latest[0].tenant.as_deref(), Some("b"));
    assert_eq!(latest[2].cursor, "3");
    let a = only_a.latest(10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].tenant.as_deref(), Some("a"));
    assert_eq!(admin.events_after(latest[0].at(), 10).await.unwrap().len(), 2);
    assert!(only_a.events_after(a[0].at(), 10).await.unwrap().is_empty());

    assert_eq!(only_a.stream("Account", "x").await.unwrap()[0].payload["amount"], 2);
    assert_eq!(admin.stream("Account", "y").await.unwrap().len(), 1, "a stream of no tenant");
    assert!(matches!(admin.stream("Account", "x").await, Err(Error::Ambiguous { .. })), "x is in two tenants");
    assert!(matches!(admin.stream("Account", "z").await, Err(Error::Missing { .. })));
    in_tenant("b", app.send(Deposit { account: "w".into(), amount: 4 })).await.unwrap();
    assert_eq!(admin.stream("Account", "w").await.unwrap()[0].payload["amount"], 4, "the one tenant that has it");

    // Projections: the all-tenant worker, and tenant a's.
    let scopes: Vec<String> = admin.projections().await.unwrap().into_iter().map(|p| p.scope).collect();
    assert_eq!(admin.projection("admin_totals").unwrap().scope(), "admin_totals", "the exact scope first");
    assert_eq!(only_a.projection("admin_totals").unwrap().scope(), "admin_totals@a", "a's only worker");
    assert_eq!(scopes, ["admin_totals", "admin_totals@a"]);
    let mine = only_a.projections().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].scope.as_str(), mine[0].tenant.as_deref(), mine[0].lag), ("admin_totals@a", Some("a"), 4));
    let control = admin.projection("admin_totals@a").unwrap();
    let done = control.catch_up(|_| std::ops::ControlFlow::Continue(())).await.unwrap();
    assert_eq!((done.read, done.applied), (1, 1), "tenant a's worker reads a's events");
    assert!(matches!(control.skip_dead_letter(cqrs_ddd::new_id()).await, Err(Error::Missing { .. })));
    assert!(matches!(only_a.projection("admin_totals@b"), Err(Error::UnknownMessage { kind: "projection", .. })));
    assert!(matches!(admin.dead_letters("nope").await, Err(Error::UnknownMessage { .. })));
    assert!(admin.dead_letters("admin_totals").await.unwrap().is_empty());

    // The memory store keeps the outbox (nothing is staged without async handlers).
    assert_eq!(admin.outbox_counts().await.unwrap(), cqrs_ddd::ports::OutboxCounts::default());
    assert!(admin.outbox_dead().await.unwrap().is_empty());
    assert_eq!(admin.retry_outbox(&[]).await.unwrap(), 0);
    assert!(matches!(admin.retry_outbox(&[cqrs_ddd::new_id()]).await, Err(Error::Missing { .. })));
}

#[tokio::test]
async fn scheduled_commands_are_found_in_the_one_tenant_that_has_them() {
    let app = app();
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let id = cqrs_ddd::new_id();
    for tenant in ["a", "b"] {
        in_tenant(tenant, app.schedule_with_id(id, &Deposit { account: "x".into(), amount: 1 }, at)).await.unwrap();
    }
    let admin = app.admin();
    assert_eq!(admin.schedules(false, 10).await.unwrap().len(), 2);
    let b = app.admin().for_tenant(Some("b".into()));
    let listed = b.schedules(false, 10).await.unwrap();
    assert_eq!((listed.len(), listed[0].tenant.as_deref(), listed[0].dead), (1, Some("b"), false));
    assert_eq!(listed[0].payload["amount"], 1);
    assert!(admin.schedules(true, 10).await.unwrap().is_empty());

    let Err(Error::Ambiguous { candidates, .. }) = admin.cancel_schedule(id).await else {
        panic!("two tenants use the id")
    };
    assert_eq!(candidates, ["tenant a", "tenant b"]);
    b.cancel_schedule(id).await.unwrap();
    admin.cancel_schedule(id).await.unwrap();
    assert!(matches!(admin.cancel_schedule(id).await, Err(Error::Missing { .. })));
    assert!(admin.schedules(false, 10).await.unwrap().is_empty());
    // Sagas: none here, and a lookup says so.
    assert!(matches!(admin.saga(None, "o-1").await, Err(Error::Missing { .. })));
    assert!(admin.sagas(None, &[], 10).await.unwrap().is_empty());
}
