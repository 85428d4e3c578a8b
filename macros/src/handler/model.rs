use syn::{Ident, ItemFn, Path, Type};

/// Which handler macro.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Command,
    Query,
    Event,
}

impl Kind {
    pub(crate) fn macro_name(self) -> &'static str {
        match self {
            Kind::Command => "command_handler",
            Kind::Query => "query_handler",
            Kind::Event => "event_handler",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Query => "query",
            Kind::Event => "event",
        }
    }

    pub(crate) fn context(self) -> &'static str {
        match self {
            Kind::Command => "CommandContext",
            Kind::Query => "QueryContext",
            Kind::Event => "EventContext",
        }
    }

    pub(crate) fn example(self) -> &'static str {
        match self {
            Kind::Command => "async fn transfer(cmd: Transfer, ctx: &mut CommandContext) -> Result<()>",
            Kind::Query => "async fn balance(q: GetBalance, ctx: &QueryContext) -> Result<u64>",
            Kind::Event => "async fn notify(e: &Envelope<Deposited>, mailer: Dep<Mailer>) -> Result<()>",
        }
    }
}

/// A parameter of the handler function, in declaration order.
pub(crate) enum Param {
    /// The command or query (by value) or the event (by reference).
    Message,
    /// The context; `shared` when taken as `&` rather than `&mut`.
    Context { shared: bool },
    /// An injected `Dep<T>`.
    Dep(Box<Type>),
}

/// An async function marked as a handler.
pub(crate) struct HandlerFn {
    pub(crate) krate: Path,
    pub(crate) kind: Kind,
    pub(crate) item: ItemFn,
    pub(crate) ident: Ident,
    /// The command/query type, or the event payload type.
    pub(crate) message: Type,
    /// For event handlers: whether the parameter is `&Envelope<E>` (else `&E`).
    pub(crate) envelope: bool,
    pub(crate) params: Vec<Param>,
    /// The `T` of `Result<T>`, when it could be read off the signature.
    pub(crate) ok_type: Option<Type>,
    /// `#[event_handler(async)]`: delivered through the outbox.
    pub(crate) asynchronous: bool,
}
