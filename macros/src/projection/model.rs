/// The impl block and what its markers say.
pub(crate) struct ProjectionImpl {
    pub(crate) krate: syn::Path,
    pub(crate) self_ty: syn::Type,
    pub(crate) name: syn::LitStr,
    /// The impl block with the markers removed.
    pub(crate) item: syn::ItemImpl,
    pub(crate) handlers: Vec<OnFn>,
    pub(crate) reset: Option<syn::Ident>,
    /// `prefetch = "collection"`: documents keyed by stream id, loaded per batch.
    pub(crate) prefetch: Option<syn::LitStr>,
}

/// An `#[on]` method.
pub(crate) struct OnFn {
    pub(crate) method: syn::Ident,
    pub(crate) event: syn::Type,
    /// Takes `&Envelope<E>` (else `&E`).
    pub(crate) envelope: bool,
    /// Takes the transaction as its last argument.
    pub(crate) takes_tx: bool,
}
