/// A `#[query]` type.
pub(crate) struct QueryModel {
    pub(crate) krate: syn::Path,
    pub(crate) ident: syn::Ident,
    pub(crate) name: syn::LitStr,
}
