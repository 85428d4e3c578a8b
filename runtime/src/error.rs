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
    /// `App::build()` found problems in the registries; every one is listed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A message was rejected before it reached its handler.
    #[error("invalid {message}: {reason}")]
    Validation {
        /// The message type.
        message: &'static str,
        /// Why it was rejected.
        reason: String,
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
        at: Option<crate::ports::Cursor>,
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
    /// A message known only by its stored name whose payload does not decode into its type.
    #[error("cannot decode {kind} `{name}` from its stored payload: {reason}")]
    Decode {
        /// `command`.
        kind: &'static str,
        /// The stored name.
        name: String,
        /// What serde said, or why the type cannot be decoded at all.
        reason: String,
    },
}

impl Error {
    /// Wraps a domain error, keeping its type for [`Error::domain_error`].
    pub fn domain<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        Error::Domain(DomainError::new(error))
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
        matches!(self, Error::Conflict { .. } | Error::Store(_) | Error::Connect { .. } | Error::UnitOfWorkClosed(_))
    }
}

/// A domain error with its concrete type preserved.
pub struct DomainError {
    inner: Box<dyn StdError + Send + Sync>,
    type_name: &'static str,
}

impl DomainError {
    /// Wraps `error`.
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        DomainError { inner: Box::new(error), type_name: std::any::type_name::<E>() }
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
        f.debug_struct("DomainError").field("type", &self.type_name).field("error", &self.inner).finish()
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
    /// One line per problem.
    pub problems: Vec<String>,
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
