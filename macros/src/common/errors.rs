use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects every error of one macro call, so all are reported at once.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(e) => e.combine(error),
            None => self.combined = Some(error),
        }
    }

    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn at(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.combined.is_some()
    }

    pub(crate) fn extend(&mut self, other: Errors) {
        if let Some(e) = other.combined {
            self.push(e);
        }
    }

    /// `Ok(value)` when nothing went wrong, else every error.
    #[cfg(test)]
    pub(crate) fn finish<T>(self, value: T) -> Result<T, syn::Error> {
        match self.combined {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// The user's item untouched plus the errors: one mistake does not cascade into many,
/// and rust-analyzer keeps seeing the item.
pub(crate) fn fallback(item: TokenStream, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote::quote! { #item #errors }
}

impl Errors {
    /// The expansion followed by every error: the macro still generates its code, so the
    /// mistake is reported once instead of again at every use of what it generates.
    pub(crate) fn emit_with(self, expanded: TokenStream) -> TokenStream {
        match self.combined {
            Some(e) => fallback(expanded, &e),
            None => expanded,
        }
    }

    /// `Err` with every error so far, when there are any.
    pub(crate) fn check(&mut self) -> Result<(), syn::Error> {
        match self.combined.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
