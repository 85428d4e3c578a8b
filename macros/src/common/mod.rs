//! Helpers shared by every macro.

pub(crate) mod errors;
pub(crate) mod markers;
pub(crate) mod options;
pub(crate) mod signature;

pub(crate) use errors::{Errors, fallback};
pub(crate) use options::Arg;

use syn::{GenericArgument, PathArguments, Type};

/// The last path segment of a type, with its generic arguments (`a::Dep<T>` → `Dep`, `[T]`).
pub(crate) fn last_segment(ty: &Type) -> Option<(&syn::Ident, Vec<&Type>)> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let seg = p.path.segments.last()?;
    let args = match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((&seg.ident, args))
}

/// `Name<T>` → `T` when the last segment is `name` with exactly one type argument.
pub(crate) fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    match last_segment(ty) {
        Some((ident, args)) if ident == name && args.len() == 1 => Some(args[0]),
        _ => None,
    }
}

/// Whether the last segment of a path type is `name`.
pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    matches!(last_segment(ty), Some((ident, _)) if ident == name)
}

/// The error for an item of the wrong kind.
pub(crate) fn wrong_item(macro_name: &str, expected: &str, item: &proc_macro2::TokenStream) -> syn::Error {
    syn::Error::new_spanned(first_tokens(item), format!("`#[{macro_name}]` goes on {expected}"))
}

/// The first few tokens of an item (its keyword and name), a readable span.
fn first_tokens(item: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    item.clone()
        .into_iter()
        .skip_while(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == '#'))
        .skip_while(|t| matches!(t, proc_macro2::TokenTree::Group(_)))
        .take(3)
        .collect()
}

/// Rejects generics: registration needs one concrete type.
pub(crate) fn no_generics(errors: &mut Errors, generics: &syn::Generics, macro_name: &str, what: &str) {
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        errors.spanned(
            generics,
            format!(
                "`#[{macro_name}]` cannot be used on a generic {what}: it is registered by name for the whole program; use a concrete type"
            ),
        );
    }
}

/// The options of `#[macro]` on an impl block: only `crate = ..`.
#[derive(Default, darling::FromMeta)]
#[darling(default)]
struct ImplOptions {
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// Reads `#[macro_name(..)]` on an impl block, which takes only `crate = ..`; anything
/// else is one error on the impl's type saying where it belongs (`elsewhere`).
pub(crate) fn impl_block_options(
    errors: &mut Errors,
    macro_name: &str,
    args: proc_macro2::TokenStream,
    self_ty: &Type,
    elsewhere: &str,
) -> syn::Path {
    let mut own = Errors::default();
    let opts: ImplOptions = options::parse(macro_name, args, &mut own);
    if own.has_errors() {
        errors.spanned(
            self_ty,
            format!("on an impl block `#[{macro_name}]` takes no arguments (except `crate = ..`); {elsewhere}"),
        );
    }
    options::krate(opts.krate)
}

/// The error for `#[macro_name]` on a trait impl: it goes on the inherent impl block.
pub(crate) fn not_on_trait_impl(errors: &mut Errors, item: &syn::ItemImpl, macro_name: &str) {
    if let Some((path, _)) = &item.trait_ {
        let ty = quote::ToTokens::to_token_stream(&item.self_ty);
        errors.spanned(
            path,
            format!("`#[{macro_name}]` goes on the inherent impl block (`impl {ty} {{ .. }}`), not on a trait impl"),
        );
    }
}

/// What `#[command(validate)]` and `#[query(validate)]` add: the `validate` method of
/// their trait (`Command` or `Query`), running the type's `garde::Validate` derive with
/// every failing field reported, and a local trait through which it is called, so a
/// type without the derive is one error at the `validate` key saying what to add.
pub(crate) fn validate_method(
    krate: &syn::Path,
    key: &syn::Ident,
    message_trait: &str,
) -> (proc_macro2::TokenStream, proc_macro2::TokenStream) {
    let attribute = message_trait.to_lowercase();
    let message = format!("`#[{attribute}(validate)]` needs `#[derive(garde::Validate)]` on `{{Self}}`");
    let note = format!(
        "add `#[derive(garde::Validate)]` with a `#[garde(..)]` rule (or `#[garde(skip)]`) on each field, and `garde` to the dependencies; or drop `validate` from `#[{attribute}(..)]`"
    );
    let message_trait = syn::Ident::new(message_trait, key.span());
    let checker = quote::quote! {
        #[diagnostic::on_unimplemented(message = #message, label = "no `garde::Validate` for this type", note = #note)]
        trait __CqrsDddValidate {
            fn __cqrs_ddd_validate(&self) -> ::core::result::Result<(), ::garde::Report>;
        }
        #[diagnostic::do_not_recommend]
        impl<T: ::garde::Validate> __CqrsDddValidate for T
        where
            T::Context: ::core::default::Default,
        {
            fn __cqrs_ddd_validate(&self) -> ::core::result::Result<(), ::garde::Report> {
                ::garde::Validate::validate(self)
            }
        }
    };
    let method = quote::quote_spanned! { key.span() =>
        fn validate(&self) -> #krate::Result<()> {
            match __CqrsDddValidate::__cqrs_ddd_validate(self) {
                ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
                ::core::result::Result::Err(report) => ::core::result::Result::Err(#krate::Error::invalid(
                    <Self as #krate::#message_trait>::NAME,
                    report.iter().map(|(path, error)| {
                        (::std::string::ToString::to_string(path), ::std::string::ToString::to_string(error))
                    }),
                )),
            }
        }
    };
    (checker, method)
}
