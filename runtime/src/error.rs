//! The one error type of the framework.

use std::error::Error as StdError;
use std::fmt;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cqrs-ddd, with the fields that say what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A concurrent writer moved the stream past the version this command loaded.
    #[error("version conflict on stream `{stream}`: expected version {expected}, found {actual}")]
    Conflict {
        /// The stream that was written concurrently.
        stream: String,
        /// The version the writer expected the stream to be at.
        expected: u64,
        /// The version the stream is really at.
        actual: u64,
    },
    /// The aggregate has no events (or no state row).
    #[error("aggregate `{stream}` not found")]
    NotFound {
        /// The stream that was asked for.
        stream: String,
    },
    /// A creating command (`#[handle(create)]`) targeted a stream that already has events.
    #[error("aggregate `{stream}` already exists (version {version})")]
    AlreadyExists {
        /// The stream that already exists.
        stream: String,
        /// Its current version.
        version: u64,
    },
    /// A domain rule rejected the command; the aggregate's error is kept with its type,
    /// see [`Error::domain_error`].
    #[error(transparent)]
    Domain(DomainError),
    /// A stored event payload could not be turned back into its type.
    #[error("cannot deserialize event `{event_type}` at version {version} of stream `{stream}`: {source}")]
    Serialization {
        /// The stream holding the event.
        stream: String,
        /// The event's version in its stream.
        version: u64,
        /// The stored event type name.
        event_type: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A stored event has a type name no `#[event]` of the aggregate carries.
    #[error("unknown event type `{event_type}` at version {version} of stream `{stream}`")]
    UnknownEventType {
        /// The stream holding the event.
        stream: String,
        /// The event's version in its stream.
        version: u64,
        /// The stored event type name.
        event_type: String,
    },
    /// A stored event could not be brought to the current schema version.
    #[error("cannot upcast event `{event_type}` at version {version} of stream `{stream}`: {reason}")]
    Upcast {
        /// The stream holding the event.
        stream: String,
        /// The event's version in its stream.
        version: u64,
        /// The stored event type name.
        event_type: String,
        /// What is missing or failed, with the schema versions involved.
        reason: String,
    },
    /// A projection failed on an event (and its error policy says stop): applying it, or
    /// writing what it changed.
    #[error(
        "projection `{projection}` failed on event `{event_type}` at version {version} of stream `{stream}` \
         (position {position}): {reason}"
    )]
    Projection {
        /// The projection.
        projection: &'static str,
        /// The stream holding the event.
        stream: String,
        /// The event's version in its stream.
        version: u64,
        /// The event's global position.
        position: u64,
        /// The event's type.
        event_type: String,
        /// What went wrong.
        reason: String,
    },
    /// A value could not be serialized (an event, a state, a snapshot).
    #[error("cannot serialize {what}: {source}")]
    Encode {
        /// What was being serialized.
        what: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// No handler is registered for a message sent through the dynamic path.
    #[error("no handler registered for {kind} `{name}`")]
    NoHandler {
        /// `command` or `query`.
        kind: &'static str,
        /// The message type.
        name: &'static str,
    },
    /// A handler asked for a `Dep<T>` that was never provided.
    #[error("`{needed_by}` needs `Dep<{type_name}>`, which was never provided; add `.provide(..)` to `App::builder()`")]
    MissingDependency {
        /// The type of the missing value.
        type_name: &'static str,
        /// The handler that needs it.
        needed_by: &'static str,
    },
    /// A query handler reads read models and the application has no document store.
    #[error(
        "`{needed_by}` reads read models, and the application has none; add `.read_models(store)` to `App::builder()`"
    )]
    NoReadModels {
        /// The query that reads them.
        needed_by: &'static str,
    },
    /// [`crate::Mediator::consume`] on an application without a broker.
    #[error(
        "the application has no bus to consume from; add `.bus(..)` (cqrs-ddd-nats, cqrs-ddd-rabbitmq) to `App::builder()`"
    )]
    NoBus,
    /// `App::build()` found problems in the registries; every one is listed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A specification that cannot be answered: a value of the wrong shape for its
    /// operator, an operator this build does not evaluate.
    #[error(transparent)]
    Spec(#[from] crate::spec::EvalError),
    /// A lock was not taken, extended or released.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// A message was rejected before it reached its handler.
    #[error("invalid {message}: {reason}")]
    Validation {
        /// The message type.
        message: &'static str,
        /// Why it was rejected (every failing field, for a declarative validation).
        reason: String,
        /// The fields that failed, each with why (empty when a rule gave one reason).
        fields: Vec<InvalidField>,
    },
    /// The unit of work was used after it committed or rolled back.
    #[error("the unit of work is already {0}")]
    UnitOfWorkClosed(&'static str),
    /// A command sent with an idempotency key (see [`crate::Mediator::send_idempotent`])
    /// was already committed under that key; nothing was written again.
    #[error("the command with idempotency key {key} was already processed")]
    AlreadyProcessed {
        /// The idempotency key.
        key: uuid::Uuid,
    },
    /// A storage backend failed (connection, I/O, constraint other than a version conflict).
    #[error("store error: {0}")]
    Store(#[source] Box<dyn StdError + Send + Sync>),
    /// A backend cannot be reached or refuses the connection: the cause is the real one
    /// (connection refused at host:port, database or role missing, timed out).
    #[error("cannot connect to {backend} at `{target}`: {reason}")]
    Connect {
        /// `PostgreSQL`, `SQLite`, ...
        backend: &'static str,
        /// Where it tried (host:port, file), without credentials.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// A value the backend cannot store (for example a `\u0000` escape in JSON, which
    /// PostgreSQL's `jsonb` refuses). Retrying will not help: every backend refuses it.
    #[error("cannot store {what}: {reason}")]
    Unstorable {
        /// What was refused (event type and stream, outbox message, document).
        what: String,
        /// Why.
        reason: String,
    },
    /// A stored row that cannot be read back as written (a negative or missing version, a
    /// malformed header, a payload that is not JSON).
    #[error("corrupt row at version {version} of stream `{stream}`: {reason}")]
    CorruptRow {
        /// The stream.
        stream: String,
        /// The version as stored (may be out of range).
        version: i64,
        /// What is wrong with it.
        reason: String,
        /// Where the row sits in the global order, when a reader of all events met it
        /// (so a projection's error policy can skip past it); `None` when unknown.
        at: Option<crate::domain::Cursor>,
    },
    /// A tenant id that cannot be used, or a command naming another tenant than the scope
    /// it runs in.
    #[error("tenancy: {0}")]
    Tenant(TenantError),
    /// A handler failed with an error of its own.
    #[error(transparent)]
    Handler(Box<dyn StdError + Send + Sync>),
    /// A message known only by its stored name (a scheduled command, a message from a
    /// broker or an HTTP request) whose name no type of this program registers: the type
    /// was renamed or removed, or the crate that defines it is not linked.
    #[error(
        "no {kind} named `{name}` is registered in this program; mark its type `#[{kind}]` \
         (`#[{kind}(name = \"{name}\")]` if it was renamed) and make sure the crate defining it is linked \
         (`use that_crate as _;`)"
    )]
    UnknownMessage {
        /// `command`.
        kind: &'static str,
        /// The stored name.
        name: String,
    },
    /// Something awaited did not happen in time (a read model reaching a position).
    #[error("{what}: not within {after:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: std::time::Duration,
    },
    /// An operator named something that is not there: a saga instance, a scheduled
    /// command, a dead letter, an outbox row.
    #[error("{what} does not exist")]
    Missing {
        /// What was asked for (`saga \`orders/o-1\``).
        what: String,
    },
    /// An operator named something several things answer to (a saga id that two
    /// tenants use): say which.
    #[error("{what} is ambiguous: it could be {}; say which", .candidates.join(" or "))]
    Ambiguous {
        /// What was asked for.
        what: String,
        /// Some of what it could be.
        candidates: Vec<String>,
    },
    /// An operation needs a part the application was not given.
    #[error("the application has no {part}; {hint}")]
    NotWired {
        /// The missing part (`outbox`).
        part: &'static str,
        /// How to give it.
        hint: &'static str,
    },
    /// A state-stored aggregate's conflict could not be merged
    /// ([`crate::Aggregate::on_conflict`]): a state does not read as JSON, or the merged
    /// JSON does not read back as the aggregate. Nothing was written.
    #[error("cannot merge the state of `{stream}` with version {version} stored by another writer: {reason}")]
    Merge {
        /// The aggregate's stream.
        stream: String,
        /// The version the other writer stored.
        version: u64,
        /// What serde said.
        reason: String,
    },
    /// An undo or a redo was refused (see [`crate::undo`]).
    #[error("undo: {0}")]
    Undo(crate::undo::UndoError),
    /// A background job stopped because an operator cancelled it, or because its worker
    /// no longer holds it ([`crate::jobs::JobContext::check_cancelled`]).
    #[error("job {id} was cancelled")]
    JobCancelled {
        /// The job.
        id: uuid::Uuid,
    },
    /// A message known only by its stored name whose payload does not decode into its type.
    #[error("cannot decode {kind} `{name}` from its payload{}: {reason}", at(.path.as_deref()))]
    Decode {
        /// `command` or `query`.
        kind: &'static str,
        /// The stored name.
        name: String,
        /// What serde said, or why the type cannot be decoded at all.
        reason: String,
        /// Where in the payload it failed (`amount`, `items[2].sku`), when serde said.
        path: Option<String>,
    },
}

impl Error {
    /// Wraps a domain error, keeping its type for [`Error::domain_error`].
    pub fn domain<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        Error::Domain(DomainError::new(error))
    }

    /// Wraps a domain error that is `Serialize`, keeping its fields as JSON
    /// ([`DomainError::fields`]) besides its type.
    pub fn domain_with_fields<E: StdError + serde::Serialize + Send + Sync + 'static>(error: E) -> Self {
        let fields = serde_json::to_value(&error).ok();
        Error::Domain(DomainError::with_fields(error, fields))
    }

    /// Wraps any error raised by a handler.
    pub fn handler<E: Into<Box<dyn StdError + Send + Sync>>>(error: E) -> Self {
        Error::Handler(error.into())
    }

    /// Wraps a storage failure.
    pub fn store<E: Into<Box<dyn StdError + Send + Sync>>>(error: E) -> Self {
        Error::Store(error.into())
    }

    /// The domain error of type `E`, if this is one.
    ///
    /// ```
    /// # use cqrs_ddd::Error;
    /// #[derive(Debug, thiserror::Error, PartialEq)]
    /// #[error("insufficient funds")]
    /// struct Overdraft;
    /// let err = Error::domain(Overdraft);
    /// assert_eq!(err.domain_error::<Overdraft>(), Some(&Overdraft));
    /// ```
    pub fn domain_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            Error::Domain(d) => d.downcast_ref(),
            _ => None,
        }
    }

    /// Whether this is a version conflict (worth a retry).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether the failure may go away by itself (a version conflict, an unreachable or
    /// failing store), as opposed to a rejection that will repeat (a domain error, a
    /// validation error, a missing aggregate, a handler's own error).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Conflict { .. }
                | Error::Store(_)
                | Error::Connect { .. }
                | Error::UnitOfWorkClosed(_)
                | Error::Timeout { .. }
        )
    }
}

/// A domain error with its concrete type preserved.
pub struct DomainError {
    inner: Box<dyn StdError + Send + Sync>,
    type_name: &'static str,
    fields: Option<serde_json::Value>,
}

/// The one thing an operator's name found, each found with how to name it:
/// [`Error::Ambiguous`] (listing them) when several were, `missing()` when none was.
pub(crate) fn the_one<T>(
    found: Vec<(String, T)>,
    what: impl FnOnce() -> String,
    missing: impl FnOnce() -> Error,
) -> Result<T> {
    if found.len() > 1 {
        return Err(Error::Ambiguous { what: what(), candidates: found.into_iter().map(|(name, _)| name).collect() });
    }
    found.into_iter().next().map(|(_, one)| one).ok_or_else(missing)
}

/// A field a message's declarative validation refused ([`Error::Validation`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidField {
    /// Where in the message (`amount`, `lines[2].sku`).
    pub path: String,
    /// Why.
    pub message: String,
}

impl Error {
    /// [`Error::Validation`] listing every field that failed, as `#[command(validate)]`
    /// and `#[query(validate)]` report them, ordered by path.
    pub fn invalid(message: &'static str, fields: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut fields: Vec<InvalidField> =
            fields.into_iter().map(|(path, message)| InvalidField { path, message }).collect();
        fields.sort_by(|a, b| a.path.cmp(&b.path));
        let reason = fields
            .iter()
            .map(|f| if f.path.is_empty() { f.message.clone() } else { format!("{}: {}", f.path, f.message) })
            .collect::<Vec<_>>()
            .join("; ");
        Error::Validation { message, reason, fields }
    }
}

impl DomainError {
    /// Wraps `error`.
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        DomainError { inner: Box::new(error), type_name: std::any::type_name::<E>(), fields: None }
    }

    /// Wraps `error` with its fields as JSON (what an HTTP problem shows of it).
    pub fn with_fields<E: StdError + Send + Sync + 'static>(error: E, fields: Option<serde_json::Value>) -> Self {
        DomainError { inner: Box::new(error), type_name: std::any::type_name::<E>(), fields }
    }

    /// The error's fields as JSON, when it is `Serialize`: an aggregate's error type
    /// that derives `Serialize` gets them (for an enum, `{"Variant": {..}}`), and
    /// [`Error::domain_with_fields`] gives them.
    pub fn fields(&self) -> Option<&serde_json::Value> {
        self.fields.as_ref()
    }

    /// The wrapped error, if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref::<E>()
    }

    /// The Rust type name of the wrapped error.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl fmt::Debug for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainError")
            .field("type", &self.type_name)
            .field("error", &self.inner)
            .field("fields", &self.fields)
            .finish()
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl StdError for DomainError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

/// What is wrong with a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// `Some("")`: an empty tenant id is refused everywhere (it would equal "no tenant"
    /// on some backends and not on others).
    #[error("an empty tenant id is not allowed; use no tenant (`None`) instead")]
    Empty,
    /// Inside `scope`'s tenant scope, a message named tenant `named`.
    #[error(
        "inside tenant `{scope}`'s scope a message names tenant `{named}`; \
         cross tenants only from a system scope (`RequestContext::system()`)"
    )]
    CrossTenant {
        /// The tenant of the scope.
        scope: String,
        /// The tenant the message named.
        named: String,
    },
}

/// Every problem `App::build()` found, reported together.
#[derive(Debug, Default)]
pub struct BuildError {
    /// Each problem, in the order they were found.
    pub problems: Vec<BuildProblem>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the application is not wired correctly ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("):")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl StdError for BuildError {}

/// One wiring problem found by `App::build()`: what only the running program can know
/// (registrations from every linked crate, the values given to the builder). Types are
/// named by their Rust paths, messages by their stored names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildProblem {
    /// Two event types share one stored name.
    #[error("event name `{name}` is used by {}; give each a unique `#[event(name = \"..\")]`", join(.types))]
    DuplicateEventName {
        /// The stored name.
        name: &'static str,
        /// The event types using it, sorted.
        types: Vec<&'static str>,
    },
    /// Two aggregate types share one stream type.
    #[error("aggregate name `{name}` is used by {}; give each a unique `#[aggregate(name = \"..\")]`", join(.types))]
    DuplicateAggregateName {
        /// The stream type.
        name: &'static str,
        /// The aggregate types using it, sorted.
        types: Vec<&'static str>,
    },
    /// An aggregate lists an event no `#[event]` registers.
    #[error("aggregate `{aggregate}` lists event `{event}`, which is not registered")]
    AggregateEventNotRegistered {
        /// The aggregate's stream type.
        aggregate: &'static str,
        /// The stored name of the event.
        event: &'static str,
    },
    /// Two command types share one stored name, so sending by name could not tell them
    /// apart.
    #[error("command name `{name}` is used by {}; give each a unique `#[command(name = \"..\")]`", join(.types))]
    DuplicateCommandName {
        /// The stored name.
        name: &'static str,
        /// The command types using it, sorted (a type without `#[command]` is described,
        /// not named).
        types: Vec<&'static str>,
    },
    /// A command has two handlers.
    #[error(
        "command `{command}` has two handlers: `{first}` and `{second}`{}; keep one",
        if *.first_by_macro { " (registered by hand)" } else { "" }
    )]
    DuplicateCommandHandler {
        /// The command's stored name.
        command: &'static str,
        /// The handler found first.
        first: &'static str,
        /// The handler registered by hand with `AppBuilder::command_handler`.
        second: &'static str,
        /// Whether `first` is a `#[command_handler]` (or an aggregate's `#[handle]`)
        /// rather than another handler registered by hand.
        first_by_macro: bool,
    },
    /// Two query types share one stored name.
    #[error("query name `{name}` is used by {types} types; give each a unique `#[query(name = \"..\")]`")]
    DuplicateQueryName {
        /// The stored name.
        name: &'static str,
        /// How many query types use it.
        types: usize,
    },
    /// A handler takes `Dep<T>` and no `T` was provided.
    #[error("`{handler}` needs `Dep<{dependency}>`, which was never provided; add `.provide(..)` to `App::builder()`")]
    MissingDependency {
        /// The handler.
        handler: &'static str,
        /// The type of the missing value.
        dependency: &'static str,
    },
    /// An event handler handles a type no `#[event]` registers.
    #[error("event handler `{handler}` handles `{event}`, which is not registered; mark it with `#[event]`")]
    HandledEventNotRegistered {
        /// The handler.
        handler: &'static str,
        /// The stored name of the event.
        event: &'static str,
    },
    /// Two upcasters start from one schema version of one event.
    #[error("event `{event}` has two upcasters from schema version {from}: `{first}` and `{second}`; keep one")]
    DuplicateUpcaster {
        /// The stored name of the event.
        event: &'static str,
        /// The schema version both read.
        from: u32,
        /// The upcaster kept.
        first: &'static str,
        /// The other one.
        second: &'static str,
    },
    /// An upcaster writes a schema version newer than the event's.
    #[error("upcaster `{upcaster}` turns `{event}` into schema version {to}, but the event is at version {current}")]
    UpcasterPastCurrentVersion {
        /// The upcaster.
        upcaster: &'static str,
        /// The stored name of the event.
        event: &'static str,
        /// The version it writes.
        to: u32,
        /// The event's current version.
        current: u32,
    },
    /// An upcaster is for an event no `#[event]` registers.
    #[error("upcaster `{upcaster}` is for event `{event}`, which is not registered with `#[event]`")]
    UpcastedEventNotRegistered {
        /// The upcaster.
        upcaster: &'static str,
        /// The stored name of the event.
        event: &'static str,
    },
    /// Two saga types share one stored name.
    #[error("saga name `{name}` is used by {}; give each a unique `#[saga(name = \"..\")]`", join(.types))]
    DuplicateSagaName {
        /// The stored name.
        name: &'static str,
        /// The saga types using it, sorted.
        types: Vec<&'static str>,
    },
    /// Sagas are registered and the event store was given, but saga instances or their
    /// deadlines would be kept in memory (and lost on restart).
    #[error(
        "sagas are registered and the event store is not the in-memory one, but saga instances or \
         deadlines would be kept in memory; add `.sagas_on(store.clone())` (or `.saga_store(..)` and \
         `.schedule_store(..)`)"
    )]
    SagaStateInMemory {
        /// The stored names of the registered sagas, sorted.
        sagas: Vec<&'static str>,
    },
    /// Snapshot policies are set without a snapshot store.
    #[error("snapshot policies are set but no snapshot store; add `.snapshot_store(..)`")]
    SnapshotPolicyWithoutStore {
        /// The stream types of the aggregates with a policy, sorted.
        aggregates: Vec<&'static str>,
    },
    /// Asynchronous event handlers or sagas are registered, and the event store keeps no
    /// outbox to hand their events over: they would never run.
    #[error(
        "{} run after the commit, through the outbox, and the event store keeps none; \
         use an event store that is also an outbox (every store of cqrs-ddd is) or add `.outbox(..)`",
        join(.handlers)
    )]
    AsyncHandlersWithoutOutbox {
        /// The asynchronous handlers and saga steps, sorted.
        handlers: Vec<&'static str>,
    },
    /// Two job types share one stored name.
    #[error("job name `{name}` is used by {}; give each a unique `#[job(name = \"..\")]`", join(.types))]
    DuplicateJobName {
        /// The stored name.
        name: &'static str,
        /// The job types using it, sorted.
        types: Vec<&'static str>,
    },
    /// Job types are registered and the event store keeps no jobs: they could never be
    /// enqueued atomically with a command, nor run.
    #[error(
        "jobs {} need a job store and the event store keeps none; use an event store that keeps jobs \
         (every store of cqrs-ddd does)",
        join(.jobs)
    )]
    JobsWithoutStore {
        /// The stored names of the job types, sorted.
        jobs: Vec<&'static str>,
    },
    /// Projections are registered and there is no document store to keep them in.
    #[error(
        "projections {} need a document store for their read models and checkpoints; add `.read_models(store)` \
         (the SQL stores are one)",
        join(.projections)
    )]
    ProjectionsWithoutReadModels {
        /// The projections' names, sorted.
        projections: Vec<&'static str>,
    },
}

/// `` at `path` `` or nothing.
fn at(path: Option<&str>) -> String {
    path.map(|p| format!(" at `{p}`")).unwrap_or_default()
}

/// `` `a` and `b` ``.
fn join(items: &[&str]) -> String {
    items.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" and ")
}
