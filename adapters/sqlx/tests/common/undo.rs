//! Undo and redo have one meaning on every store: the undo log is written in the commit
//! of the command it sent, unique per tenant, event, generation and action; events are
//! found by id within their tenant.

use chrono::{DateTime, Utc};
use cqrs_ddd::RequestContext;
use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{
    CommitBatch, Cursor, EventStore, StoredEvent, StreamAppend, StreamKey, TenantScope, UndoAction, UndoLogEntry,
};
use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::{Redo, Undo, UndoError, headers, undo_key};
use uuid::Uuid;

use super::{TestDb, app, new_event, visible};

#[event(name = "membership.granted", undo = RevokeRole, redo = GrantRole)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleGranted {
    pub role: String,
}

#[event(name = "membership.revoked")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRevoked {
    pub role: String,
}

impl Undo for RoleGranted {
    type Command = RevokeRole;
    fn undo(e: &Envelope<Self>) -> Option<RevokeRole> {
        Some(RevokeRole { member: e.header.stream_id.clone(), role: e.role.clone() })
    }
}

impl Redo for RoleGranted {
    type Command = GrantRole;
    fn redo(e: &Envelope<Self>) -> Option<GrantRole> {
        Some(GrantRole { member: e.header.stream_id.clone(), role: e.role.clone() })
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MembershipError {
    #[error("`{0}` is not held")]
    NotHeld(String),
}

#[aggregate(id = String, events(RoleGranted, RoleRevoked), error = MembershipError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Membership {
    pub roles: Vec<String>,
}

#[aggregate]
impl Membership {
    #[handle(create_if_missing)]
    fn grant(&self, cmd: &GrantRole) -> Result<Vec<MembershipEvent>, MembershipError> {
        Ok(vec![RoleGranted { role: cmd.role.clone() }.into()])
    }
    #[handle]
    fn revoke(&self, cmd: &RevokeRole) -> Result<Vec<MembershipEvent>, MembershipError> {
        if !self.roles.contains(&cmd.role) {
            return Err(MembershipError::NotHeld(cmd.role.clone()));
        }
        Ok(vec![RoleRevoked { role: cmd.role.clone() }.into()])
    }
    #[apply]
    fn granted(&mut self, e: &RoleGranted) {
        self.roles.push(e.role.clone());
    }
    #[apply]
    fn revoked(&mut self, e: &RoleRevoked) {
        self.roles.retain(|r| *r != e.role);
    }
}

#[command(aggregate = Membership)]
pub struct GrantRole {
    #[id]
    pub member: String,
    pub role: String,
}

#[command(aggregate = Membership)]
pub struct RevokeRole {
    #[id]
    pub member: String,
    pub role: String,
}

/// A time every store keeps exactly (milliseconds).
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn grant(member: &str, role: &str) -> GrantRole {
    GrantRole { member: member.into(), role: role.into() }
}

/// The newest event of the current tenant, once readers see `n` events.
async fn last_event(store: &impl EventStore, n: usize) -> StoredEvent {
    visible(store, n).await;
    let tenant = RequestContext::current().and_then(|r| r.tenant_id);
    store.latest(TenantScope::Only(tenant.as_deref()), 1).await.unwrap().pop().expect("an event")
}

async fn in_tenant<F: std::future::Future>(tenant: &str, fut: F) -> F::Output {
    RequestContext::new().with_tenant(tenant).scope(fut).await
}

/// Undo, a refused second undo, redo, a second undo: the log reads back as written, the
/// event by id as `read_all` has it.
pub async fn undo_and_redo_are_logged_and_read_back<D: TestDb>(db: &D) {
    let store = db.store().await;
    let clock = ManualClock::new(at(1_900_000_000_123));
    let app = app(store.clone()).clock(clock.clone()).build().unwrap();
    app.send(grant("m", "admin")).await.unwrap();
    let granted = last_event(&store, 1).await;
    let all = store.read_all(Cursor::START, 10).await.unwrap();
    assert_eq!(store.event(None, granted.event_id).await.unwrap().as_ref(), all.first());
    assert_eq!(store.event(None, Uuid::now_v7()).await.unwrap(), None);

    let undone = app.undo(granted.event_id).await.unwrap();
    let again = app.undo(granted.event_id).await.unwrap_err();
    assert!(matches!(again, Error::Undo(UndoError::AlreadyUndone { generation: 1, .. })), "{again}");
    clock.advance(std::time::Duration::from_millis(5));
    let redone = app.redo(granted.event_id).await.unwrap();
    clock.advance(std::time::Duration::from_millis(5));
    let second = app.undo(granted.event_id).await.unwrap();

    let entry = |generation, action, command: &str, key, ms| UndoLogEntry {
        event_id: granted.event_id,
        stream: StreamKey::new("Membership", "m"),
        event_type: "membership.granted".to_owned(),
        generation,
        action,
        command_type: command.to_owned(),
        command_key: key,
        recorded_at: at(ms),
    };
    let expected = vec![
        entry(1, UndoAction::Undo, "RevokeRole", undone.key, 1_900_000_000_123),
        entry(1, UndoAction::Redo, "GrantRole", redone.key, 1_900_000_000_128),
        entry(2, UndoAction::Undo, "RevokeRole", second.key, 1_900_000_000_133),
    ];
    assert_eq!(app.undo_log(granted.event_id).await.unwrap(), expected);
    assert_eq!(store.undo_log_of_stream(&StreamKey::new("Membership", "m")).await.unwrap(), expected);
    assert_eq!(second.key, undo_key(granted.event_id, UndoAction::Undo, 2));
    let revoked = last_event(&store, 4).await;
    assert_eq!(revoked.event_type, "membership.revoked");
    let said = |h: &str| revoked.metadata.headers.get(h).cloned();
    assert_eq!(said(headers::UNDO_OF), Some(granted.event_id.to_string()));
    assert_eq!(said(headers::UNDO_GENERATION).as_deref(), Some("2"));
    assert!(app.load::<Membership>(&"m".to_owned()).await.unwrap().state.roles.is_empty());
    assert_eq!(store.stream_version(&StreamKey::new("Membership", "m")).await.unwrap(), 4);
}

/// An event and its undo log are seen only in their tenant.
pub async fn undo_is_kept_per_tenant<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    let granted = in_tenant("t1", async {
        app.send(grant("m", "admin")).await.unwrap();
        last_event(&store, 1).await
    })
    .await;
    assert_eq!(store.event(Some("t2"), granted.event_id).await.unwrap(), None);
    assert_eq!(store.event(None, granted.event_id).await.unwrap(), None);
    assert_eq!(store.event(Some("t1"), granted.event_id).await.unwrap().map(|e| e.event_id), Some(granted.event_id));

    let err = in_tenant("t2", app.undo(granted.event_id)).await.unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err}");
    in_tenant("t1", app.undo(granted.event_id)).await.unwrap();

    assert_eq!(in_tenant("t1", app.undo_log(granted.event_id)).await.unwrap().len(), 1);
    assert_eq!(in_tenant("t2", app.undo_log(granted.event_id)).await.unwrap(), []);
    assert_eq!(store.undo_log(None, granted.event_id).await.unwrap(), []);
    let t1 = StreamKey::new("Membership", "m").with_tenant(Some("t1".to_owned()));
    assert_eq!(store.undo_log_of_stream(&t1).await.unwrap().len(), 1);
    let t2 = StreamKey::new("Membership", "m").with_tenant(Some("t2".to_owned()));
    assert_eq!(store.undo_log_of_stream(&t2).await.unwrap(), []);
    let empty = store.undo_log(Some(""), granted.event_id).await.unwrap_err();
    assert!(matches!(empty, Error::Tenant(_)), "{empty}");
}

/// A batch whose undo log entry is written already is refused whole: its events are not
/// appended. Tenant B may log an entry with tenant A's event id and generation.
pub async fn a_logged_entry_refuses_the_whole_batch<D: TestDb>(db: &D) {
    let store = db.store().await;
    let event_id = Uuid::now_v7();
    let stream = StreamKey::new("Membership", "raw");
    let entry = |stream: &StreamKey| UndoLogEntry {
        event_id,
        stream: stream.clone(),
        event_type: "membership.granted".to_owned(),
        generation: 1,
        action: UndoAction::Undo,
        command_type: "RevokeRole".to_owned(),
        command_key: Uuid::now_v7(),
        recorded_at: at(1_900_000_000_000),
    };
    let batch = |stream: &StreamKey, expected_version| CommitBatch {
        appends: vec![StreamAppend {
            stream: stream.clone(),
            expected_version,
            events: vec![new_event("membership.revoked", 1, serde_json::json!({"role": "admin"}))],
        }],
        tenant_id: stream.tenant_id.clone(),
        undo_log: vec![entry(stream)],
        ..CommitBatch::default()
    };
    store.commit(batch(&stream, 0)).await.unwrap();
    let refused = store.commit(batch(&stream, 1)).await.unwrap_err();
    assert!(
        matches!(refused, Error::Undo(UndoError::AlreadyUndone { event_id: id, generation: 1 }) if id == event_id),
        "{refused}"
    );
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1, "the refused batch appended nothing");
    assert_eq!(store.undo_log(None, event_id).await.unwrap().len(), 1);

    let other = stream.clone().with_tenant(Some("t2".to_owned()));
    store.commit(batch(&other, 0)).await.unwrap();
    assert_eq!(store.undo_log(Some("t2"), event_id).await.unwrap().len(), 1);
}

/// Undos of one event racing from several processes: exactly one commits.
pub async fn of_racing_undos_exactly_one_commits<D: TestDb>(db: &D) {
    let store = db.store().await;
    let first = app(store.clone()).build().unwrap();
    first.send(grant("m", "admin")).await.unwrap();
    let granted = last_event(&store, 1).await;

    let mut racers = Vec::new();
    for _ in 0..6 {
        let app = app(db.store().await).build().unwrap();
        racers.push(tokio::spawn(async move { app.undo(granted.event_id).await }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Undo(UndoError::AlreadyUndone { generation: 1, .. })) => {}
            Err(e) => panic!("an undo failed otherwise: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.undo_log(None, granted.event_id).await.unwrap().len(), 1);
    assert_eq!(store.stream_version(&StreamKey::new("Membership", "m")).await.unwrap(), 2);
}

/// An inverse command that fails writes no log entry, so the undo can be tried again.
pub async fn a_failing_inverse_command_logs_nothing<D: TestDb>(db: &D) {
    let store = db.store().await;
    let app = app(store.clone()).build().unwrap();
    app.send(grant("m", "admin")).await.unwrap();
    let granted = last_event(&store, 1).await;
    app.send(RevokeRole { member: "m".into(), role: "admin".into() }).await.unwrap();

    let err = app.undo(granted.event_id).await.unwrap_err();
    assert_eq!(err.domain_error::<MembershipError>(), Some(&MembershipError::NotHeld("admin".into())));
    assert_eq!(store.undo_log(None, granted.event_id).await.unwrap(), []);

    app.send(grant("m", "admin")).await.unwrap();
    assert_eq!(app.undo(granted.event_id).await.unwrap().generation, 1);
    assert_eq!(store.stream_version(&StreamKey::new("Membership", "m")).await.unwrap(), 4);
}
