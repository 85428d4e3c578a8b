use syn::{Ident, LitStr, Path, Type};

/// An `#[event]` type.
pub(crate) struct EventModel {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    /// The stored type name.
    pub(crate) name: LitStr,
    /// The payload schema version.
    pub(crate) version: u32,
    /// `undo = ..`, `redo = ..`, `undo_within = ".."`.
    pub(crate) undo: Option<UndoModel>,
}

/// How an event is undone (see `cqrs_ddd::undo`).
pub(crate) struct UndoModel {
    /// The command that undoes it.
    pub(crate) undo: Type,
    /// The command that redoes it.
    pub(crate) redo: Option<Type>,
    /// The undo window, in milliseconds.
    pub(crate) within_ms: Option<u64>,
}
