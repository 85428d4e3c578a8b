//! Macro arguments read through darling.
//!
//! Each macro declares its options once, as a struct deriving [`darling::FromMeta`] whose
//! fields are `Option<Arg<V>>`: the key as written plus a value read by one of the
//! [`Read`] shapes below (a type, a name, a string, a list of types, a bare word...).
//! [`parse`] adds what the derive alone does not give:
//!
//! - values that are types, not expressions (`response = Vec<u64>`,
//!   `id = HashMap<String, u64>`), are kept whole (see [`wrap_values`]);
//! - a missing comma between two arguments is one error, and both arguments still count;
//! - messages in the project's voice (`unknown `#[event]` argument `nmae`; did you mean
//!   `name`?`), spanned on the key;
//! - a salvage on error: the arguments that are right on their own (a misspelled key
//!   renamed to its suggestion) still build the options, so the macro expands as usual and
//!   one mistake is one error instead of a cascade through the code that needed them.

use darling::FromMeta;
use darling::ast::{MetaNameValueInvalidExpr, NestedMeta};
use proc_macro2::{Delimiter, Group, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Meta, Token, Type};

use super::errors::Errors;

/// Reads the arguments of `#[{macro_name}(..)]` (or of a marker attribute such as
/// `#[step(..)]`). Always returns options: on mistakes, the errors are recorded and the
/// options are salvaged from the arguments that are right.
pub(crate) fn parse<T: FromMeta + Default>(macro_name: &str, tokens: TokenStream, errors: &mut Errors) -> T {
    let label = format!("`#[{macro_name}]`");
    let items = split(&label, tokens, errors);
    match T::from_list(&items) {
        Ok(options) => options,
        Err(e) => {
            let mut renames = Vec::new();
            for e in e.flatten() {
                let (error, rename) = translate(&label, e);
                errors.push(error);
                renames.extend(rename);
            }
            salvage(&items, &renames)
        }
    }
}

/// The arguments that parse on their own, misspelled keys renamed, first of each key.
fn salvage<T: FromMeta + Default>(items: &[NestedMeta], renames: &[(String, String)]) -> T {
    let mut kept: Vec<NestedMeta> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        let mut item = item.clone();
        if let Some(path) = path_mut(&mut item)
            && let Some((_, to)) = renames.iter().find(|(from, _)| path.is_ident(from))
            && !items.iter().any(|i| key_of(i).as_deref() == Some(to.as_str()))
        {
            let span = path.segments.first().map_or_else(Span::call_site, |s| s.ident.span());
            if let Ok(mut ident) = Ident::parse_any.parse_str(to) {
                ident.set_span(span);
                *path = ident.into();
            }
        }
        let Some(key) = key_of(&item) else { continue };
        if seen.contains(&key) || T::from_list(std::slice::from_ref(&item)).is_err() {
            continue;
        }
        seen.push(key);
        kept.push(item);
    }
    T::from_list(&kept).unwrap_or_default()
}

fn path_mut(item: &mut NestedMeta) -> Option<&mut syn::Path> {
    match item {
        NestedMeta::Meta(Meta::Path(p)) => Some(p),
        NestedMeta::Meta(Meta::List(l)) => Some(&mut l.path),
        NestedMeta::Meta(Meta::NameValue(nv)) => Some(&mut nv.path),
        NestedMeta::NameValueInvalidExpr(v) => Some(&mut v.path),
        NestedMeta::Lit(_) => None,
    }
}

fn key_of(item: &NestedMeta) -> Option<String> {
    let path = match item {
        NestedMeta::Meta(m) => m.path(),
        NestedMeta::NameValueInvalidExpr(v) => &v.path,
        NestedMeta::Lit(_) => return None,
    };
    Some(path.segments.iter().map(|s| s.ident.unraw().to_string()).collect::<Vec<_>>().join("::"))
}

/// Splits the arguments, reporting each malformed one and a missing comma, keeping the rest.
fn split(label: &str, tokens: TokenStream, errors: &mut Errors) -> Vec<NestedMeta> {
    let parser = |input: ParseStream<'_>| {
        let mut items = Vec::new();
        while !input.is_empty() {
            match input.parse::<NestedMeta>() {
                Ok(item) => items.push(item),
                Err(e) => {
                    errors.at(e.span(), format!("malformed {label} argument: {e}; write `key = value` or `key`"));
                    skip_to_comma(input)?;
                }
            }
            if input.is_empty() {
                break;
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else {
                errors.at(input.span(), "expected `,` before this argument; separate arguments with commas");
            }
        }
        Ok(items)
    };
    parser.parse2(wrap_values(tokens)).unwrap_or_default()
}

fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// The macro name a value that is not an expression is wrapped in (see [`wrap_values`]).
const WRAP: &str = "__cqrs_ddd_value";

/// Wraps each `key = value` whose value is not an expression (`Vec<u64>`,
/// `HashMap<String, u64>`, `&'static str`) in `__cqrs_ddd_value!(..)`, which is one, so
/// darling keeps the value whole (it ends a value it cannot read as an expression at the
/// first comma, and an optional field drops it). [`Arg`] unwraps it again.
fn wrap_values(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        let is_eq = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '=' && p.spacing() == Spacing::Alone);
        out.push(tt);
        if !is_eq {
            continue;
        }
        let mut value = Vec::new();
        let mut depth = 0usize;
        let mut arrow = false;
        while let Some(tt) = iter.peek() {
            if let TokenTree::Punct(p) = tt {
                match p.as_char() {
                    ',' if depth == 0 => break,
                    '<' => depth += 1,
                    '>' if !arrow => depth = depth.saturating_sub(1),
                    _ => {}
                }
                arrow = p.as_char() == '-' && p.spacing() == Spacing::Joint;
            } else {
                arrow = false;
            }
            value.extend(iter.next());
        }
        let value: TokenStream = value.into_iter().collect();
        // An expression, or one followed by the next key (a missing comma, which the
        // splitter reports), stays as it is.
        let rest = (|input: ParseStream<'_>| {
            input.parse::<syn::Expr>()?;
            input.parse::<TokenStream>()
        })
        .parse2(value.clone());
        if value.is_empty() || matches!(rest.map(|r| r.into_iter().next()), Ok(None | Some(TokenTree::Ident(_)))) {
            out.extend(value);
            continue;
        }
        let span = value.clone().into_iter().next().map_or_else(Span::call_site, |t| t.span());
        let mut bang = proc_macro2::Punct::new('!', Spacing::Alone);
        bang.set_span(span);
        let mut group = Group::new(Delimiter::Parenthesis, value);
        group.set_span(span);
        out.extend([TokenTree::Ident(Ident::new(WRAP, span)), TokenTree::Punct(bang), TokenTree::Group(group)]);
    }
    out.into_iter().collect()
}

/// The value as written, without the wrapping of [`wrap_values`].
fn unwrap_value(tokens: TokenStream) -> TokenStream {
    let mut iter = tokens.clone().into_iter();
    match (iter.next(), iter.next(), iter.next(), iter.next()) {
        (Some(TokenTree::Ident(i)), Some(TokenTree::Punct(p)), Some(TokenTree::Group(g)), None)
            if i == WRAP && p.as_char() == '!' =>
        {
            g.stream()
        }
        _ => tokens,
    }
}

/// One darling error in the project's words, and the key it suggests for a misspelled one.
fn translate(label: &str, e: darling::Error) -> (syn::Error, Option<(String, String)>) {
    let span = e.span();
    let text = e.to_string();
    let (text, within) = match text.rsplit_once(" at ") {
        Some((t, at)) if !at.contains(' ') => (t.to_owned(), at.split('/').next().map(ToOwned::to_owned)),
        _ => (text, None),
    };
    let label = within.map_or_else(|| label.to_owned(), |w| format!("`{w}(..)`"));
    if let Some(rest) = text.strip_prefix("Unknown field: `") {
        let (key, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let key = key.trim_start_matches("r#");
        if let Some(s) = tail.strip_prefix(". Did you mean `") {
            let suggestion = s.trim_end_matches("`?").trim_start_matches("r#");
            let message = format!("unknown {label} argument `{key}`; did you mean `{suggestion}`?");
            return (syn::Error::new(span, message), Some((key.to_owned(), suggestion.to_owned())));
        }
        let expected = tail.strip_prefix(". Available values: ").map(|v| v.replace("r#", "")).map_or_else(
            || String::from("; it takes no arguments"),
            |v| format!("; expected one of {}", v.trim_end_matches('.')),
        );
        return (syn::Error::new(span, format!("unknown {label} argument `{key}`{expected}")), None);
    }
    if let Some(rest) = text.strip_prefix("Duplicate field `") {
        let key = rest.trim_end_matches('`').trim_start_matches("r#");
        return (syn::Error::new(span, format!("duplicate `{key}` argument; keep one")), None);
    }
    (syn::Error::new(span, text), None)
}

/// One argument: its key as written (for spans) and its value.
pub(crate) struct Arg<V> {
    pub(crate) key: Ident,
    pub(crate) value: V,
}

impl<V> Arg<V> {
    pub(crate) fn span(&self) -> Span {
        self.key.span()
    }
}

/// How an argument was written after its key.
pub(crate) enum Written {
    /// `key`.
    Word,
    /// `key = value`.
    Value(TokenStream),
    /// `key(..)`.
    List(TokenStream),
}

/// A shape of value an argument takes.
pub(crate) trait Read: Sized {
    /// Reads the value; the error says what `key` takes, like "`key` takes a type, like
    /// `key = Account`".
    fn read(key: &str, written: Written) -> Result<Self, String>;
}

impl<V: Read> FromMeta for Arg<V> {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let written = match item {
            Meta::Path(_) => Written::Word,
            Meta::List(l) => Written::List(l.tokens.clone()),
            Meta::NameValue(nv) => Written::Value(unwrap_value(nv.value.to_token_stream())),
        };
        read(item.path(), written)
    }

    fn from_invalid_expr(value: &MetaNameValueInvalidExpr) -> darling::Result<Self> {
        read(&value.path, Written::Value(unwrap_value(value.value.clone())))
    }
}

fn read<V: Read>(path: &syn::Path, written: Written) -> darling::Result<Arg<V>> {
    let Some(key) = path.segments.first().map(|s| s.ident.clone()) else {
        return Err(darling::Error::custom("an argument needs a name"));
    };
    let name = key.unraw().to_string();
    // A value that cannot be read is pointed at; a missing or misplaced one at the key.
    let value_span = match &written {
        Written::Value(t) | Written::List(t) => t.clone().into_iter().next().map(|t| t.span()),
        Written::Word => None,
    };
    V::read(&name, written).map(|value| Arg { key, value }).map_err(|m| match value_span {
        Some(span) => darling::Error::custom(m).with_span(&span),
        None => darling::Error::custom(m).with_span(path),
    })
}

/// `key = Type`, generic arguments included.
impl Read for Type {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::Value(tokens) => {
                syn::parse2::<Type>(tokens).map(ungroup).map_err(|e| format!("`{key}` takes a type: {e}"))
            }
            _ => Err(format!("`{key}` takes a type; write `{key} = TypeName`")),
        }
    }
}

fn ungroup(ty: Type) -> Type {
    match ty {
        Type::Group(g) => ungroup(*g.elem),
        Type::Paren(p) => ungroup(*p.elem),
        other => other,
    }
}

/// `key = name`: a plain identifier, like a field name.
impl Read for Ident {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::Value(tokens) => {
                syn::parse2::<Ident>(tokens).map_err(|_| format!("`{key}` takes a name; write `{key} = field_name`"))
            }
            _ => Err(format!("`{key}` takes a name; write `{key} = field_name`")),
        }
    }
}

/// `key = "text"`, not empty.
impl Read for LitStr {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let lit = match written {
            Written::Value(tokens) => syn::parse2::<LitStr>(tokens).ok(),
            _ => None,
        };
        match lit {
            Some(s) if !s.value().trim().is_empty() => Ok(s),
            Some(_) => Err(format!("`{key}` cannot be empty")),
            None => Err(format!("`{key}` takes a string; write `{key} = \"..\"`")),
        }
    }
}

/// `crate = path`.
impl Read for syn::Path {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::Value(tokens) => syn::parse2::<syn::Path>(tokens)
                .map_err(|_| format!("`{key}` takes a path; write `{key} = ::cqrs_ddd`")),
            _ => Err(format!("`{key}` takes a path; write `{key} = ::cqrs_ddd`")),
        }
    }
}

/// A bare `key`.
pub(crate) struct Word;

impl Read for Word {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::Word => Ok(Word),
            _ => Err(format!("`{key}` takes no value; write just `{key}`")),
        }
    }
}

/// `key = 3`, a whole number of at least 1.
pub(crate) struct Number(pub(crate) u32);

impl Read for Number {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let parsed = match written {
            Written::Value(tokens) => syn::parse2::<syn::LitInt>(tokens).ok().map(|i| i.base10_parse::<u32>()),
            _ => None,
        };
        match parsed {
            Some(Ok(n)) if n >= 1 => Ok(Number(n)),
            Some(_) => Err(format!("`{key}` must be a whole number of at least 1")),
            None => Err(format!("`{key}` takes a number; write `{key} = 1`")),
        }
    }
}

/// `key(A, B)`: a list of types in parentheses.
pub(crate) struct TypeList(pub(crate) Vec<Type>);

impl Read for TypeList {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::List(tokens) => Punctuated::<Type, Token![,]>::parse_terminated
                .parse2(tokens)
                .map(|l| TypeList(l.into_iter().collect()))
                .map_err(|e| format!("`{key}(..)` takes type names separated by commas: {e}")),
            _ => Err(format!("`{key}` takes a list; write `{key}(A, B)`")),
        }
    }
}

/// `key = Type` or `key = [A, B]`.
pub(crate) enum Types {
    One(Box<Type>),
    Many(Vec<Type>),
}

impl Read for Types {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let wrong = || format!("`{key}` takes a type or a list of types; write `{key} = A` or `{key} = [A, B]`");
        let Written::Value(tokens) = written else { return Err(wrong()) };
        let mut iter = tokens.clone().into_iter();
        if let (Some(TokenTree::Group(g)), None) = (iter.next(), iter.next())
            && g.delimiter() == Delimiter::Bracket
            && let Ok(list) = Punctuated::<Type, Token![,]>::parse_terminated.parse2(g.stream())
        {
            return Ok(Types::Many(list.into_iter().collect()));
        }
        syn::parse2::<Type>(tokens).map(|t| Types::One(Box::new(ungroup(t)))).map_err(|_| wrong())
    }
}

/// `key = Type` or `key = "stored name"`.
pub(crate) enum TypeOrName {
    Type(Box<Type>),
    Name(LitStr),
}

impl Read for TypeOrName {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        if let Written::Value(tokens) = &written
            && let Ok(lit) = syn::parse2::<LitStr>(tokens.clone())
        {
            return Ok(TypeOrName::Name(lit));
        }
        Type::read(key, written)
            .map(|t| TypeOrName::Type(Box::new(t)))
            .map_err(|_| format!("`{key}` takes an event type or its stored name; write `{key} = Deposited`"))
    }
}

/// `key = "30s"`: a duration in `ms`, `s`, `m`, `h` or `d`, in milliseconds.
pub(crate) struct Millis(pub(crate) u64);

impl Read for Millis {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        let wrong = || {
            format!(
                "`{key}` takes a whole, positive number of `ms`, `s`, `m`, `h` or `d`; write `{key} = \"30s\"` or `{key} = \"5m\"`"
            )
        };
        let Written::Value(tokens) = written else { return Err(wrong()) };
        let lit = syn::parse2::<LitStr>(tokens).map_err(|_| wrong())?;
        duration_ms(&lit.value()).map(Millis).ok_or_else(wrong)
    }
}

/// `"30s"` → `Some(30_000)`; `None` for anything else, zero or too large.
pub(crate) fn duration_ms(text: &str) -> Option<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor).filter(|ms| *ms > 0)
}

/// Nested options, `key(a = A, b)`, read with the same rules as the outer ones; their
/// mistakes are spanned on their own tokens and name the key they are nested in.
pub(crate) struct Nested<T> {
    pub(crate) key: Ident,
    pub(crate) value: T,
}

impl<T: FromMeta> FromMeta for Nested<T> {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let key = item.path().segments.first().map(|s| s.ident.clone());
        let (Some(key), Meta::List(list)) = (key, item) else {
            let name = item.path().to_token_stream().to_string();
            return Err(darling::Error::custom(format!("`{name}` takes arguments in parentheses; write `{name}(..)`"))
                .with_span(item));
        };
        let name = key.unraw().to_string();
        let items = NestedMeta::parse_meta_list(wrap_values(list.tokens.clone()))?;
        T::from_list(&items).map(|value| Nested { key, value }).map_err(|e| e.at(name))
    }
}

/// Reports the required keys that are missing, all in one error on `at`:
/// "`#[aggregate]` needs `id = ..` and `error = ..`; write `{usage}`".
pub(crate) fn require(errors: &mut Errors, at: impl ToTokens, macro_name: &str, keys: &[(&str, bool)], usage: &str) {
    let missing: Vec<&str> = keys.iter().filter(|(_, missing)| *missing).map(|(key, _)| *key).collect();
    let listed = match missing.as_slice() {
        [] => return,
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    errors.spanned(at, format!("`#[{macro_name}]` needs {listed}; write `{usage}`"));
}

/// The candidate closest to `word` when it is close enough to be a misspelling of it,
/// for "did you mean" (`stauts` → `status`, `in` → `in_`).
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The number of inserted, removed and replaced characters from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The `crate = ..` option every macro takes, defaulting to `::cqrs_ddd`.
pub(crate) fn krate(arg: Option<Arg<syn::Path>>) -> syn::Path {
    arg.map_or_else(|| syn::parse_quote!(::cqrs_ddd), |a| a.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[derive(Default, FromMeta)]
    #[darling(default)]
    struct Sample {
        id: Option<Arg<Type>>,
        events: Option<Arg<TypeList>>,
        name: Option<Arg<LitStr>>,
        version: Option<Arg<Number>>,
        flag: Option<Arg<Word>>,
        send_all: Option<Arg<Types>>,
        #[darling(rename = "crate")]
        krate: Option<Arg<syn::Path>>,
    }

    fn read(tokens: TokenStream) -> (Sample, Vec<String>) {
        let mut errors = Errors::default();
        let s = parse::<Sample>("x", tokens, &mut errors);
        let errs = errors.finish(()).err().map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default();
        (s, errs)
    }

    #[test]
    fn reads_types_lists_literals_and_flags() {
        let (s, errs) = read(
            quote!(id = HashMap<String, u64>, events(A, b::B), name = "n", version = 2, flag, send_all = [A, B], crate = ::c),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.id.map(|a| a.value.to_token_stream().to_string()).as_deref(), Some("HashMap < String , u64 >"));
        assert_eq!(s.events.map(|a| a.value.0.len()), Some(2));
        assert_eq!(s.name.map(|a| a.value.value()).as_deref(), Some("n"));
        assert_eq!(s.version.map(|a| a.value.0), Some(2));
        assert!(s.flag.is_some());
        assert!(matches!(s.send_all.map(|a| a.value), Some(Types::Many(l)) if l.len() == 2));
        assert!(s.krate.is_some());
    }

    #[test]
    fn a_misspelled_key_is_one_error_and_still_counts() {
        let (s, errs) = read(quote!(id = A, evnts(A)));
        assert_eq!(errs, ["unknown `#[x]` argument `evnts`; did you mean `events`?"]);
        assert!(s.id.is_some() && s.events.is_some());
    }

    #[test]
    fn a_missing_comma_is_one_error_and_both_arguments_count() {
        let (s, errs) = read(quote!(name = "n" events(A)));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("expected `,`"), "{errs:?}");
        assert!(s.name.is_some() && s.events.is_some());
    }

    #[test]
    fn duplicates_and_wrong_shapes_are_all_reported() {
        let (s, errs) = read(quote!(version = "two", name = "a", name = "b"));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e == "duplicate `name` argument; keep one"), "{errs:?}");
        assert!(errs.iter().any(|e| e == "`version` takes a number; write `version = 1`"), "{errs:?}");
        assert_eq!(s.name.map(|a| a.value.value()).as_deref(), Some("a"));
    }

    #[test]
    fn hostile_arguments_are_errors_not_panics() {
        for input in [
            "= = =",
            ",,,",
            "id =",
            "id = ,",
            "= Account",
            "1 = 2",
            "\"text\"",
            "id = Vec<",
            "id = >>, name = \"n\"",
            "events(,)",
            "events(1, 2)",
            "crate = 3",
            "version = 99999999999999999999",
            "send_all = [A,, B]",
            "id::x = A",
            "# = 1",
            "id = || {}",
        ] {
            let tokens: TokenStream = input.parse().expect("tokens");
            let (_, errs) = read(tokens);
            assert!(!errs.is_empty(), "{input:?} was accepted");
        }
    }

    #[test]
    fn close_words_are_suggested_and_far_ones_are_not() {
        assert_eq!(did_you_mean("stauts", ["title", "status"]), Some("status"));
        assert_eq!(did_you_mean("in", ["in_", "not_in"]), Some("in_"));
        assert_eq!(did_you_mean("colour", ["title", "status"]), None);
        assert_eq!(did_you_mean("x", []), None);
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("5m"), Some(300_000));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("1d"), Some(86_400_000));
    }

    #[test]
    fn malformed_zero_and_overflowing_durations_are_refused() {
        for bad in [
            "",
            "30",
            "s",
            "30 s",
            "-5s",
            "1.5h",
            "5min",
            "0s",
            "0ms",
            "30S",
            "99999999999999999999ms",
            "213503982335d",
        ] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_number_and_unit_reads_back() {
        for n in (1..2_000u64).chain([u64::from(u32::MAX), 213_503_982_334]) {
            for (unit, factor) in [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)] {
                assert_eq!(duration_ms(&format!("{n}{unit}")), n.checked_mul(factor), "{n}{unit}");
            }
        }
    }
}
