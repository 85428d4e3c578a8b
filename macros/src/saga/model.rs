use proc_macro2::Span;
use syn::{Ident, ItemImpl, LitStr, Path, Type};

/// `#[saga(..)]` on the state struct.
pub(crate) struct SagaStruct {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    /// The stable name stored with every instance.
    pub(crate) name: LitStr,
    pub(crate) associate: DefaultAssociation,
    /// The struct is generic (reported): no `Saga` impl is generated.
    pub(crate) generic: bool,
}

/// What the struct says about steps that name no association of their own.
pub(crate) enum DefaultAssociation {
    /// `associate = field`: that field of every such step's event.
    Field(Ident),
    /// Nothing: such a step is a compile error (reported at the step).
    Missing,
    /// The struct's arguments have a reported mistake: such steps get a silent stub.
    Broken,
}

/// `#[saga]` on the impl block.
pub(crate) struct SagaImpl {
    pub(crate) krate: Path,
    pub(crate) self_ty: Type,
    /// The struct's name, for messages and handler names.
    pub(crate) ident: Ident,
    /// The hidden macro the struct's `#[saga]` defines next to it (see `expand`);
    /// `None` when the impl block is not one of a plain struct (reported), and then
    /// nothing is generated.
    pub(crate) bridge: Option<Path>,
    /// The impl block with the `#[step]` markers removed.
    pub(crate) item: ItemImpl,
    pub(crate) steps: Vec<StepFn>,
}

/// A `#[step(..)]` method.
pub(crate) struct StepFn {
    pub(crate) method: Ident,
    /// The event payload type; `None` when the parameter is malformed (reported), and
    /// then nothing is generated for the step.
    pub(crate) event: Option<Type>,
    /// Takes `&Envelope<E>` (else `&E`).
    pub(crate) envelope: bool,
    /// The user's return type, `None` for `()`; expected return types are checked there.
    pub(crate) output: Option<Type>,
    pub(crate) start: bool,
    pub(crate) association: Association,
    pub(crate) sends: Sends,
    /// The `tcc` key, when written (even if malformed), for the saga-wide TCC checks.
    pub(crate) tcc: Option<Span>,
    /// `tcc_begin`, with its span.
    pub(crate) tcc_begin: Option<Span>,
    /// `tcc_confirm`, with its span.
    pub(crate) tcc_confirm: Option<Span>,
    pub(crate) transition: Transition,
    pub(crate) codegen: Codegen,
    /// `arm = [..]`: the saga's deadlines this step arms, by method name.
    pub(crate) arms: Vec<Ident>,
    /// `disarm = [..]`: the saga's deadlines this step disarms.
    pub(crate) disarms: Vec<Ident>,
    /// A `#[deadline(after = ..)]` method: a step fired by time rather than by an event
    /// (`event` is `None`).
    pub(crate) timer: Option<Timer>,
}

/// What makes a `#[deadline]` method: its name and delay.
pub(crate) struct Timer {
    /// The method's name, the deadline's.
    pub(crate) name: String,
    /// `after`, in milliseconds.
    pub(crate) after: u64,
}

/// What is generated for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codegen {
    Full,
    /// The step has a reported mistake: a stub impl, so the mistake is reported once.
    Stub,
    /// Another step already handles this event: nothing.
    Duplicate,
}

/// Which saga instance a step's event belongs to.
pub(crate) enum Association {
    /// `associate = field`.
    Field(Ident),
    /// `by_correlation`: the envelope's correlation id.
    Correlation,
    /// Neither: the struct's `associate = ..`.
    Default,
}

/// The commands a step sends; each type keeps the user's tokens for spans.
#[allow(clippy::large_enum_variant, reason = "one per step, built once")]
pub(crate) enum Sends {
    Nothing,
    /// `send = C` (and `compensate = K`).
    One {
        command: Type,
        compensate: Option<Type>,
    },
    /// `send_all = [A, B]` (and `compensate = [KA, KB]`), sent at once.
    All {
        commands: Vec<Type>,
        compensate: Option<Vec<Type>>,
    },
    /// `tcc(try = T, confirm = C, cancel = K, deadline = "..")`.
    Tcc(Tcc),
}

/// A TCC try: sent now, confirmed or cancelled later.
pub(crate) struct Tcc {
    pub(crate) attempt: Type,
    pub(crate) confirm: Type,
    pub(crate) cancel: Type,
    /// In milliseconds.
    pub(crate) deadline: Option<u64>,
}

impl Sends {
    /// Every command type named, in order.
    pub(crate) fn commands(&self) -> Vec<&Type> {
        match self {
            Sends::Nothing => Vec::new(),
            Sends::One { command, compensate } => std::iter::once(command).chain(compensate).collect(),
            Sends::All { commands, compensate } => commands.iter().chain(compensate.iter().flatten()).collect(),
            Sends::Tcc(tcc) => vec![&tcc.attempt, &tcc.confirm, &tcc.cancel],
        }
    }
}

/// Where the saga goes after the step.
pub(crate) enum Transition {
    Continue,
    Complete,
    /// `suspend`, with `timeout` in milliseconds.
    Suspend(Option<u64>),
    Fail,
}
