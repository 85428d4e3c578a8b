//! `#[projection]` on an impl block: `#[on]` methods receive typed envelopes and a
//! `&mut ProjectionTx`; an optional `#[reset]` method drops the read model for rebuilds.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::common::{fallback, wrong_item};

pub(crate) fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(imp) = syn::parse2::<syn::ItemImpl>(item.clone()) else {
        return fallback(item.clone(), &wrong_item("projection", "an impl block with `#[on]` methods", &item));
    };
    let (model, errors) = parse::parse(args, imp);
    let expanded = expand::expand(&model);
    match errors.finish(()) {
        Ok(()) => expanded,
        Err(e) => fallback(model.item.to_token_stream(), &e),
    }
}

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
