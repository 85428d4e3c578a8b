//! Undo and redo on the in-memory store: `#[event(undo = ..)]` names the inverse command,
//! `app.undo(event_id)` sends it once and logs it in the same commit, `app.redo` takes the
//! undo back; windows on the application's clock, tenants kept apart.
#![allow(missing_docs)]

use std::time::Duration;

use cqrs_ddd::memory::ManualClock;
use cqrs_ddd::ports::{StoredEvent, TenantScope, UndoAction};
use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::{Redo, Undo, UndoError, headers, undo_key};
use cqrs_ddd::{MemoryStore, RequestContext};
use uuid::Uuid;

#[event(undo = Revoke, redo = Grant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Granted {
    pub role: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoked {
    pub role: String,
}

/// Carries the name it replaced, so that its inverse can be built from it.
#[event(undo = Rename, undo_within = "1h")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renamed {
    pub from: String,
    pub to: String,
}

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closed;

impl Undo for Granted {
    type Command = Revoke;
    fn undo(granted: &Envelope<Self>) -> Option<Revoke> {
        // The owner's role is never taken back by an undo.
        (granted.role != "owner").then(|| Revoke { user: granted.header.stream_id.clone(), role: granted.role.clone() })
    }
}

impl Redo for Granted {
    type Command = Grant;
    fn redo(granted: &Envelope<Self>) -> Option<Grant> {
        Some(Grant { user: granted.header.stream_id.clone(), role: granted.role.clone() })
    }
}

impl Undo for Renamed {
    type Command = Rename;
    fn undo(renamed: &Envelope<Self>) -> Option<Rename> {
        Some(Rename { user: renamed.header.stream_id.clone(), to: renamed.from.clone() })
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("`{0}` is not held")]
    NotHeld(String),
}

#[aggregate(id = String, events(Granted, Revoked, Renamed, Closed), error = UserError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct User {
    pub roles: Vec<String>,
    pub name: String,
}

#[aggregate]
impl User {
    #[handle(create_if_missing)]
    fn grant(&self, cmd: &Grant) -> Result<Vec<UserEvent>, UserError> {
        Ok(vec![Granted { role: cmd.role.clone() }.into()])
    }
    #[handle]
    fn revoke(&self, cmd: &Revoke) -> Result<Vec<UserEvent>, UserError> {
        if !self.roles.contains(&cmd.role) {
            return Err(UserError::NotHeld(cmd.role.clone()));
        }
        Ok(vec![Revoked { role: cmd.role.clone() }.into()])
    }
    #[handle(create_if_missing)]
    fn rename(&self, cmd: &Rename) -> Result<Vec<UserEvent>, UserError> {
        Ok(vec![Renamed { from: self.name.clone(), to: cmd.to.clone() }.into()])
    }
    #[handle]
    fn close(&self, _cmd: &Close) -> Result<Vec<UserEvent>, UserError> {
        Ok(vec![Closed.into()])
    }
    #[apply]
    fn granted(&mut self, e: &Granted) {
        self.roles.push(e.role.clone());
    }
    #[apply]
    fn revoked(&mut self, e: &Revoked) {
        self.roles.retain(|r| *r != e.role);
    }
    #[apply]
    fn renamed(&mut self, e: &Renamed) {
        self.name.clone_from(&e.to);
    }
    #[apply]
    fn closed(&mut self, _e: &Closed) {}
}

#[command(aggregate = User)]
pub struct Grant {
    #[id]
    pub user: String,
    pub role: String,
}

#[command(aggregate = User)]
pub struct Revoke {
    #[id]
    pub user: String,
    pub role: String,
}

#[command(aggregate = User)]
pub struct Rename {
    #[id]
    pub user: String,
    pub to: String,
}

#[command(aggregate = User)]
pub struct Close {
    #[id]
    pub user: String,
}

/// Undoes an event from inside a command's handler: the undo joins its unit of work.
#[command]
pub struct UndoFromHandler {
    pub event_id: Uuid,
    pub then_fail: bool,
}

#[command_handler]
async fn undo_from_handler(cmd: UndoFromHandler, ctx: &mut CommandContext) -> Result<()> {
    ctx.mediator().undo(cmd.event_id).await?;
    if cmd.then_fail {
        return Err(Error::handler("the outer command fails after the undo"));
    }
    Ok(())
}

fn app_with(store: &MemoryStore, clock: &ManualClock) -> Mediator {
    App::builder().event_store(store.clone()).clock(clock.clone()).build().unwrap()
}

fn app() -> (Mediator, MemoryStore) {
    let store = MemoryStore::new();
    (app_with(&store, &ManualClock::default()), store)
}

/// The newest event of the current tenant.
async fn last_event(app: &Mediator) -> StoredEvent {
    let tenant = RequestContext::current().and_then(|r| r.tenant_id);
    app.event_store().latest(TenantScope::Only(tenant.as_deref()), 1).await.unwrap().pop().expect("an event")
}

async fn roles(app: &Mediator, user: &str) -> Vec<String> {
    app.load::<User>(&user.to_owned()).await.unwrap().state.roles
}

fn grant(role: &str) -> Grant {
    Grant { user: "ada".into(), role: role.into() }
}

#[tokio::test]
async fn undo_sends_the_inverse_command_and_logs_it_in_its_commit() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;

    let undone = app.undo(granted.event_id).await.unwrap();

    assert_eq!(undone.command, "Revoke");
    assert_eq!((undone.action, undone.generation), (UndoAction::Undo, 1));
    assert_eq!(undone.key, undo_key(granted.event_id, UndoAction::Undo, 1));
    assert!(roles(&app, "ada").await.is_empty());
    let revoked = last_event(&app).await;
    assert_eq!(revoked.event_type, "Revoked");
    let said = |h: &str| revoked.metadata.headers.get(h).cloned();
    assert_eq!(said(headers::UNDO_OF), Some(granted.event_id.to_string()));
    assert_eq!(
        (said(headers::UNDO_ACTION).as_deref(), said(headers::UNDO_GENERATION).as_deref()),
        (Some("undo"), Some("1"))
    );
    assert_eq!(store.event_count(), 2);
    let log = app.undo_log(granted.event_id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].generation, log[0].action), (1, UndoAction::Undo));
    assert_eq!((log[0].command_type.as_str(), log[0].command_key), ("Revoke", undone.key));
    assert_eq!((log[0].event_type.as_str(), log[0].stream.stream_id.as_str()), ("Granted", "ada"));
    assert_eq!(app.undo_log_of_stream("User", "ada").await.unwrap(), log);
}

#[tokio::test]
async fn a_second_undo_is_refused_and_writes_nothing() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;
    app.undo(granted.event_id).await.unwrap();

    let again = app.undo(granted.event_id).await.unwrap_err();

    assert!(
        matches!(again, Error::Undo(UndoError::AlreadyUndone { event_id, generation: 1 }) if event_id == granted.event_id),
        "{again}"
    );
    assert_eq!(store.event_count(), 2);
    assert_eq!(app.undo_log(granted.event_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn redo_takes_an_undo_back_once_and_the_event_can_be_undone_again() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;
    app.undo(granted.event_id).await.unwrap();

    let redone = app.redo(granted.event_id).await.unwrap();
    assert_eq!((redone.command, redone.action, redone.generation), ("Grant", UndoAction::Redo, 1));
    assert_eq!(roles(&app, "ada").await, ["admin"]);
    let twice = app.redo(granted.event_id).await.unwrap_err();
    assert!(matches!(twice, Error::Undo(UndoError::NotUndone { .. })), "{twice}");

    let second = app.undo(granted.event_id).await.unwrap();
    assert_eq!(second.generation, 2);
    assert_ne!(second.key, undo_key(granted.event_id, UndoAction::Undo, 1));
    assert!(roles(&app, "ada").await.is_empty());
    let log: Vec<(u32, UndoAction)> =
        app.undo_log(granted.event_id).await.unwrap().iter().map(|e| (e.generation, e.action)).collect();
    assert_eq!(log, [(1, UndoAction::Undo), (1, UndoAction::Redo), (2, UndoAction::Undo)]);
    assert_eq!(store.event_count(), 4);
}

#[tokio::test]
async fn redo_without_an_undo_or_without_a_redo_command_is_refused() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;
    let early = app.redo(granted.event_id).await.unwrap_err();
    assert!(matches!(early, Error::Undo(UndoError::NotUndone { .. })), "{early}");

    app.send(Rename { user: "ada".into(), to: "Ada L.".into() }).await.unwrap();
    let renamed = last_event(&app).await;
    app.undo(renamed.event_id).await.unwrap();
    let no_redo = app.redo(renamed.event_id).await.unwrap_err();
    assert!(matches!(&no_redo, Error::Undo(UndoError::NoRedo { event_type }) if event_type == "Renamed"), "{no_redo}");
    assert_eq!(store.event_count(), 3);
}

#[tokio::test]
async fn undo_is_bounded_by_the_window_on_the_applications_clock() {
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let app =
        App::builder().event_store(store.clone()).clock(clock.clone()).undo_window(Duration::from_secs(86_400)).build();
    let app = app.unwrap();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;
    app.send(Rename { user: "ada".into(), to: "Ada L.".into() }).await.unwrap();
    let renamed = last_event(&app).await;

    // `Renamed` has a window of its own (1h); `Granted` the application's (1 day).
    clock.advance(Duration::from_secs(2 * 3600));
    let late = app.undo(renamed.event_id).await.unwrap_err();
    assert!(
        matches!(late, Error::Undo(UndoError::Expired { window, .. }) if window == Duration::from_secs(3600)),
        "{late}"
    );
    app.undo(granted.event_id).await.unwrap();
    app.redo(granted.event_id).await.unwrap();

    clock.advance(Duration::from_secs(86_400));
    let later = app.undo(granted.event_id).await.unwrap_err();
    assert!(
        matches!(later, Error::Undo(UndoError::Expired { window, .. }) if window == Duration::from_secs(86_400)),
        "{later}"
    );
    assert_eq!(app.undo_log(renamed.event_id).await.unwrap(), []);
    assert_eq!(store.event_count(), 4);
}

#[tokio::test]
async fn within_its_window_an_event_is_undone() {
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let app = app_with(&store, &clock);
    app.send(Rename { user: "ada".into(), to: "Ada L.".into() }).await.unwrap();
    let renamed = last_event(&app).await;
    clock.advance(Duration::from_secs(59 * 60));
    app.undo(renamed.event_id).await.unwrap();
    assert_eq!(app.load::<User>(&"ada".to_owned()).await.unwrap().state.name, "");
}

#[tokio::test]
async fn an_event_type_without_undo_and_a_refusing_event_are_typed_errors() {
    let (app, store) = app();
    app.send(grant("owner")).await.unwrap();
    let owner = last_event(&app).await;
    app.send(Close { user: "ada".into() }).await.unwrap();
    let closed = last_event(&app).await;

    let refused = app.undo(owner.event_id).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Undo(UndoError::Refused { event_type, action: UndoAction::Undo, .. }) if event_type == "Granted"),
        "{refused}"
    );
    let not_undoable = app.undo(closed.event_id).await.unwrap_err();
    assert!(
        matches!(&not_undoable, Error::Undo(UndoError::NotUndoable { event_type }) if event_type == "Closed"),
        "{not_undoable}"
    );
    assert_eq!(store.event_count(), 2);
    assert_eq!(app.undo_log(owner.event_id).await.unwrap(), []);
}

#[tokio::test]
async fn an_unknown_event_id_is_missing() {
    let (app, _) = app();
    let err = app.undo(Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err}");
    let err = app.redo(Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err}");
}

#[tokio::test]
async fn another_tenant_cannot_see_or_undo_an_event() {
    let (app, store) = app();
    let acme = RequestContext::new().with_tenant("acme");
    let globex = RequestContext::new().with_tenant("globex");
    let granted = acme
        .clone()
        .scope(async {
            app.send(grant("admin")).await.unwrap();
            last_event(&app).await
        })
        .await;

    let err = globex.clone().scope(app.undo(granted.event_id)).await.unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err}");
    let outside = app.undo(granted.event_id).await.unwrap_err();
    assert!(matches!(outside, Error::Missing { .. }), "{outside}");
    assert_eq!(store.event_count(), 1);

    acme.clone().scope(app.undo(granted.event_id)).await.unwrap();
    assert_eq!(globex.clone().scope(app.undo_log(granted.event_id)).await.unwrap(), []);
    let logged = acme.clone().scope(app.undo_log(granted.event_id)).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].stream.tenant_id.as_deref(), Some("acme"));
    assert_eq!(globex.scope(app.undo_log_of_stream("User", "ada")).await.unwrap(), []);
    assert!(acme.scope(roles(&app, "ada")).await.is_empty());

    // Operators see it over every tenant, or narrowed to the one that has it.
    assert_eq!(app.admin().undo_log(granted.event_id).await.unwrap(), logged);
    assert_eq!(app.admin().for_tenant(Some("acme".into())).undo_log(granted.event_id).await.unwrap(), logged);
    assert_eq!(app.admin().for_tenant(Some("globex".into())).undo_log(granted.event_id).await.unwrap(), []);
}

#[tokio::test]
async fn a_failing_inverse_command_writes_no_log_entry() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;
    app.send(Revoke { user: "ada".into(), role: "admin".into() }).await.unwrap();

    let err = app.undo(granted.event_id).await.unwrap_err();
    assert_eq!(err.domain_error::<UserError>(), Some(&UserError::NotHeld("admin".into())));
    assert_eq!(app.undo_log(granted.event_id).await.unwrap(), []);
    assert_eq!(store.event_count(), 2);

    // Nothing of the failed attempt is left: the same undo goes through once it can.
    app.send(grant("admin")).await.unwrap();
    let undone = app.undo(granted.event_id).await.unwrap();
    assert_eq!(undone.generation, 1);
    assert_eq!(roles(&app, "ada").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_undos_of_one_event_exactly_one_commits() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;

    let undos: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.undo(granted.event_id).await })
        })
        .collect();
    let mut won = 0;
    for undo in undos {
        match undo.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Undo(UndoError::AlreadyUndone { generation: 1, .. })) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }

    assert_eq!(won, 1);
    assert_eq!(store.event_count(), 2);
    assert_eq!(app.undo_log(granted.event_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_undo_inside_a_handler_commits_with_it_or_not_at_all() {
    let (app, store) = app();
    app.send(grant("admin")).await.unwrap();
    let granted = last_event(&app).await;

    let err = app.send(UndoFromHandler { event_id: granted.event_id, then_fail: true }).await.unwrap_err();
    assert!(matches!(err, Error::Handler(_)), "{err}");
    assert_eq!(app.undo_log(granted.event_id).await.unwrap(), []);
    assert_eq!(roles(&app, "ada").await, ["admin"]);

    app.send(UndoFromHandler { event_id: granted.event_id, then_fail: false }).await.unwrap();
    assert_eq!(app.undo_log(granted.event_id).await.unwrap().len(), 1);
    assert!(roles(&app, "ada").await.is_empty());
    assert_eq!(store.event_count(), 2);
}
