//! Dispatch by name: every `#[command]` can be sent by its stored name, so a scheduled
//! command outlives the process that scheduled it, and an unknown name is a typed error,
//! an ERROR log and a counted dead row.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use cqrs_ddd::memory::{ManualClock, MemorySagaStore, MemoryScheduleStore};
use cqrs_ddd::ports::{Clock, ScheduleStore, ScheduledCommand};
use cqrs_ddd::prelude::*;
use cqrs_ddd::saga::SagaRecovery;
use cqrs_ddd::scheduling::{Scheduler, SchedulerOptions, SchedulerReport};
use cqrs_ddd::{AppBuilder, CommandHandler, DynCommandHandler, MemoryStore, RequestContext};
use futures::future::BoxFuture;
use parking_lot::Mutex;

/// What the handlers of one `App` did.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn calls(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

#[command(response = String)]
#[derive(Debug, Serialize, Deserialize)]
pub struct Greet {
    pub name: String,
}

#[command_handler]
async fn greet(cmd: Greet, ctx: &mut CommandContext, log: Dep<Log>) -> Result<String> {
    let tenant = ctx.request().tenant_id.clone().unwrap_or_default();
    log.0.lock().push(format!("Greet({}) for tenant {tenant:?}", cmd.name));
    Ok(format!("hello {}", cmd.name))
}

/// Deserializable, handled by a handler registered by hand.
#[command(name = "audit.record")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub what: String,
}

struct Recorder(Arc<Log>);

impl DynCommandHandler<Record> for Recorder {
    fn handle<'a>(&'a self, cmd: Record, _ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.0.0.lock().push(format!("Record({})", cmd.what));
            Ok(())
        })
    }
}

/// Has a handler, but cannot be decoded from JSON.
#[command]
pub struct Ping;

#[command_handler]
async fn ping(_p: Ping, _ctx: &mut CommandContext) -> Result<()> {
    Ok(())
}

/// Implements `Command` by hand: not registered unless the builder is told.
#[derive(Debug, Serialize, Deserialize)]
pub struct Legacy {
    pub n: u32,
}

impl Command for Legacy {
    const NAME: &'static str = "Legacy";
    type Response = ();
}

impl CommandHandler for Legacy {
    async fn handle(self, ctx: &mut CommandContext) -> Result<()> {
        let log = ctx.dep::<Log>()?;
        log.0.lock().push(format!("Legacy({})", self.n));
        Ok(())
    }
}

/// The stores two processes share: events, scheduled commands, and a clock.
#[derive(Clone, Default)]
struct Shared {
    events: MemoryStore,
    schedules: MemoryScheduleStore,
    clock: ManualClock,
}

impl Shared {
    /// A fresh `App` over the shared stores, naming no command type.
    fn app(&self, log: &Arc<Log>) -> AppBuilder {
        App::builder()
            .event_store(self.events.clone())
            .saga_store(MemorySagaStore::new())
            .schedule_store(self.schedules.clone())
            .clock(self.clock.clone())
            .provide_arc(log.clone())
    }
}

fn scheduler(app: &Mediator, max_attempts: u32) -> Scheduler {
    Scheduler::with_options(
        app.clone(),
        SchedulerOptions { max_attempts, backoff: Duration::from_secs(10), ..SchedulerOptions::default() },
    )
}

#[tokio::test]
async fn a_command_scheduled_by_one_app_is_sent_by_another_that_never_named_it() {
    let shared = Shared::default();
    let first_log = Arc::new(Log::default());
    let first = shared.app(&first_log).build().unwrap();
    let at = shared.clock.now() + chrono::Duration::minutes(1);
    let request = RequestContext::new().with_tenant("acme");
    let id = request.scope(first.schedule(&Greet { name: "Ada".into() }, at)).await.unwrap();
    drop(first);

    // A restart: a new program instance, built without any mention of `Greet`.
    let log = Arc::new(Log::default());
    let second = shared.app(&log).build().unwrap();
    let scheduler = scheduler(&second, 3);
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport::default(), "not due yet");
    shared.clock.advance(Duration::from_secs(60));
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport { sent: 1, retried: 0, dead: 0 });
    assert_eq!(log.calls(), [r#"Greet(Ada) for tenant "acme""#], "sent in the tenant it was scheduled in");
    assert!(first_log.calls().is_empty());
    assert!(shared.schedules.get(Some("acme"), id).await.unwrap().is_none(), "a sent command is deleted");
    assert!(shared.schedules.dead(10).await.unwrap().is_empty());
}

fn unknown_row(shared: &Shared, name: &str) -> ScheduledCommand {
    let now = shared.clock.now();
    ScheduledCommand {
        id: cqrs_ddd::new_id(),
        command_type: name.to_owned(),
        payload: "{}".to_owned(),
        due_at: now,
        metadata: Metadata::default(),
        attempts: 0,
        last_error: None,
        created_at: now,
    }
}

/// Records the `tracing` events at ERROR, one line each, while it is the thread's
/// default subscriber.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.clone())
    }

    fn text(&self) -> String {
        self.0.lock().join("\n")
    }
}

impl tracing::Subscriber for Errors {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::ERROR
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn an_unknown_stored_name_is_logged_retried_then_dead_naming_the_type() {
    let shared = Shared::default();
    let app = shared.app(&Arc::default()).build().unwrap();
    let row = unknown_row(&shared, "billing.RetiredCommand");
    shared.schedules.schedule(&row).await.unwrap();
    let errors = Errors::default();
    let _guard = errors.capture();

    let scheduler = scheduler(&app, 2);
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport { sent: 0, retried: 1, dead: 0 });
    assert!(errors.text().contains("ERROR"), "an unknown name is logged at ERROR: {}", errors.text());
    assert!(errors.text().contains("billing.RetiredCommand"), "{}", errors.text());
    shared.clock.advance(Duration::from_secs(10));
    assert_eq!(scheduler.run_once().await.unwrap(), SchedulerReport { sent: 0, retried: 0, dead: 1 });

    let dead = shared.schedules.dead(10).await.unwrap();
    assert_eq!((dead.len(), dead[0].id, dead[0].attempts), (1, row.id, 2));
    let reason = dead[0].last_error.as_deref().unwrap();
    assert!(reason.contains("no command named `billing.RetiredCommand`"), "{reason}");
}

#[tokio::test]
async fn saga_recovery_reports_retried_and_dead_scheduled_commands() {
    let shared = Shared::default();
    let app = shared.app(&Arc::default()).build().unwrap();
    shared.schedules.schedule(&unknown_row(&shared, "Gone")).await.unwrap();
    let recovery = SagaRecovery::new(app).scheduler_options(SchedulerOptions {
        max_attempts: 2,
        backoff: Duration::from_secs(10),
        ..SchedulerOptions::default()
    });
    let first = recovery.run_once().await.unwrap();
    assert_eq!((first.scheduled, first.retried, first.dead), (0, 1, 0));
    shared.clock.advance(Duration::from_secs(10));
    let second = recovery.run_once().await.unwrap();
    assert_eq!((second.scheduled, second.retried, second.dead), (0, 0, 1));
}

#[tokio::test]
async fn dispatch_by_name_sends_through_the_commands_handler_and_returns_its_reply() {
    let log = Arc::new(Log::default());
    let app = App::builder().provide_arc(log.clone()).build().unwrap();
    assert!(app.command_names().any(|n| n == "Greet"));
    let reply = app.dispatch_by_name("Greet", r#"{"name":"Bo"}"#, None).await.unwrap();
    assert_eq!(reply.downcast_ref::<String>().map(String::as_str), Some("hello Bo"));
    assert_eq!(log.calls(), [r#"Greet(Bo) for tenant """#]);
}

#[tokio::test]
async fn dispatch_by_name_reaches_a_handler_registered_by_hand() {
    let log = Arc::new(Log::default());
    let app = App::builder().provide_arc(log.clone()).command_handler(Recorder(log.clone())).build().unwrap();
    app.dispatch_by_name("audit.record", r#"{"what":"login"}"#, None).await.unwrap();
    assert_eq!(log.calls(), ["Record(login)"]);

    let without = App::builder().provide_arc(log.clone()).build().unwrap();
    let err = without.dispatch_by_name("audit.record", r#"{"what":"x"}"#, None).await.unwrap_err();
    assert!(matches!(err, Error::NoHandler { kind: "command", name: "audit.record" }), "{err}");
}

#[tokio::test]
async fn dispatch_by_name_refuses_unknown_names_and_undecodable_payloads() {
    let app = App::builder().provide(Log::default()).build().unwrap();
    let err = app.dispatch_by_name("Nope", "{}", None).await.unwrap_err();
    assert!(matches!(&err, Error::UnknownMessage { kind: "command", name } if name == "Nope"), "{err}");

    let err = app.dispatch_by_name("Greet", r#"{"nom":1}"#, None).await.unwrap_err();
    assert!(matches!(&err, Error::Decode { kind: "command", name, .. } if name == "Greet"), "{err}");
    assert!(err.to_string().contains("missing field `name`"), "{err}");

    let err = app.dispatch_by_name("Ping", "null", None).await.unwrap_err();
    assert!(matches!(&err, Error::Decode { name, .. } if name == "Ping"), "{err}");
    assert!(err.to_string().contains("does not implement `serde::Deserialize`"), "{err}");
}

#[tokio::test]
async fn a_command_implemented_by_hand_is_scheduled_only_once_registered() {
    let shared = Shared::default();
    let log = Arc::new(Log::default());
    let unregistered = shared.app(&log).build().unwrap();
    let err = unregistered.schedule(&Legacy { n: 1 }, shared.clock.now()).await.unwrap_err();
    assert!(matches!(&err, Error::UnknownMessage { name, .. } if name == "Legacy"), "{err}");
    assert!(shared.schedules.dead(10).await.unwrap().is_empty());

    let registered = shared.app(&log).schedulable::<Legacy>().build().unwrap();
    registered.schedule(&Legacy { n: 2 }, shared.clock.now()).await.unwrap();
    let other = shared.app(&log).schedulable::<Legacy>().build().unwrap();
    assert_eq!(scheduler(&other, 3).run_once().await.unwrap().sent, 1);
    assert_eq!(log.calls(), ["Legacy(2)"]);
}
