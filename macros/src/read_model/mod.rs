//! `#[derive(ReadModel)]`: a struct of typed field handles (`{Type}Fields`), the `Field`
//! impl that nests the type in other read models, and with `collection = ".."` the
//! `ReadModel` impl (collection, fields, allow-list, indexes).

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::fallback;

pub(crate) fn read_model(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    if let Err(e) = parse::item(&input) {
        return fallback(expand::stub(&input), &e);
    }
    let (model, errors) = parse::parse(&input);
    errors.emit_with(expand::expand(&model))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::model::Filter;
    use super::parse;
    use crate::common::Errors;

    fn messages(errors: Errors) -> Vec<String> {
        errors.finish(()).err().map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
    }

    fn read(tokens: proc_macro2::TokenStream) -> (super::model::ReadModelIr, Vec<String>) {
        let input: syn::DeriveInput = syn::parse2(tokens).expect("an item");
        parse::item(&input).expect("a struct with named fields");
        let (model, errors) = parse::parse(&input);
        (model, messages(errors))
    }

    #[test]
    fn options_and_serde_names_become_the_model() {
        let (model, errors) = read(quote! {
            #[serde(rename_all = "camelCase")]
            #[read_model(collection = "books", index(status, copies_left))]
            #[read_model(index(title))]
            struct Book {
                #[read_model(filter, sort, select)]
                title: String,
                #[serde(rename = "state")]
                #[read_model(filter(eq, in_))]
                status: String,
                #[read_model(index)]
                copies_left: u32,
                #[read_model(skip)]
                cache: Cache,
                #[serde(skip_serializing)]
                scratch: Cache,
            }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(model.fields_ident, "BookFields");
        assert_eq!(model.collection.map(|c| c.value()).as_deref(), Some("books"));
        let names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["title", "state", "copiesLeft"]);
        assert!(matches!(&model.fields[1].filter, Some(Filter::Only(ops)) if ops.len() == 2 && ops[1].variant == "In"));
        assert!(matches!(model.fields[0].filter, Some(Filter::Any)) && model.fields[0].sort && model.fields[0].select);
        assert!(model.fields[2].index);
        let indexes: Vec<&[usize]> = model.indexes.iter().map(|i| i.fields.as_slice()).collect();
        assert_eq!(indexes, [&[1, 2][..], &[0]]);
    }

    #[test]
    fn every_mistake_is_reported_once_with_a_way_out() {
        let (model, errors) = read(quote! {
            #[read_model(collection = "books", index(stauts), index(cache), index(title, title), index(copies))]
            struct Book {
                #[read_model(filter(eq, lik, in))]
                title: String,
                status: String,
                #[read_model(skip, filter)]
                cache: Cache,
                #[read_model(index)]
                copies: u32,
                #[serde(rename = "title")]
                other: String,
                #[serde(rename = "a.b")]
                dotted: String,
                #[serde(flatten)]
                audit: Audit,
            }
        });
        assert_eq!(
            errors,
            [
                "unknown operator `lik` in `filter(..)`; did you mean `like`?",
                "unknown operator `in` in `filter(..)`; did you mean `in_`?",
                "`filter` does not apply to `cache`: it is marked `#[read_model(skip)]`, so it has no handle; remove one of the two",
                "`dotted` is stored as `a.b`, which cannot be a field path segment: a name is letters, digits, `_` and `-`",
                "`#[serde(flatten)]` is not supported by `ReadModel` yet; declare the flattened fields in `audit`'s place, or mark it `#[read_model(skip)]`",
                "`title` and `other` are both stored as `title`; give one of them another name with `#[serde(rename = \"..\")]`",
                "unknown field `stauts` in `index(..)`; did you mean `status`?",
                "`cache` is skipped, so it has no handle and cannot be indexed; remove it from `index(..)`",
                "`title` is named twice in this `index(..)`; keep one",
                "this index is declared twice (here and by another `index`); keep one",
            ]
        );
        // What could be read is still generated, so uses of it do not fail again.
        assert_eq!(model.fields.len(), 5);
        assert!(matches!(&model.fields[0].filter, Some(Filter::Only(ops)) if ops.len() == 1));
        assert!(model.indexes.is_empty());
    }

    #[test]
    fn items_the_derive_cannot_read_are_one_error_each() {
        for (item, expected) in [
            (
                quote!(
                    enum Status {
                        A,
                    }
                ),
                "not on an enum",
            ),
            (
                quote!(
                    struct Book(String);
                ),
                "not on a tuple struct",
            ),
            (
                quote!(
                    struct Book;
                ),
                "not on a unit struct",
            ),
            (quote!(union U { a: u8 }), "not on a union"),
            (
                quote!(
                    struct Book<T> {
                        t: T,
                    }
                ),
                "generic type",
            ),
            (
                quote!(
                    struct Book
                    where
                        String: Clone,
                    {
                        t: String,
                    }
                ),
                "generic type",
            ),
        ] {
            let input: syn::DeriveInput = syn::parse2(item).expect("an item");
            let error = parse::item(&input).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
        }
        let transparent = read(quote!(
            #[serde(transparent)]
            struct Isbn {
                text: String,
            }
        ))
        .1;
        assert!(transparent[0].contains("`#[serde(transparent)]`"), "{transparent:?}");
    }

    #[test]
    fn hostile_arguments_are_errors_not_panics() {
        for args in ["index(), crate = 3", "index(a b)", "collection = 1", "collection(x)"] {
            let args: proc_macro2::TokenStream = args.parse().expect("tokens");
            let output = super::read_model(quote!(
                #[read_model(#args)]
                struct Book {
                    a: String,
                }
            ))
            .to_string();
            assert!(output.contains("compile_error"), "{args} was accepted: {output}");
        }
        for args in [
            "filter = 1",
            "filter()",
            "filter(1, 2)",
            "filter(eq,,)",
            "sort = x",
            "index(a)",
            "skip(1)",
            "= =",
            "collection",
            "#",
            "filter(eq) sort",
        ] {
            let args: proc_macro2::TokenStream = args.parse().expect("tokens");
            let item = quote! {
                #[read_model(collection = "c")]
                struct Book {
                    #[read_model(#args)]
                    title: String,
                }
            };
            let output = super::read_model(item).to_string();
            assert!(output.contains("compile_error"), "{args} was accepted: {output}");
        }
    }
}
