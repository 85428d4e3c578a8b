use syn::{Ident, ItemImpl, LitStr, Path, Type, Visibility};

/// `#[aggregate(..)]` on a struct or enum.
pub(crate) struct AggregateStruct {
    pub(crate) krate: Path,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// The stream type.
    pub(crate) name: LitStr,
    pub(crate) id: Type,
    pub(crate) error: Type,
    pub(crate) events: Vec<EventRef>,
    /// The generated event enum.
    pub(crate) event_enum: Ident,
    pub(crate) state_stored: bool,
    /// `on_conflict = merge(..)`.
    pub(crate) on_conflict: Option<super::merge::Merge>,
}

/// One entry of `events(..)`.
pub(crate) struct EventRef {
    pub(crate) ty: Type,
    /// The enum variant: the last segment of the path.
    pub(crate) variant: Ident,
}

/// `#[aggregate]` on the impl block.
pub(crate) struct AggregateImpl {
    pub(crate) krate: Path,
    pub(crate) self_ty: Type,
    /// The impl block with the `#[handle]`/`#[apply]` markers removed.
    pub(crate) item: ItemImpl,
    pub(crate) handles: Vec<HandleFn>,
    pub(crate) applies: Vec<ApplyFn>,
    pub(crate) deadlines: Vec<DeadlineFn>,
}

/// When a `#[handle]` method may run.
#[derive(Clone, Copy)]
pub(crate) enum Policy {
    MustExist,
    Create,
    CreateIfMissing,
}

/// A `#[handle]` method.
pub(crate) struct HandleFn {
    pub(crate) method: Ident,
    pub(crate) command: Type,
    /// Whether it takes `&Command` (otherwise the command is cloned).
    pub(crate) by_ref: bool,
    pub(crate) policy: Policy,
    /// Whether it takes `&mut Deadlines<Self>` after the command.
    pub(crate) deadlines: bool,
    /// The method has a mistake (reported); only a stub impl is generated.
    pub(crate) stub: bool,
}

/// A `#[deadline]` method.
pub(crate) struct DeadlineFn {
    pub(crate) method: Ident,
    /// The deadline's name: the method's, or `name = ".."`.
    pub(crate) name: LitStr,
    /// What the deadline carries (the method takes it by reference).
    pub(crate) payload: Type,
    /// Whether it takes `&mut Deadlines<Self>` after the payload.
    pub(crate) deadlines: bool,
    /// The method has a mistake (reported); only a stub impl is generated.
    pub(crate) stub: bool,
    /// Another `#[deadline]` has its name or payload (reported): nothing is generated.
    pub(crate) duplicate: bool,
}

/// An `#[apply]` method.
pub(crate) struct ApplyFn {
    pub(crate) method: Ident,
    pub(crate) event: Type,
    /// The method has a mistake (reported); only a stub impl is generated.
    pub(crate) stub: bool,
}
