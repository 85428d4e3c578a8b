//! What each command does.

use std::fmt::Write as _;
use std::future::Future;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cqrs_ddd::admin::{Admin, EventView};
use cqrs_ddd::host::ProjectionControl;
use cqrs_ddd::projection::Progress;
use cqrs_ddd::{Error, Mediator};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use uuid::Uuid;

use crate::args::{Cli, Command, Events, Jobs, OutboxCmd, Projections, Sagas, Schedules, Tenants};
use crate::output::{Out, or_dash, short, time};
use crate::{Database, Failure, exit};

pub(crate) async fn run<F, Fut>(cli: Cli, build: F) -> Result<u8, Failure>
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = cqrs_ddd::Result<Mediator>>,
{
    let Cli { global, command } = cli;
    let out = Out { json: global.json };
    let url = global
        .database_url
        .as_deref()
        .ok_or_else(|| Failure::usage("no database: give --database-url or set DATABASE_URL"))?;
    if let Some(tenant) = &global.tenant {
        cqrs_ddd::ports::check_tenant(Some(tenant))?;
    }
    let db = Database::connect(url, &global.schema).await?;
    if let Command::Migrate = command {
        db.migrate().await?;
        let name = db.name();
        out.done(&format!("the {name} tables are up to date"), &json!({ "migrated": true, "database": name }));
        return Ok(exit::OK);
    }
    let app = build(db).await?;
    let admin = app.admin().for_tenant(global.tenant.clone());
    match command {
        Command::Migrate => Ok(exit::OK),
        Command::Projections(cmd) => projections(&admin, out, cmd).await,
        Command::Outbox(cmd) => outbox(&admin, out, cmd).await,
        Command::Sagas(cmd) => sagas(&admin, out, cmd).await,
        Command::Schedules(cmd) => schedules(&admin, out, cmd).await,
        Command::Jobs(cmd) => jobs(&admin, out, cmd).await,
        Command::Events(cmd) => events(&admin, out, cmd).await,
        Command::Tenants(Tenants::List) => {
            let tenants = admin.tenants().await?;
            out.list(&tenants, &["TENANT"], |t| vec![t.clone()]);
            Ok(exit::OK)
        }
    }
}

async fn projections(admin: &Admin, out: Out, cmd: Projections) -> Result<u8, Failure> {
    match cmd {
        Projections::List => {
            let views = admin.projections().await?;
            out.list(&views, &["NAME", "SCOPE", "LAG", "DEAD", "CHECKPOINTS", "HEAD"], |p| {
                vec![
                    p.name.to_owned(),
                    p.scope.clone(),
                    p.lag.to_string(),
                    p.dead_letters.to_string(),
                    p.checkpoints.iter().map(|c| c.as_deref().unwrap_or("-")).collect::<Vec<_>>().join(","),
                    p.head.clone(),
                ]
            });
        }
        Projections::Status { name } => {
            let p = admin.projection_status(&name).await?;
            out.record(
                &p,
                &[
                    ("name", p.name.to_owned()),
                    ("scope", p.scope.clone()),
                    ("tenant", or_dash(p.tenant.as_deref())),
                    (
                        "checkpoints",
                        p.checkpoints.iter().map(|c| c.as_deref().unwrap_or("-")).collect::<Vec<_>>().join(", "),
                    ),
                    ("head", p.head.clone()),
                    ("lag", p.lag.to_string()),
                    ("dead letters", p.dead_letters.to_string()),
                    (
                        "read stall",
                        p.read_stall.as_ref().map_or_else(
                            || "-".to_owned(),
                            |s| format!("transaction {} open since {}", s.xid, or_dash(s.since.map(time))),
                        ),
                    ),
                ],
            );
        }
        Projections::Rebuild { name, partition } => {
            let control = admin.projection(&name)?;
            let what = match partition {
                Some(p) => format!("rebuilding partition {p} of {}", control.scope()),
                None => format!("rebuilding {}", control.scope()),
            };
            return apply_with_progress(&control, out, &what, |c, progress| {
                Box::pin(async move {
                    match partition {
                        Some(p) => c.rebuild_partition(p, progress).await,
                        None => c.rebuild(progress).await,
                    }
                })
            })
            .await;
        }
        Projections::CatchUp { name } => {
            let control = admin.projection(&name)?;
            let what = format!("catching up {}", control.scope());
            return apply_with_progress(&control, out, &what, |c, progress| Box::pin(c.catch_up(progress))).await;
        }
        Projections::Dead { name } => {
            let letters = admin.dead_letters(&name).await?;
            out.list(&letters, &["EVENT", "TYPE", "STREAM", "CURSOR", "FAILED", "ERROR", "PAYLOAD"], |l| {
                vec![
                    l.event_id.to_string(),
                    l.event_type.clone(),
                    stream(l.tenant.as_deref(), &l.stream_type, &l.stream_id, l.version),
                    l.cursor.clone(),
                    time(l.failed_at),
                    short(&l.error, 60),
                    l.payload.as_ref().map_or_else(|| "(gone)".to_owned(), |p| short(&p.to_string(), 60)),
                ]
            });
        }
        Projections::RetryDead { name, event_ids } => {
            let control = admin.projection(&name)?;
            let letters = control.dead_letters().await?;
            let chosen = chosen_letters(&control, &letters, &event_ids)?;
            let (mut retried, mut failed) = (Vec::new(), Vec::new());
            for id in chosen {
                match control.retry_dead_letter(id).await {
                    Ok(()) => retried.push(id),
                    Err(e) => failed.push((id, e.to_string())),
                }
            }
            let mut sentence = format!("retried {} dead letter(s) of {}", retried.len(), control.scope());
            for (id, e) in &failed {
                let _ = write!(sentence, "\nstill failing: {id}: {e}");
            }
            let failed_json: Vec<_> = failed.iter().map(|(id, e)| json!({ "event_id": id, "error": e })).collect();
            out.done(&sentence, &json!({ "retried": retried, "failed": failed_json }));
            if !failed.is_empty() {
                return Ok(exit::FAILED);
            }
        }
        Projections::SkipDead { name, event_id } => {
            let control = admin.projection(&name)?;
            let letters = control.dead_letters().await?;
            chosen_letters(&control, &letters, &[event_id])?;
            control.skip_dead_letter(event_id).await?;
            out.done(
                &format!("skipped the dead letter of event {event_id} in {}", control.scope()),
                &json!({ "skipped": event_id }),
            );
        }
    }
    Ok(exit::OK)
}

/// The dead letters to act on: the ones named (each must exist), else all of them.
fn chosen_letters(
    control: &ProjectionControl,
    letters: &[cqrs_ddd::ports::DeadLetter],
    ids: &[Uuid],
) -> Result<Vec<Uuid>, Failure> {
    if ids.is_empty() {
        return Ok(letters.iter().map(|l| l.event_id).collect());
    }
    if let Some(id) = ids.iter().find(|id| !letters.iter().any(|l| l.event_id == **id)) {
        return Err(Error::Missing { what: format!("dead letter of event {id} in {}", control.scope()) }.into());
    }
    Ok(ids.to_vec())
}

type Applying<'a> = std::pin::Pin<Box<dyn Future<Output = cqrs_ddd::Result<Progress>> + Send + 'a>>;

/// Runs a rebuild or a catch-up with a progress bar on standard error (plain lines when
/// it is not a terminal). The first Ctrl-C stops it after the batch in flight; a second
/// one exits at once (the batch in flight is rolled back).
async fn apply_with_progress<'c>(
    control: &'c ProjectionControl,
    out: Out,
    what: &str,
    start: impl FnOnce(&'c ProjectionControl, Box<dyn FnMut(&Progress) -> ControlFlow<()> + Send + 'c>) -> Applying<'c>,
) -> Result<u8, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let signals = tokio::spawn(watch_ctrl_c(CtrlC::listen(), stop.clone()));
    let bar = Bar::new(what);
    let reporter = bar.clone();
    let asked = stop.clone();
    let progress = Box::new(move |p: &Progress| {
        reporter.show(p);
        if asked.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    let result = start(control, progress).await;
    signals.abort();
    let done = result?;
    bar.finish(&done);
    let status = control.status().await?;
    let checkpoints: Vec<String> =
        status.checkpoints.iter().map(|c| c.map_or_else(|| "-".to_owned(), |c| c.to_string())).collect();
    let mut sentence = format!(
        "{} {}: {} event(s) read, {} applied; checkpoint {}",
        control.scope(),
        if done.stopped { "stopped" } else { "done" },
        done.read,
        done.applied,
        checkpoints.join(", ")
    );
    if done.stopped {
        let _ = write!(
            sentence,
            "\nstopped after a batch, the read model at its checkpoint; `projections catch-up {}` resumes it",
            control.scope()
        );
    }
    let doc = json!({
        "projection": control.scope(),
        "read": done.read,
        "applied": done.applied,
        "stopped": done.stopped,
        "checkpoints": checkpoints,
        "lag": status.lag,
    });
    if done.stopped {
        // The answer goes out whole, and the status says it was interrupted.
        if out.json {
            out.value(&doc);
        } else {
            eprintln!("{sentence}");
        }
        return Ok(exit::INTERRUPTED);
    }
    out.done(&sentence, &doc);
    Ok(exit::OK)
}

/// Listens for Ctrl-C from the moment it is made (a signal that comes before the first
/// wait is not lost).
struct CtrlC {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl CtrlC {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
            CtrlC { signal }
        }
        #[cfg(not(unix))]
        CtrlC {}
    }

    /// The next Ctrl-C; `false` when none can be heard.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            match &mut self.signal {
                Some(signal) => signal.recv().await.is_some(),
                None => false,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

/// Sets `stop` on the first Ctrl-C; exits on the second.
async fn watch_ctrl_c(mut ctrl_c: CtrlC, stop: Arc<AtomicBool>) {
    if !ctrl_c.next().await {
        return;
    }
    stop.store(true, Ordering::SeqCst);
    eprintln!("stopping after the batch in flight (Ctrl-C again to abort it)");
    if ctrl_c.next().await {
        eprintln!("aborted: the batch in flight is rolled back");
        std::process::exit(i32::from(exit::INTERRUPTED));
    }
}

/// Progress on standard error: a bar on a terminal, else a line at most every second.
#[derive(Clone)]
struct Bar {
    bar: Option<ProgressBar>,
    what: Arc<str>,
    last_line: Arc<Mutex<Option<Instant>>>,
}

impl Bar {
    fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left) {prefix}")
                    .map_or_else(|_| ProgressStyle::default_bar(), |s| s.progress_chars("=> "));
            bar.set_style(style);
            bar.set_message(what.to_owned());
            bar
        });
        if bar.is_none() {
            eprintln!("{what}");
        }
        Bar { bar, what: what.into(), last_line: Arc::default() }
    }

    fn show(&self, p: &Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(p.total);
                bar.set_position(p.read);
                bar.set_prefix(format!("{} applied", p.applied));
            }
            None if self.line_due() => {
                eprintln!(
                    "{}: {}/{} events read, {} applied ({:.0} %)",
                    self.what,
                    p.read,
                    p.total,
                    p.applied,
                    p.percent()
                );
            }
            None => {}
        }
    }

    /// Whether a plain line is due: the first, or one more than a second after the last.
    fn line_due(&self) -> bool {
        let Ok(mut last) = self.last_line.lock() else { return true };
        let now = Instant::now();
        if last.is_some_and(|l| now.duration_since(l) < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn finish(&self, p: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.total);
            bar.set_position(p.read);
            bar.finish();
        }
    }
}

async fn outbox(admin: &Admin, out: Out, cmd: OutboxCmd) -> Result<u8, Failure> {
    match cmd {
        OutboxCmd::Status => {
            let counts = admin.outbox_counts().await?;
            out.record(&counts, &[("pending", counts.pending.to_string()), ("dead", counts.dead.to_string())]);
        }
        OutboxCmd::Dead => {
            let rows = admin.outbox_dead().await?;
            out.list(&rows, &["ID", "TOPIC", "TENANT", "ATTEMPTS", "CREATED", "ERROR"], |r| {
                vec![
                    r.id.to_string(),
                    r.topic.clone(),
                    or_dash(r.tenant.as_deref()),
                    r.attempts.to_string(),
                    time(r.created_at),
                    short(r.last_error.as_deref().unwrap_or("-"), 60),
                ]
            });
        }
        OutboxCmd::RetryDead { ids } => {
            let n = admin.retry_outbox(&ids).await?;
            out.done(&format!("{n} dead outbox row(s) will be published again"), &json!({ "retried": n }));
        }
    }
    Ok(exit::OK)
}

async fn sagas(admin: &Admin, out: Out, cmd: Sagas) -> Result<u8, Failure> {
    let (view, verb) = match cmd {
        Sagas::List { statuses, saga_type, limit } => {
            let found = admin.sagas(saga_type.as_deref(), &statuses, limit).await?;
            out.list(&found, &["TYPE", "ID", "TENANT", "STATUS", "RETRIES", "CREATED", "ERROR"], |s| {
                vec![
                    s.saga_type.clone(),
                    s.saga_id.clone(),
                    or_dash(s.tenant.as_deref()),
                    s.status.to_string(),
                    s.retries.to_string(),
                    time(s.created_at),
                    short(s.error.as_deref().unwrap_or("-"), 60),
                ]
            });
            return Ok(exit::OK);
        }
        Sagas::Show(r) => (admin.saga(r.saga_type.as_deref(), &r.id).await?, None),
        Sagas::Retry(r) => (admin.retry_saga(r.saga_type.as_deref(), &r.id).await?, Some("retried")),
        Sagas::Compensate { saga, reason } => {
            (admin.compensate_saga(saga.saga_type.as_deref(), &saga.id, &reason).await?, Some("compensated"))
        }
    };
    if let (Some(verb), false) = (verb, out.json) {
        eprintln!("{verb} saga {}/{}", view.saga_type, view.saga_id);
    }
    out.record(
        &view,
        &[
            ("saga", format!("{}/{}", view.saga_type, view.saga_id)),
            ("tenant", or_dash(view.tenant.as_deref())),
            ("status", view.status.to_string()),
            ("version", view.version.to_string()),
            ("created", time(view.created_at)),
            ("times out", or_dash(view.timeout_at.map(time))),
            ("retries", view.retries.to_string()),
            ("error", or_dash(view.error.as_deref())),
            ("correlation", or_dash(view.correlation_id)),
            ("state", view.state.to_string()),
        ],
    );
    if !out.json {
        println!("\nhistory:");
        if view.commands.is_empty() {
            println!("  (no command planned)");
        }
        for c in &view.commands {
            let kind =
                serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let sent = if c.dispatched { "sent" } else { "not sent" };
            println!("  {} {kind} {} ({sent}) {}", c.step, c.command_type, short(&c.payload, 60));
        }
        if !view.undo.is_empty() {
            println!("\nto undo, newest last:");
            for u in &view.undo {
                println!("  {} {} {}", u.step, u.undo_type, short(&u.undo_payload, 60));
            }
        }
    }
    Ok(exit::OK)
}

async fn schedules(admin: &Admin, out: Out, cmd: Schedules) -> Result<u8, Failure> {
    match cmd {
        Schedules::List { dead, limit } => {
            let found = admin.schedules(dead, limit).await?;
            out.list(&found, &["ID", "TENANT", "COMMAND", "DUE", "ATTEMPTS", "ERROR"], |s| {
                vec![
                    s.id.to_string(),
                    or_dash(s.tenant.as_deref()),
                    s.command_type.clone(),
                    time(s.due_at),
                    s.attempts.to_string(),
                    short(s.last_error.as_deref().unwrap_or("-"), 60),
                ]
            });
        }
        Schedules::Cancel { id } => {
            admin.cancel_schedule(id).await?;
            out.done(&format!("cancelled scheduled command {id}"), &json!({ "cancelled": id }));
        }
    }
    Ok(exit::OK)
}

async fn jobs(admin: &Admin, out: Out, cmd: Jobs) -> Result<u8, Failure> {
    match cmd {
        Jobs::List { statuses, limit, offset } => {
            let found = admin.jobs(&statuses, limit, offset).await?;
            out.list(&found, &["ID", "TENANT", "TYPE", "STATUS", "ATTEMPT", "PROGRESS", "UPDATED", "ERROR"], |j| {
                let progress = match j.progress.total {
                    Some(total) => format!("{}/{total}", j.progress.processed),
                    None if j.progress.processed > 0 => j.progress.processed.to_string(),
                    None => "-".to_owned(),
                };
                let status =
                    if j.cancel_requested { format!("{} (cancel asked)", j.status) } else { j.status.to_string() };
                vec![
                    j.id.to_string(),
                    or_dash(j.tenant.as_deref()),
                    j.job_type.clone(),
                    status,
                    format!("{}/{}", j.attempt, j.max_attempts),
                    progress,
                    time(j.updated_at),
                    short(j.error.as_deref().unwrap_or("-"), 60),
                ]
            });
        }
        Jobs::Stats => {
            let stats = admin.job_stats().await?;
            let lines: Vec<(&str, String)> = cqrs_ddd::ports::JobStatus::ALL
                .iter()
                .map(|s| (s.as_str(), stats.of(*s).to_string()))
                .chain(std::iter::once(("total", stats.total().to_string())))
                .collect();
            out.record(&stats, &lines);
        }
        Jobs::Cancel { ids } => {
            let done = admin.cancel_jobs(&ids).await?;
            out.done(
                &format!("{} job(s) cancelled or asked to stop, {} skipped", done.done, done.skipped),
                &json!({ "done": done.done, "skipped": done.skipped }),
            );
        }
        Jobs::Retry { ids } => {
            let done = admin.retry_jobs(&ids).await?;
            out.done(
                &format!("{} job(s) will run again, {} skipped", done.done, done.skipped),
                &json!({ "done": done.done, "skipped": done.skipped }),
            );
        }
        Jobs::Purge { before } => {
            let n = admin.purge_jobs(before).await?;
            out.done(&format!("{n} finished job(s) purged"), &json!({ "purged": n }));
        }
    }
    Ok(exit::OK)
}

async fn events(admin: &Admin, out: Out, cmd: Events) -> Result<u8, Failure> {
    match cmd {
        Events::Tail { lines, follow, poll_ms } => {
            let newest = admin.latest(lines).await?;
            if !follow {
                out.list(&newest, &EVENT_HEADER, event_row);
                return Ok(exit::OK);
            }
            let mut after = newest.last().map(EventView::at);
            for e in &newest {
                print_event(out, e);
            }
            let stop = Arc::new(AtomicBool::new(false));
            let stopper = stop.clone();
            let mut ctrl_c = CtrlC::listen();
            let signals = tokio::spawn(async move {
                if ctrl_c.next().await {
                    stopper.store(true, Ordering::SeqCst);
                }
            });
            let every = Duration::from_millis(poll_ms.max(10));
            while !stop.load(Ordering::SeqCst) {
                let from = after.unwrap_or(cqrs_ddd::ports::Cursor::START);
                let page = admin.events_after(from, 500).await?;
                for e in &page {
                    print_event(out, e);
                }
                if let Some(last) = page.last() {
                    after = Some(last.at());
                }
                if page.len() < 500 {
                    let wake = Instant::now() + every;
                    while Instant::now() < wake && !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10).min(every)).await;
                    }
                }
            }
            signals.abort();
        }
        Events::Stream { stream_type, stream_id } => {
            let events = admin.stream(&stream_type, &stream_id).await?;
            out.list(&events, &["VERSION", "TYPE", "SCHEMA", "PAYLOAD"], |e| {
                vec![e.version.to_string(), e.event_type.clone(), e.schema_version.to_string(), e.payload.to_string()]
            });
        }
    }
    Ok(exit::OK)
}

const EVENT_HEADER: [&str; 6] = ["CURSOR", "OCCURRED", "STREAM", "TYPE", "SCHEMA", "PAYLOAD"];

fn event_row(e: &EventView) -> Vec<String> {
    vec![
        e.cursor.clone(),
        time(e.occurred_at),
        stream(e.tenant.as_deref(), &e.stream_type, &e.stream_id, e.version),
        e.event_type.clone(),
        e.schema_version.to_string(),
        short(&e.payload.to_string(), 80),
    ]
}

fn print_event(out: Out, e: &EventView) {
    if out.json {
        out.line(e);
    } else {
        println!("{}", event_row(e).join("  "));
    }
}

fn stream(tenant: Option<&str>, stream_type: &str, stream_id: &str, version: u64) -> String {
    match tenant {
        Some(t) => format!("{t}:{stream_type}/{stream_id} v{version}"),
        None => format!("{stream_type}/{stream_id} v{version}"),
    }
}
