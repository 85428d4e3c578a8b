//! A parser for the `key = value, key(list), flag` arguments every macro takes.
//!
//! Values are parsed as types (so `response = Vec<u64>` works, which a `syn::Meta`
//! expression cannot hold), literals, bracketed lists of types (`send_all = [A, B]`) or
//! nested arguments (`tcc(try = A, confirm = B)`). Keys may be keywords (`try`). Unknown
//! keys get a "did you mean", duplicate keys and values of the wrong shape get a message
//! naming the expected form.

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
    /// `key(A, B)`.
    List(Vec<Type>),
    /// `key = [A, B]`.
    Array(Vec<Type>),
    /// `key(a = A, b)`.
    Nested(Vec<Arg>),
}

/// One type or a bracketed list of them (see [`Args::types`]).
pub(crate) enum Types {
    One(Type),
    Many(Vec<Type>),
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
            if input.peek(Lit) {
                Value::Lit(input.parse()?)
            } else if input.peek(syn::token::Bracket) {
                // `[A, B]` is a list; `[u8; 4]` an array type.
                let content;
                let bracket = syn::bracketed!(content in input);
                let tokens: TokenStream = content.parse()?;
                match Punctuated::<Type, Token![,]>::parse_terminated.parse2(tokens.clone()) {
                    Ok(list) => Value::Array(list.into_iter().collect()),
                    Err(_) => {
                        let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Bracket, tokens);
                        group.set_span(bracket.span.join());
                        Value::Type(Box::new(syn::parse2(proc_macro2::TokenTree::Group(group).into())?))
                    }
                }
            } else {
                Value::Type(Box::new(input.parse()?))
            }
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            // A list of types, else nested arguments; a list that is neither reports the
            // error of the list of types, the common case.
            let tokens: TokenStream = content.parse()?;
            match Punctuated::<Type, Token![,]>::parse_terminated.parse2(tokens.clone()) {
                Ok(list) => Value::List(list.into_iter().collect()),
                Err(e) => match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens) {
                    Ok(list) => Value::Nested(list.into_iter().collect()),
                    Err(_) => return Err(e),
                },
            }
        } else {
            Value::Flag
        };
        Ok(Arg { key, value })
    }
}

/// The arguments of one macro call, consumed key by key.
pub(crate) struct Args {
    macro_name: &'static str,
    /// For nested arguments (`tcc(..)`), the key they are nested in.
    within: Option<String>,
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
        let mut this = Args { macro_name, within: None, args, errors };
        this.check_duplicates();
        this
    }

    /// How messages name these arguments: `` `#[saga]` ``, or `` `tcc(..)` `` when nested.
    fn label(&self) -> String {
        match &self.within {
            Some(key) => format!("`{key}(..)`"),
            None => format!("`#[{}]`", self.macro_name),
        }
    }

    /// `example` (a `key = value`) as the user writes it in this attribute.
    fn written(&self, example: &str) -> String {
        match &self.within {
            Some(key) => format!("#[{}({key}({example}))]", self.macro_name),
            None => format!("#[{}({example})]", self.macro_name),
        }
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
        let written = self.written(example);
        self.errors.spanned(&arg.key, format!("`{}` takes {shape}, like `{written}`", arg.key));
    }

    /// `key = Type`.
    pub(crate) fn ty(&mut self, key: &str, example: &str) -> Option<Type> {
        self.ty_key(key, example).map(|(_, t)| t)
    }

    /// `key = Type`, with the key (for spans).
    pub(crate) fn ty_key(&mut self, key: &str, example: &str) -> Option<(Ident, Type)> {
        let arg = self.take(key)?;
        match arg.value {
            Value::Type(t) => Some((arg.key, *t)),
            _ => {
                self.wrong(&arg, "a type", &format!("{key} = {example}"));
                None
            }
        }
    }

    /// `key = name`: a plain identifier, like a field name.
    pub(crate) fn ident(&mut self, key: &str, example: &str) -> Option<Ident> {
        let arg = self.take(key)?;
        match &arg.value {
            Value::Type(t) => {
                if let Some(i) = plain_name(t) {
                    return Some(i.clone());
                }
            }
            Value::Flag | Value::Lit(_) | Value::List(_) | Value::Array(_) | Value::Nested(_) => {}
        }
        self.wrong(&arg, "a name", &format!("{key} = {example}"));
        None
    }

    /// `key = Type` or `key = [A, B]`, with the key. `example` shows the list form.
    pub(crate) fn types(&mut self, key: &str, example: &str) -> Option<(Ident, Types)> {
        let arg = self.take(key)?;
        match arg.value {
            Value::Type(t) => Some((arg.key, Types::One(*t))),
            Value::Array(list) => Some((arg.key, Types::Many(list))),
            _ => {
                self.wrong(&arg, "a type or a list of types", &format!("{key} = {example}"));
                None
            }
        }
    }

    /// `key = "text"`, non-empty.
    pub(crate) fn string(&mut self, key: &str) -> Option<LitStr> {
        self.string_key(key).map(|(_, s)| s)
    }

    /// `key = "text"`, non-empty, with the key.
    pub(crate) fn string_key(&mut self, key: &str) -> Option<(Ident, LitStr)> {
        let arg = self.take(key)?;
        match &arg.value {
            Value::Lit(Lit::Str(s)) if !s.value().trim().is_empty() => Some((arg.key.clone(), s.clone())),
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

    /// `key(a = A, b)`: the nested arguments, consumed like these; their errors join these
    /// when they are finished.
    pub(crate) fn nested(&mut self, key: &str, example: &str) -> Option<(Ident, Args)> {
        let arg = self.take(key)?;
        match arg.value {
            Value::Nested(args) => Some((arg.key, self.within(key, args))),
            // `key()` and `key(a, b)` parse as lists of types: read plain names as flags.
            Value::List(list) if list.iter().all(|t| plain_name(t).is_some()) => {
                let args = list.iter().filter_map(plain_name).map(|i| Arg { key: i.clone(), value: Value::Flag });
                Some((arg.key, self.within(key, args.collect())))
            }
            _ => {
                self.wrong(&arg, "arguments in parentheses", &format!("{key}({example})"));
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

    fn within(&self, key: &str, args: Vec<Arg>) -> Args {
        let mut nested =
            Args { macro_name: self.macro_name, within: Some(key.to_owned()), args, errors: Errors::default() };
        nested.check_duplicates();
        nested
    }

    /// A bare `key`.
    pub(crate) fn flag(&mut self, key: &str) -> bool {
        self.flag_key(key).is_some()
    }

    /// A bare `key`, returned (for spans) when present.
    pub(crate) fn flag_key(&mut self, key: &str) -> Option<Ident> {
        let arg = self.take(key)?;
        if !matches!(arg.value, Value::Flag) {
            self.errors.spanned(&arg.key, format!("`{key}` takes no value; write just `{key}`"));
        }
        Some(arg.key)
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
        let label = self.label();
        for arg in std::mem::take(&mut self.args) {
            let key = arg.key.to_string();
            let help = match closest(&key, known) {
                Some(k) => format!("; did you mean `{k}`?"),
                None if known.is_empty() => String::from("; it takes no arguments"),
                None => format!("; expected one of {}", list(known)),
            };
            self.errors.at(arg.key.span(), format!("unknown {label} argument `{key}`{help}"));
        }
        self.errors
    }
}

fn plain_name(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
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
    fn reads_bracketed_lists_nested_arguments_and_keyword_keys() {
        let mut a = Args::parse(
            "step",
            quote!(send_all = [A, b::B], id = [u8; 16], tcc(try = T, deadline = "30s"), one = K, empty()),
        );
        assert!(matches!(a.types("send_all", "[A]"), Some((_, Types::Many(l))) if l.len() == 2));
        assert!(matches!(a.ty("id", "T"), Some(Type::Array(_))));
        assert!(matches!(a.types("one", "K"), Some((_, Types::One(_)))));
        let (_, mut tcc) = a.nested("tcc", "try = T").expect("nested");
        assert!(tcc.ty("try", "T").is_some());
        assert_eq!(tcc.string("deadline").map(|s| s.value()), Some("30s".to_owned()));
        assert!(tcc.finish(&["try", "deadline"]).finish(()).is_ok());
        let (_, empty) = a.nested("empty", "").expect("an empty list reads as no arguments");
        assert!(empty.finish(&[]).finish(()).is_ok());
        assert!(a.finish(&[]).finish(()).is_ok());
    }

    #[test]
    fn nested_mistakes_name_the_nesting_key() {
        let mut a = Args::parse("step", quote!(tcc(try = T, cancle = K, try = U)));
        let (_, mut tcc) = a.nested("tcc", "try = T").expect("nested");
        assert!(tcc.ty("try", "T").is_some());
        let errs: Vec<String> =
            tcc.finish(&["try", "cancel"]).finish(()).unwrap_err().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e == "unknown `tcc(..)` argument `cancle`; did you mean `cancel`?"), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("duplicate `try`")), "{errs:?}");
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
