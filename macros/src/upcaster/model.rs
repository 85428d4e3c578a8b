use proc_macro2::TokenStream;
use syn::ItemFn;

/// An `#[upcaster]` function.
pub(crate) struct Upcaster {
    pub(crate) krate: syn::Path,
    pub(crate) item: ItemFn,
    /// `<T as Event>::NAME` or a string literal.
    pub(crate) event: TokenStream,
    pub(crate) from: u32,
    pub(crate) to: u32,
}
