use darling::FromMeta;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Data, DeriveInput, Fields, LitStr, Member, Type};

use super::model::CommandModel;
use super::validate;
use crate::common::{Arg, Errors, markers, no_generics, options, wrong_item};

/// `#[command(..)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct CommandOptions {
    /// The aggregate that handles the command with a `#[handle]` method; the command's
    /// `#[id]` field names the instance.
    aggregate: Option<Arg<Type>>,
    /// What a successful `send` returns (`()` by default); for `#[command_handler]`s only.
    response: Option<Arg<Type>>,
    /// The stored name, for dispatch by name; the Rust type name by default.
    name: Option<Arg<LitStr>>,
    /// Fields naming the resources to lock (exclusively) around the command's unit of
    /// work, of the kind the aggregate's stored name gives (the command's name without an
    /// aggregate): `lock = [account, to_account]`.
    lock: Option<Arg<options::Types>>,
    /// Checks the command with its `garde::Validate` derive before anything runs.
    validate: Option<Arg<options::Word>>,
    /// The path of the runtime crate, when it is not `::cqrs_ddd`.
    #[darling(rename = "crate")]
    krate: Option<Arg<syn::Path>>,
}

/// Parses the command and returns it with the `#[id]` markers removed from its fields.
pub(crate) fn parse(args: TokenStream, item: &TokenStream) -> syn::Result<(CommandModel, TokenStream, Errors)> {
    let mut input: DeriveInput =
        syn::parse2(item.clone()).map_err(|_| wrong_item("command", "a struct or an enum", item))?;
    let mut errors = Errors::default();
    no_generics(&mut errors, &input.generics, "command", "type");
    errors.check()?;
    let opts: CommandOptions = options::parse("command", args, &mut errors);
    let response = opts.response.map(|a| a.value);
    let aggregate = opts.aggregate.map(|a| a.value);

    let ids = take_id_fields(&mut errors, &mut input);
    let named = aggregate.is_some();
    let target = validate::target(&mut errors, &input, aggregate, response.as_ref(), ids);
    let stub_handler = named && target.is_none();
    let ident = input.ident.clone();
    let name = opts.name.map_or_else(|| LitStr::new(&ident.to_string(), ident.span()), |a| a.value);
    let krate = options::krate(opts.krate);
    let lock = opts.lock.map(|a| validate::lock_fields(&mut errors, &input, a.value)).unwrap_or_default();
    let aggregate = target.as_ref().map(|t| t.aggregate.clone());
    Ok((
        CommandModel {
            krate,
            ident,
            name,
            response,
            target,
            stub_handler,
            lock,
            lock_kind: aggregate,
            validate: opts.validate.map(|a| a.key),
        },
        input.to_token_stream(),
        errors,
    ))
}

/// The fields marked `#[id]` (marker removed), with their member and type.
fn take_id_fields(errors: &mut Errors, input: &mut DeriveInput) -> Vec<(Member, syn::Type, proc_macro2::Span)> {
    let mut found = Vec::new();
    let mut visit = |fields: &mut Fields| {
        for (i, f) in fields.iter_mut().enumerate() {
            if markers::take_plain(errors, &mut f.attrs, "id") {
                let member = match &f.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(syn::Index::from(i)),
                };
                let span = f.ident.as_ref().map_or_else(|| syn::spanned::Spanned::span(&f.ty), syn::Ident::span);
                found.push((member, f.ty.clone(), span));
            }
        }
    };
    match &mut input.data {
        Data::Struct(s) => visit(&mut s.fields),
        Data::Enum(e) => {
            for v in &mut e.variants {
                visit(&mut v.fields);
            }
        }
        Data::Union(u) => errors.spanned(u.union_token, "`#[command]` goes on a struct or an enum, not a union"),
    }
    found
}
