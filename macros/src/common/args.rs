//! A parser for the `key = value, key(list), flag` arguments every macro takes.
//!
//! Values are parsed as types (so `response = Vec<u64>` works, which a `syn::Meta`
//! expression cannot hold) or literals. Unknown keys get a "did you mean", duplicate keys
//! and values of the wrong shape get a message naming the expected form.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, LitStr, Token, Type};

use super::errors::Errors;

pub(crate) enum Value {
    Flag,
    Lit(Lit),
    Type(Box<Type>),
    List(Vec<Type>),
}

pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.peek(Lit) { Value::Lit(input.parse()?) } else { Value::Type(Box::new(input.parse()?)) }
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let list = Punctuated::<Type, Token![,]>::parse_terminated(&content)?;
            Value::List(list.into_iter().collect())
        } else {
            Value::Flag
        };
        Ok(Arg { key, value })
    }
}

/// The arguments of one macro call, consumed key by key.
pub(crate) struct Args {
    macro_name: &'static str,
    args: Vec<Arg>,
    pub(crate) errors: Errors,
}

impl Args {
    /// Parses `tokens`; a syntax error is recorded and leaves no arguments.
    pub(crate) fn parse(macro_name: &'static str, tokens: TokenStream) -> Self {
        let mut errors = Errors::default();
        let parser = Punctuated::<Arg, Token![,]>::parse_terminated;
        let args = match parser.parse2(tokens) {
            Ok(list) => list.into_iter().collect(),
            Err(e) => {
                errors.at(
                    e.span(),
                    format!("malformed `#[{macro_name}(..)]` arguments: {e}; write them as `key = value, ..`"),
                );
                Vec::new()
            }
        };
        let mut this = Args { macro_name, args, errors };
        this.check_duplicates();
        this
    }

    fn check_duplicates(&mut self) {
        for (i, a) in self.args.iter().enumerate() {
            if self.args[..i].iter().any(|b| b.key == a.key) {
                self.errors.spanned(&a.key, format!("duplicate `{}` argument; keep one", a.key));
            }
        }
    }

    fn take(&mut self, key: &str) -> Option<Arg> {
        let i = self.args.iter().position(|a| a.key == key)?;
        let arg = self.args.remove(i);
        self.args.retain(|a| a.key != key);
        Some(arg)
    }

    /// `shape` is what the key takes, `example` the key written right.
    fn wrong(&mut self, arg: &Arg, shape: &str, example: &str) {
        let m = self.macro_name;
        self.errors.spanned(&arg.key, format!("`{}` takes {shape}, like `#[{m}({example})]`", arg.key));
    }

    /// `key = Type`.
    pub(crate) fn ty(&mut self, key: &str, example: &str) -> Option<Type> {
        let arg = self.take(key)?;
        match arg.value {
            Value::Type(t) => Some(*t),
            _ => {
                self.wrong(&arg, "a type", &format!("{key} = {example}"));
                None
            }
        }
    }

    /// `key = "text"`, non-empty.
    pub(crate) fn string(&mut self, key: &str) -> Option<LitStr> {
        let arg = self.take(key)?;
        match &arg.value {
            Value::Lit(Lit::Str(s)) if !s.value().trim().is_empty() => Some(s.clone()),
            Value::Lit(Lit::Str(s)) => {
                self.errors.spanned(s, format!("`{key}` cannot be empty"));
                None
            }
            _ => {
                self.wrong(&arg, "a string", &format!("{key} = \"..\""));
                None
            }
        }
    }

    /// `key = Type` or `key = "text"`.
    pub(crate) fn ty_or_string(&mut self, key: &str, example: &str) -> Option<Value> {
        let arg = self.take(key)?;
        match arg.value {
            v @ (Value::Type(_) | Value::Lit(Lit::Str(_))) => Some(v),
            _ => {
                self.wrong(&arg, "an event type or its stored name", &format!("{key} = {example}"));
                None
            }
        }
    }

    /// `key = 3`, at least `min`.
    pub(crate) fn int(&mut self, key: &str, min: u32) -> Option<u32> {
        let arg = self.take(key)?;
        match &arg.value {
            Value::Lit(Lit::Int(i)) => match i.base10_parse::<u32>() {
                Ok(v) if v >= min => Some(v),
                _ => {
                    self.errors.spanned(i, format!("`{key}` must be a whole number of at least {min}"));
                    None
                }
            },
            _ => {
                self.wrong(&arg, "a number", &format!("{key} = {min}"));
                None
            }
        }
    }

    /// `key(A, B, C)`, returned with the span of the key.
    pub(crate) fn list(&mut self, key: &str, example: &str) -> Option<(Span, Vec<Type>)> {
        let arg = self.take(key)?;
        match arg.value {
            Value::List(l) => Some((arg.key.span(), l)),
            _ => {
                self.wrong(&arg, "a list", &format!("{key}({example})"));
                None
            }
        }
    }

    /// A bare `key`.
    pub(crate) fn flag(&mut self, key: &str) -> bool {
        let Some(arg) = self.take(key) else { return false };
        if !matches!(arg.value, Value::Flag) {
            self.errors.spanned(&arg.key, format!("`{key}` takes no value; write just `{key}`"));
        }
        true
    }

    /// `crate = path`, defaulting to `::cqrs_ddd`.
    pub(crate) fn krate(&mut self) -> syn::Path {
        let default: syn::Path = syn::parse_quote!(::cqrs_ddd);
        let Some(arg) = self.take("crate") else { return default };
        match arg.value {
            Value::Type(t) => match *t {
                Type::Path(p) if p.qself.is_none() => p.path,
                other => {
                    self.errors.spanned(other, "`crate` takes a path, like `crate = ::cqrs_ddd`");
                    default
                }
            },
            _ => {
                self.wrong(&arg, "a path", "crate = ::cqrs_ddd");
                default
            }
        }
    }

    /// Reports every key nobody took, suggesting the closest known one.
    pub(crate) fn finish(mut self, known: &[&str]) -> Errors {
        let m = self.macro_name;
        for arg in std::mem::take(&mut self.args) {
            let key = arg.key.to_string();
            let help = match closest(&key, known) {
                Some(k) => format!("; did you mean `{k}`?"),
                None if known.is_empty() => String::from("; it takes no arguments"),
                None => format!("; expected one of {}", list(known)),
            };
            self.errors.at(arg.key.span(), format!("unknown `#[{m}]` argument `{key}`{help}"));
        }
        self.errors
    }
}

fn list(known: &[&str]) -> String {
    known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn reads_types_lists_literals_and_flags() {
        let mut a = Args::parse("x", quote!(id = Vec<u64>, events(A, b::B), name = "n", version = 2, flag));
        assert!(a.ty("id", "T").is_some());
        assert_eq!(a.list("events", "A").map(|(_, l)| l.len()), Some(2));
        assert_eq!(a.string("name").map(|s| s.value()), Some("n".to_owned()));
        assert_eq!(a.int("version", 1), Some(2));
        assert!(a.flag("flag"));
        assert!(a.finish(&[]).finish(()).is_ok());
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let a = Args::parse("event", quote!(nmae = "x"));
        let err = a.finish(&["name", "version"]).finish(()).unwrap_err();
        assert!(err.to_string().contains("did you mean `name`"), "{err}");
    }

    #[test]
    fn duplicates_and_wrong_shapes_are_all_reported() {
        let mut a = Args::parse("event", quote!(version = "two", version = 3));
        assert_eq!(a.int("version", 1), None);
        let errs: Vec<String> =
            a.finish(&["version"]).finish(()).unwrap_err().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
