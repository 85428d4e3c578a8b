//! Aggregate deadlines on every store: written into the schedule in the commit's
//! transaction (or not at all), fired once as a command on the aggregate, per tenant,
//! and still there for a fresh process after a restart.

use std::time::Duration;

use cqrs_ddd::deadline::deadline_id;
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{
    Clock, CommitBatch, DeadlineWrite, EventStore, SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore,
    ScheduledCommand, StreamAppend, StreamKey, TenantScope,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions, SchedulerReport};
use cqrs_ddd::testing::envelope;
use cqrs_ddd::{Mediator, RequestContext};
use uuid::Uuid;

use super::{TestDb, app, new_event};

#[allow(clippy::duration_suboptimal_units)] // `from_hours` is `const` only after the MSRV
const DAY: Duration = Duration::from_secs(86_400);

// ---- a library loan: remind at day 14, declare lost at day 30, both cancelled on return ----

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookLent {
    pub loan: String,
    pub member: String,
}
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookReturned {
    pub loan: String,
}
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoanReminded;
#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookLost;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemindLoan {
    pub member: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoseLoan;

#[derive(Debug, thiserror::Error)]
#[error("the book is not out")]
pub struct NotOut;

#[aggregate(id = String, events(BookLent, BookReturned, LoanReminded, BookLost), error = NotOut)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BookLoan {
    pub out: bool,
}

#[aggregate]
impl BookLoan {
    #[handle(create)]
    fn lend(&self, cmd: &LendBook, deadlines: &mut Deadlines<Self>) -> Result<Vec<BookLoanEvent>, NotOut> {
        deadlines.schedule(14 * DAY, RemindLoan { member: cmd.member.clone() });
        deadlines.schedule(30 * DAY, LoseLoan);
        Ok(vec![BookLent { loan: cmd.loan.clone(), member: cmd.member.clone() }.into()])
    }

    #[handle]
    fn give_back(&self, cmd: &ReturnBook, deadlines: &mut Deadlines<Self>) -> Result<Vec<BookLoanEvent>, NotOut> {
        if !self.out {
            return Err(NotOut);
        }
        deadlines.cancel::<RemindLoan>();
        deadlines.cancel::<LoseLoan>();
        Ok(vec![BookReturned { loan: cmd.loan.clone() }.into()])
    }

    #[deadline]
    fn remind(&self, _due: &RemindLoan) -> Result<Vec<BookLoanEvent>, NotOut> {
        Ok(vec![LoanReminded.into()])
    }

    #[deadline]
    fn lost(&self, _due: &LoseLoan) -> Result<Vec<BookLoanEvent>, NotOut> {
        Ok(vec![BookLost.into()])
    }

    #[apply]
    fn lent(&mut self, _: &BookLent) {
        self.out = true;
    }
    #[apply]
    fn returned(&mut self, _: &BookReturned) {
        self.out = false;
    }
    #[apply]
    fn reminded(&mut self, _: &LoanReminded) {}
    #[apply]
    fn lost_it(&mut self, _: &BookLost) {}
}

#[command(aggregate = BookLoan)]
pub struct LendBook {
    #[id]
    pub loan: String,
    pub member: String,
}
#[command(aggregate = BookLoan)]
pub struct ReturnBook {
    #[id]
    pub loan: String,
}

/// A loan id of this test run (databases are per test, the in-memory store is shared
/// by nothing else, but ids stay distinct anyway).
fn loan(name: &str) -> String {
    format!("{name}-{}", cqrs_ddd::new_id())
}

fn scheduler(app: &Mediator, worker: &str) -> Scheduler {
    Scheduler::with_options(app.clone(), SchedulerOptions { worker: worker.into(), ..SchedulerOptions::default() })
}

async fn event_types(app: &Mediator, loan: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let tenant = RequestContext::current().and_then(|r| r.tenant_id);
    let key = StreamKey::new("BookLoan", loan).with_tenant(tenant);
    let stream = app.event_store().read_stream(&key, 0).await.unwrap();
    stream.map_ok(|e| e.event_type).try_collect().await.unwrap()
}

fn deadline(id: Uuid, tenant: Option<&str>, scheduled_by: Uuid) -> ScheduledCommand {
    let now = chrono::Utc::now();
    ScheduledCommand {
        id,
        command_type: "cqrs_ddd.aggregate_deadline".into(),
        payload: r#"{"aggregate":"BookLoan","id":"x","name":"remind","due":{"member":"ada"}}"#.into(),
        due_at: now + chrono::Duration::days(14),
        metadata: Metadata {
            tenant_id: tenant.map(str::to_owned),
            causation_id: Some(scheduled_by),
            correlation_id: Some(cqrs_ddd::new_id()),
            ..Metadata::default()
        },
        attempts: 0,
        last_error: None,
        created_at: now,
    }
}

fn append(stream: &StreamKey, expected_version: u64) -> StreamAppend {
    StreamAppend {
        stream: stream.clone(),
        expected_version,
        events: vec![new_event("Opened", 1, serde_json::json!({"owner": "ada"}))],
    }
}

/// A batch's deadlines are written with its events, and read back as written.
pub async fn deadlines_are_written_with_the_events(db: &impl TestDb) {
    let store = db.store().await;
    let stream = StreamKey::new("Account", cqrs_ddd::new_id().to_string());
    let written = deadline(cqrs_ddd::new_id(), None, cqrs_ddd::new_id());
    let batch = CommitBatch {
        appends: vec![append(&stream, 0)],
        deadlines: vec![DeadlineWrite::Schedule(written.clone())],
        ..CommitBatch::default()
    };
    store.commit(batch).await.unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);
    let read = ScheduleStore::get(&store, None, written.id).await.unwrap().expect("the deadline is stored");
    assert_eq!(read.command_type, written.command_type);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&read.payload).unwrap()["name"], "remind");
    assert_eq!(read.due_at.timestamp_millis(), written.due_at.timestamp_millis());
    assert_eq!(read.metadata.causation_id, written.metadata.causation_id);
    assert_eq!(read.metadata.correlation_id, written.metadata.correlation_id);
}

/// A batch that conflicts writes none of its deadlines: a schedule is not stored, a
/// cancel leaves the deadline there.
pub async fn a_conflicting_batch_writes_no_deadline(db: &impl TestDb) {
    let store = db.store().await;
    let stream = StreamKey::new("Account", cqrs_ddd::new_id().to_string());
    let kept = deadline(cqrs_ddd::new_id(), None, cqrs_ddd::new_id());
    let first = CommitBatch {
        appends: vec![append(&stream, 0)],
        deadlines: vec![DeadlineWrite::Schedule(kept.clone())],
        ..CommitBatch::default()
    };
    store.commit(first).await.unwrap();
    let new = deadline(cqrs_ddd::new_id(), None, cqrs_ddd::new_id());
    let stale = CommitBatch {
        appends: vec![append(&stream, 0)],
        deadlines: vec![DeadlineWrite::Schedule(new.clone()), DeadlineWrite::Cancel { tenant_id: None, id: kept.id }],
        ..CommitBatch::default()
    };
    assert!(store.commit(stale).await.unwrap_err().is_conflict());
    assert!(ScheduleStore::get(&store, None, new.id).await.unwrap().is_none(), "not scheduled");
    assert!(ScheduleStore::get(&store, None, kept.id).await.unwrap().is_some(), "not cancelled");
}

/// Firing removes the deadline only as the command that scheduled it left it: a fire
/// after it was scheduled again (or cancelled) is refused with a conflict and writes
/// nothing, the batch's events included.
pub async fn a_fire_of_a_deadline_scheduled_again_is_refused(db: &impl TestDb) {
    let store = db.store().await;
    let id = cqrs_ddd::new_id();
    let (first, second) = (cqrs_ddd::new_id(), cqrs_ddd::new_id());
    ScheduleStore::schedule(&store, &deadline(id, None, second)).await.unwrap();
    let stream = StreamKey::new("Account", cqrs_ddd::new_id().to_string());
    let stale = CommitBatch {
        appends: vec![append(&stream, 0)],
        deadlines: vec![DeadlineWrite::Fire { tenant_id: None, id, scheduled_by: Some(first) }],
        ..CommitBatch::default()
    };
    assert!(store.commit(stale).await.unwrap_err().is_conflict());
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0, "the batch wrote nothing");
    assert!(ScheduleStore::get(&store, None, id).await.unwrap().is_some());

    let live = CommitBatch {
        appends: vec![append(&stream, 0)],
        deadlines: vec![DeadlineWrite::Fire { tenant_id: None, id, scheduled_by: Some(second) }],
        ..CommitBatch::default()
    };
    store.commit(live).await.unwrap();
    assert!(ScheduleStore::get(&store, None, id).await.unwrap().is_none(), "fired and removed");
    let again = CommitBatch {
        deadlines: vec![DeadlineWrite::Fire { tenant_id: None, id, scheduled_by: Some(second) }],
        ..CommitBatch::default()
    };
    assert!(store.commit(again).await.unwrap_err().is_conflict(), "a deadline fires once");
}

/// Deadline writes name a tenant's deadline: another tenant's with the same id stays.
pub async fn deadline_writes_are_per_tenant(db: &impl TestDb) {
    let store = db.store().await;
    let id = cqrs_ddd::new_id();
    let by = cqrs_ddd::new_id();
    for tenant in ["acme", "globex"] {
        let batch = CommitBatch {
            deadlines: vec![DeadlineWrite::Schedule(deadline(id, Some(tenant), by))],
            tenant_id: Some(tenant.into()),
            ..CommitBatch::default()
        };
        store.commit(batch).await.unwrap();
    }
    let cancel = CommitBatch {
        deadlines: vec![DeadlineWrite::Cancel { tenant_id: Some("globex".into()), id }],
        tenant_id: Some("globex".into()),
        ..CommitBatch::default()
    };
    store.commit(cancel).await.unwrap();
    assert!(ScheduleStore::get(&store, Some("globex"), id).await.unwrap().is_none());
    assert!(ScheduleStore::get(&store, Some("acme"), id).await.unwrap().is_some());
    let fire_other = CommitBatch {
        deadlines: vec![DeadlineWrite::Fire { tenant_id: Some("globex".into()), id, scheduled_by: Some(by) }],
        tenant_id: Some("globex".into()),
        ..CommitBatch::default()
    };
    assert!(store.commit(fire_other).await.unwrap_err().is_conflict(), "globex cannot fire acme's deadline");
    let empty = CommitBatch {
        deadlines: vec![DeadlineWrite::Cancel { tenant_id: Some(String::new()), id }],
        ..CommitBatch::default()
    };
    assert!(store.commit(empty).await.is_err(), "an empty tenant id is refused");
}

/// The library's loan through the application: lending schedules both deadlines, the
/// reminder fires at day 14 and the loss at day 30, each once; a returned book's
/// deadlines are cancelled and never fire.
pub async fn a_loans_deadlines_fire_once_or_are_cancelled(db: &impl TestDb) {
    let clock = ManualClock::default();
    let app = app(db.store().await).clock(clock.clone()).build().unwrap();
    let (kept, returned) = (loan("kept"), loan("returned"));
    for id in [&kept, &returned] {
        app.send(LendBook { loan: id.clone(), member: "ada".into() }).await.unwrap();
    }
    app.send(ReturnBook { loan: returned.clone() }).await.unwrap();
    let scheduled = app.schedule_store().scheduled(TenantScope::All, false, 100).await.unwrap();
    let mut ids: Vec<Uuid> = scheduled.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![deadline_id("BookLoan", &kept, "remind"), deadline_id("BookLoan", &kept, "lost")];
    expected.sort();
    assert_eq!(ids, expected, "the returned loan's deadlines are cancelled");

    let worker = scheduler(&app, "library");
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport::default(), "nothing is due yet");
    clock.advance(14 * DAY);
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport::default(), "a deadline fires once");
    assert_eq!(event_types(&app, &kept).await, ["BookLent", "LoanReminded"]);
    clock.advance(16 * DAY);
    assert_eq!(worker.run_once().await.unwrap().sent, 1);
    assert_eq!(event_types(&app, &kept).await, ["BookLent", "LoanReminded", "BookLost"]);
    assert_eq!(event_types(&app, &returned).await, ["BookLent", "BookReturned"]);
    assert!(app.schedule_store().scheduled(TenantScope::All, false, 100).await.unwrap().is_empty());
}

/// A tenant's loan schedules and fires its deadlines in its own scope; another tenant's
/// loan with the same id keeps its own.
pub async fn a_tenants_deadlines_are_its_own(db: &impl TestDb) {
    let clock = ManualClock::default();
    let app = app(db.store().await).clock(clock.clone()).build().unwrap();
    let id = loan("shared");
    let acme = RequestContext::new().with_tenant("acme");
    let globex = RequestContext::new().with_tenant("globex");
    acme.clone().scope(app.send(LendBook { loan: id.clone(), member: "ada".into() })).await.unwrap();
    globex.clone().scope(app.send(LendBook { loan: id.clone(), member: "bob".into() })).await.unwrap();
    globex.clone().scope(app.send(ReturnBook { loan: id.clone() })).await.unwrap();
    let globex_left = app.schedule_store().scheduled(TenantScope::Only(Some("globex")), false, 10).await.unwrap();
    assert!(globex_left.is_empty());
    assert_eq!(app.schedule_store().scheduled(TenantScope::Only(Some("acme")), false, 10).await.unwrap().len(), 2);
    clock.advance(14 * DAY);
    assert_eq!(scheduler(&app, "tenants").run_once().await.unwrap().sent, 1);
    assert_eq!(acme.scope(event_types(&app, &id)).await, ["BookLent", "LoanReminded"]);
    assert_eq!(globex.scope(event_types(&app, &id)).await, ["BookLent", "BookReturned"]);
}

/// A restart: one process lends a book and stops; a fresh one, built over the same
/// database, fires the deadline when the clock reaches it.
pub async fn a_deadline_scheduled_before_a_restart_fires_in_a_fresh_process(db: &impl TestDb) {
    let clock = ManualClock::default();
    let id = loan("restart");
    let before = app(db.store().await).clock(clock.clone()).build().unwrap();
    before.send(LendBook { loan: id.clone(), member: "ada".into() }).await.unwrap();
    drop(before);

    let after = app(db.store().await).clock(clock.clone()).build().unwrap();
    let worker = scheduler(&after, "after-restart");
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport::default(), "not due yet");
    clock.advance(14 * DAY);
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    assert_eq!(event_types(&after, &id).await, ["BookLent", "LoanReminded"]);
    let left = after.schedule_store().get(None, deadline_id("BookLoan", &id, "lost")).await.unwrap();
    assert_eq!(left.map(|c| c.due_at.timestamp_millis()), Some((Clock::now(&clock) + 16 * DAY).timestamp_millis()));
}

// ---- a saga's deadline: nag the member a week after the loan, unless the book is back ----

#[command]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NagMember {
    pub loan: String,
}

#[command_handler]
async fn nag_member(_cmd: NagMember) -> Result<()> {
    Ok(())
}

#[saga(name = "overdue_watch", associate = loan)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OverdueWatch {
    loan: String,
}

#[saga]
impl OverdueWatch {
    #[step(start, arm = nag)]
    fn lent(&mut self, e: &BookLent) {
        self.loan.clone_from(&e.loan);
    }

    #[step(complete)]
    fn returned(&mut self, _e: &BookReturned) {}

    #[deadline(after = "7d", send = NagMember)]
    fn nag(&mut self) -> NagMember {
        NagMember { loan: self.loan.clone() }
    }
}

fn record(key: &SagaKey, version: u64) -> SagaRecord {
    let now = chrono::Utc::now();
    SagaRecord {
        key: key.clone(),
        status: SagaStatus::Running,
        version,
        wake_at: None,
        data: "{}".into(),
        created_at: now,
        updated_at: now,
    }
}

/// A saga save writes its deadlines in its own transaction: a save that conflicts
/// schedules and cancels nothing.
pub async fn a_saga_save_writes_its_deadlines_or_none(db: &impl TestDb) {
    let store = db.store().await;
    let key = SagaKey::new("watch", cqrs_ddd::new_id().to_string());
    let first = deadline(cqrs_ddd::new_id(), None, cqrs_ddd::new_id());
    let saved = store.save_with_deadlines(&record(&key, 1), 0, &[DeadlineWrite::Schedule(first.clone())]).await;
    assert!(saved.unwrap(), "the store keeps the schedule");
    assert!(ScheduleStore::get(&store, None, first.id).await.unwrap().is_some());

    let second = deadline(cqrs_ddd::new_id(), None, cqrs_ddd::new_id());
    let stale = [DeadlineWrite::Schedule(second.clone()), DeadlineWrite::Cancel { tenant_id: None, id: first.id }];
    let err = store.save_with_deadlines(&record(&key, 1), 0, &stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(ScheduleStore::get(&store, None, second.id).await.unwrap().is_none(), "not scheduled");
    assert!(ScheduleStore::get(&store, None, first.id).await.unwrap().is_some(), "not cancelled");

    let fresh = [DeadlineWrite::Cancel { tenant_id: None, id: first.id }];
    assert!(store.save_with_deadlines(&record(&key, 2), 1, &fresh).await.unwrap());
    assert!(ScheduleStore::get(&store, None, first.id).await.unwrap().is_none());
    assert_eq!(SagaStore::load(&store, &key).await.unwrap().unwrap().version, 2);
}

/// A saga arms its deadline with the instance; a fresh process fires it when due, and a
/// saga that completes first takes its deadline with it.
pub async fn a_sagas_deadline_fires_after_a_restart_or_ends_with_it(db: &impl TestDb) {
    let clock = ManualClock::default();
    let (kept, returned) = (loan("kept"), loan("returned"));
    let before = app(db.store().await).clock(clock.clone()).build().unwrap();
    for id in [&kept, &returned] {
        let lent = envelope(BookLent { loan: id.clone(), member: "ada".into() });
        before.sagas().handle::<OverdueWatch, _>(&lent).await.unwrap();
    }
    before.sagas().handle::<OverdueWatch, _>(&envelope(BookReturned { loan: returned.clone() })).await.unwrap();
    let done = before.sagas().find::<OverdueWatch>(&returned).await.unwrap().unwrap();
    assert_eq!(done.status(), SagaStatus::Completed);
    assert_eq!(before.schedule_store().scheduled(TenantScope::All, false, 10).await.unwrap().len(), 1);
    drop(before);

    let after = app(db.store().await).clock(clock.clone()).build().unwrap();
    let worker = scheduler(&after, "saga-after-restart");
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport::default(), "not due yet");
    clock.advance(7 * DAY);
    assert_eq!(worker.run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    let watch = after.sagas().find::<OverdueWatch>(&kept).await.unwrap().unwrap();
    let sent: Vec<(&str, bool)> = watch.commands().iter().map(|c| (c.command_type.as_str(), c.dispatched)).collect();
    assert_eq!(sent, [("NagMember", true)]);
    assert!(watch.deadlines().is_empty());
    assert!(after.schedule_store().scheduled(TenantScope::All, false, 10).await.unwrap().is_empty());
}
