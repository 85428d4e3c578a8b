use syn::{Ident, LitStr, Path};

/// An `#[event]` type.
pub(crate) struct EventModel {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    /// The stored type name.
    pub(crate) name: LitStr,
    /// The payload schema version.
    pub(crate) version: u32,
}
