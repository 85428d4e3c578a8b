/// A `#[query]` type.
pub(crate) struct QueryModel {
    pub(crate) krate: syn::Path,
    pub(crate) ident: syn::Ident,
    pub(crate) name: syn::LitStr,
    /// `reads = [..]`: the projections whose read models the query reads.
    pub(crate) reads: Vec<syn::Type>,
    /// `validate`: its key, when given.
    pub(crate) validate: Option<syn::Ident>,
}
