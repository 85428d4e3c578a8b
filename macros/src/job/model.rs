use syn::{Ident, LitStr, Path};

/// A `#[job]` type.
pub(crate) struct JobModel {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    /// The stored name.
    pub(crate) name: LitStr,
}
