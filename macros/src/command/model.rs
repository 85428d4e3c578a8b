use syn::{Ident, LitStr, Member, Path, Type};

/// A `#[command]` type.
pub(crate) struct CommandModel {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    pub(crate) name: LitStr,
    pub(crate) response: Option<Type>,
    /// Set for commands an aggregate handles.
    pub(crate) target: Option<Target>,
    /// An aggregate is named but the route is wrong (reported): a stub handler keeps the
    /// mistake from being reported again at every `send`.
    pub(crate) stub_handler: bool,
    /// `lock = [..]`: the fields naming the resources to lock.
    pub(crate) lock: Vec<syn::Ident>,
    /// The aggregate whose stored name is the kind of the locked resources.
    pub(crate) lock_kind: Option<Type>,
    /// `validate`: its key, when given.
    pub(crate) validate: Option<Ident>,
}

/// The aggregate a command is routed to, and the field holding its id.
pub(crate) struct Target {
    pub(crate) aggregate: Type,
    pub(crate) id_field: Member,
    pub(crate) id_ty: Type,
}
