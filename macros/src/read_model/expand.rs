use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{FieldIr, Filter, OpRef, ReadModelIr};

/// The fields struct, outside the hidden block so users can name it, and the impls.
pub(crate) fn expand(model: &ReadModelIr) -> TokenStream {
    let fields_struct = fields_struct(model);
    let handle = handle_impl(model);
    let field = field_impl(model);
    let read_model = model.collection.as_ref().map(|c| read_model_impl(model, c));
    let checks = model.fields.iter().flat_map(|f| op_checks(model, f));
    quote! {
        #fields_struct
        #[doc(hidden)]
        const _: () = {
            #handle
            #field
            #read_model
            #(#checks)*
        };
    }
}

/// A stand-in for a type the derive cannot read (an enum, a tuple struct): a JSON field,
/// so read models holding it do not fail a second time.
pub(crate) fn stub(input: &syn::DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let k = super::parse::krate(input);
    let ident = &input.ident;
    quote! {
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #k::spec::Field for #ident {
                type Handle = #k::spec::JsonField;
                const KIND: #k::spec::FieldKind = #k::spec::FieldKind::Any;
            }
        };
    }
}

/// `<T as Field>` for a field's type `T`.
struct AsField<'a> {
    model: &'a ReadModelIr,
    field: &'a FieldIr,
}

impl ToTokens for AsField<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let k = &self.model.krate;
        let ty = &self.field.ty;
        tokens.extend(quote!(<#ty as #k::spec::Field>));
    }
}

fn as_field<'a>(model: &'a ReadModelIr, field: &'a FieldIr) -> AsField<'a> {
    AsField { model, field }
}

/// Code that needs the field's type to implement `Field`, every token spanned on that
/// type: when it does not, each place reports the same error at the same span, and
/// rustc shows it once.
fn at_type(f: &FieldIr, tokens: TokenStream) -> TokenStream {
    respan(tokens, f.ty.span())
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            match &mut tt {
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                    group.set_span(span);
                    tt = TokenTree::Group(group);
                }
                other => other.set_span(span),
            }
            tt
        })
        .collect()
}

fn fields_struct(model: &ReadModelIr) -> TokenStream {
    let ReadModelIr { vis, ident, fields_ident, .. } = model;
    let doc = format!("The typed fields of [`{ident}`], each a handle at its path in the document.");
    let members = model.fields.iter().map(|f| {
        let member = &f.member;
        let ty = at_type(f, {
            let field = as_field(model, f);
            quote!(::core::mem::ManuallyDrop<#field::Handle>)
        });
        let doc = format!("`{}`.", f.name);
        quote!(#[doc = #doc] pub #member: #ty,)
    });
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = "A handle is `Copy` and holds no memory to drop: each is in a `ManuallyDrop` only so that a field type without `Field` is reported once, at the field."]
        #vis struct #fields_ident {
            #(#members)*
            __cqrs_ddd_path: &'static ::core::primitive::str,
        }
    }
}

fn handle_impl(model: &ReadModelIr) -> TokenStream {
    let ReadModelIr { krate: k, ident, fields_ident, .. } = model;
    let p = quote!(#k::__private);
    let spec = quote!(#k::spec);
    let inits = model.fields.iter().map(|f| {
        let (member, name, field) = (&f.member, &f.name, as_field(model, f));
        at_type(
            f,
            quote!(#member: ::core::mem::ManuallyDrop::new(#field::handle(#p::field_path(__cqrs_ddd_path, #name))),),
        )
    });
    let what = format!("a nested read model (`{ident}`), filtered by its own fields");
    // What rustc would otherwise answer with `Iterator`'s methods ("is not an iterator").
    let refusals = ["eq", "ne", "gt", "lt", "ge", "le", "all"].map(|name| {
        let method = syn::Ident::new(name, Span::call_site());
        quote! {
            #[doc(hidden)]
            pub fn #method<V: #p::ObjectIsNotCompared>(&self, value: V) -> #spec::Spec {
                value.refuse()
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #spec::FieldHandle for #fields_ident {
            const OPS: &'static [#spec::Op] = &[#spec::Op::IsNull, #spec::Op::IsNotNull];
            const WHAT: &'static ::core::primitive::str = #what;

            fn at(__cqrs_ddd_path: #p::String) -> Self {
                let __cqrs_ddd_path = #p::intern(__cqrs_ddd_path);
                #fields_ident { #(#inits)* __cqrs_ddd_path }
            }
        }

        #[automatically_derived]
        impl #fields_ident {
            /// The path of this object in the document (empty at the document's root).
            pub fn path(&self) -> &'static ::core::primitive::str {
                self.__cqrs_ddd_path
            }

            /// The object is missing or null.
            pub fn is_null(&self) -> #spec::Spec {
                #spec::Spec::unary(self.__cqrs_ddd_path, #spec::Op::IsNull)
            }

            /// The object is there.
            pub fn is_not_null(&self) -> #spec::Spec {
                #spec::Spec::unary(self.__cqrs_ddd_path, #spec::Op::IsNotNull)
            }

            #(#refusals)*
        }
    }
}

fn field_impl(model: &ReadModelIr) -> TokenStream {
    let ReadModelIr { krate: k, ident, fields_ident, .. } = model;
    let p = quote!(#k::__private);
    let spec = quote!(#k::spec);
    let allow = model.fields.iter().map(|f| allow_entries(model, f));
    let indexes = model.indexes.iter().filter_map(|index| {
        let mut fields = index.fields.iter().map(|i| &model.fields[*i]);
        let first = index_key(model, fields.next()?);
        let rest = fields.map(|f| index_key(model, f));
        Some(quote!(__cqrs_ddd_out.push(#spec::Index::on #first #(.then #rest)*);))
    });
    let flagged = model.fields.iter().filter(|f| f.index).map(|f| {
        let key = index_key(model, f);
        quote!(__cqrs_ddd_out.push(#spec::Index::on #key);)
    });
    let nested = model.fields.iter().map(|f| {
        let (field, name) = (as_field(model, f), &f.name);
        at_type(f, quote!(#field::__cqrs_ddd_indexes(&#p::field_path(__cqrs_ddd_prefix, #name), __cqrs_ddd_out);))
    });
    quote! {
        #[automatically_derived]
        impl #spec::Field for #ident {
            type Handle = #fields_ident;
            const KIND: #spec::FieldKind = #spec::FieldKind::Any;

            fn __cqrs_ddd_allow(
                __cqrs_ddd_prefix: &::core::primitive::str,
                __cqrs_ddd_in_list: ::core::primitive::bool,
                __cqrs_ddd_list: #spec::AllowList,
            ) -> #spec::AllowList {
                #(#allow)*
                __cqrs_ddd_list
            }

            fn __cqrs_ddd_indexes(
                __cqrs_ddd_prefix: &::core::primitive::str,
                __cqrs_ddd_out: &mut #p::Vec<#spec::Index>,
            ) {
                #(#indexes)*
                #(#flagged)*
                #(#nested)*
            }
        }
    }
}

/// `(path, kind)` of a field in an index.
fn index_key(model: &ReadModelIr, f: &FieldIr) -> TokenStream {
    let k = &model.krate;
    let (field, name) = (as_field(model, f), &f.name);
    at_type(f, quote!((#k::__private::field_path(__cqrs_ddd_prefix, #name), #field::KIND)))
}

/// The allow-list entries of one field: its flags, then those of its type under its path.
fn allow_entries(model: &ReadModelIr, f: &FieldIr) -> TokenStream {
    let k = &model.krate;
    let p = quote!(#k::__private);
    let name = &f.name;
    let field = as_field(model, f);
    let path = quote!(#p::Clone::clone(&__cqrs_ddd_path));
    let filter = f.filter.as_ref().map(|filter| match filter {
        Filter::Any => quote!(let __cqrs_ddd_list = __cqrs_ddd_list.filter(#path);),
        Filter::Only(ops) => {
            let ops = ops.iter().map(|o| {
                let variant = &o.variant;
                quote!(#k::spec::Op::#variant)
            });
            quote!(let __cqrs_ddd_list = __cqrs_ddd_list.filter_with(#path, [#(#ops),*]);)
        }
    });
    // A list has no single value to order by or select.
    let sort = f.sort.then(|| {
        quote! {
            let __cqrs_ddd_list =
                if __cqrs_ddd_in_list { __cqrs_ddd_list } else { __cqrs_ddd_list.sort_kind(#path, #field::KIND) };
        }
    });
    let select = f.select.then(|| {
        quote! {
            let __cqrs_ddd_list = if __cqrs_ddd_in_list { __cqrs_ddd_list } else { __cqrs_ddd_list.select(#path) };
        }
    });
    at_type(
        f,
        quote! {
            let __cqrs_ddd_list = {
                let __cqrs_ddd_path = #p::field_path(__cqrs_ddd_prefix, #name);
                #filter
                #sort
                #select
                #field::__cqrs_ddd_allow(&__cqrs_ddd_path, __cqrs_ddd_in_list, __cqrs_ddd_list)
            };
        },
    )
}

fn read_model_impl(model: &ReadModelIr, collection: &syn::LitStr) -> TokenStream {
    let ReadModelIr { krate: k, ident, fields_ident, .. } = model;
    let p = quote!(#k::__private);
    let spec = quote!(#k::spec);
    let owner = model.owner.as_ref().map(|o| quote!(let __cqrs_ddd_allow = __cqrs_ddd_allow.owned_by(#o);));
    let tenant = model.tenant_required.then(|| quote!(let __cqrs_ddd_allow = __cqrs_ddd_allow.tenant_required();));
    quote! {
        #[automatically_derived]
        impl #spec::ReadModel for #ident {
            const COLLECTION: &'static ::core::primitive::str = #collection;
            type Fields = #fields_ident;

            fn fields() -> #fields_ident {
                <#fields_ident as #spec::FieldHandle>::at(#p::String::new())
            }

            fn allow_list() -> #spec::AllowList {
                let __cqrs_ddd_allow = <#ident as #spec::Field>::__cqrs_ddd_allow("", false, #spec::AllowList::new());
                #owner
                #tenant
                __cqrs_ddd_allow
            }

            fn indexes() -> #p::Vec<#spec::Index> {
                let mut __cqrs_ddd_out = #p::Vec::new();
                <#ident as #spec::Field>::__cqrs_ddd_indexes("", &mut __cqrs_ddd_out);
                __cqrs_ddd_out
            }
        }
    }
}

/// One constant per operator of `filter(..)`: evaluating it fails, with a message naming
/// the field, the operator and what the field holds, when the operator does not fit.
fn op_checks<'a>(model: &'a ReadModelIr, f: &'a FieldIr) -> impl Iterator<Item = TokenStream> + 'a {
    let ops: &[OpRef] = match &f.filter {
        Some(Filter::Only(ops)) => ops,
        _ => &[],
    };
    ops.iter().map(move |op| {
        let k = &model.krate;
        let p = quote!(#k::__private);
        let handle = {
            let field = as_field(model, f);
            at_type(f, quote!(<#field::Handle as #k::spec::FieldHandle>))
        };
        let head = format!("`filter({})` does not fit `{}`, ", op.method, f.member);
        let variant = &op.variant;
        let panic = quote_spanned! {op.span=>
            ::core::panic!("{}", #p::refusal_text(&__CQRS_DDD_MESSAGE))
        };
        quote! {
            const _: () = {
                const __CQRS_DDD_HEAD: &::core::primitive::str = #head;
                const __CQRS_DDD_LEN: ::core::primitive::usize =
                    #p::refusal_len(__CQRS_DDD_HEAD, #handle::WHAT, #handle::OPS);
                const __CQRS_DDD_MESSAGE: [::core::primitive::u8; __CQRS_DDD_LEN] =
                    #p::refusal(__CQRS_DDD_HEAD, #handle::WHAT, #handle::OPS);
                if !#p::op_fits(#handle::OPS, #k::spec::Op::#variant) {
                    #panic
                }
            };
        }
    })
}
