//! `on_conflict = merge(..)`: how a state-stored aggregate merges a conflicting write.
//!
//! ```text
//! merge(last_wins)
//! merge(fields)            merge(fields(include = [a, b], exclude = [c], keep_existing))
//! merge(deep)              merge(deep(key = id, append_lists))
//! merge(timestamp)         merge(timestamp(field = modified_at, fallback_to_incoming))
//! merge(union)             merge(union(key = code))
//! merge(with = path::to::merge_fn)
//! ```
//!
//! Field names are identifiers or strings (a field serde renames: `"modifiedAt"`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, LitStr, Token};

use crate::common::options::{Read, Written, did_you_mean};

const STRATEGIES: &[&str] = &["last_wins", "fields", "deep", "timestamp", "union", "with"];
const USAGE: &str = "`on_conflict = merge(fields)`, `merge(deep(key = id))`, `merge(union(key = code))`, \
                     `merge(timestamp(field = modified_at))`, `merge(last_wins)` or `merge(with = my_merge)`";

/// A merge strategy as declared.
pub(crate) enum Merge {
    LastWins,
    Fields { include: Option<Vec<LitStr>>, exclude: Vec<LitStr>, keep_existing: bool },
    Deep { key: Option<LitStr>, append_lists: bool },
    Timestamp { field: LitStr, fallback_to_incoming: bool },
    Union { key: Option<LitStr> },
    With(syn::Path),
}

/// The value of `on_conflict` as written, read by [`parse`] (which spans its own errors).
pub(crate) struct Declared(pub(crate) TokenStream);

impl Read for Declared {
    fn read(key: &str, written: Written) -> Result<Self, String> {
        match written {
            Written::Value(tokens) => Ok(Declared(tokens)),
            _ => Err(format!("`{key}` takes a merge strategy; write {USAGE}")),
        }
    }
}

/// Reads the value of `on_conflict`.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Merge> {
    let span = tokens.clone().into_iter().next().map_or_else(Span::call_site, |t| t.span());
    let wrong = |span: Span| syn::Error::new(span, format!("`on_conflict` takes a merge strategy; write {USAGE}"));
    let Ok(Expr::Call(call)) = syn::parse2::<Expr>(tokens).map(ungroup) else { return Err(wrong(span)) };
    if !is_word(&call.func, "merge") {
        return Err(wrong(call.func.span()));
    }
    let mut args = call.args.into_iter();
    let (Some(strategy), None) = (args.next(), args.next()) else {
        return Err(syn::Error::new(
            call.paren_token.span.join(),
            format!("`merge(..)` takes one strategy; write {USAGE}"),
        ));
    };
    strategy_of(strategy)
}

fn strategy_of(expr: Expr) -> syn::Result<Merge> {
    let span = expr.span();
    let (name, options) = match expr {
        Expr::Path(p) => (word_of(&p.path)?, Punctuated::new()),
        Expr::Call(c) => (word_of_expr(&c.func)?, c.args),
        Expr::Assign(a) if is_word(&a.left, "with") => {
            return match *a.right {
                Expr::Path(p) => Ok(Merge::With(p.path)),
                other => Err(syn::Error::new(
                    other.span(),
                    "`with` takes the path of a function `fn(&serde_json::Value, &serde_json::Value) -> serde_json::Value`; write `merge(with = my_merge)`",
                )),
            };
        }
        _ => return Err(syn::Error::new(span, format!("not a merge strategy; write {USAGE}"))),
    };
    let mut opts = Options::new(&name, options)?;
    let merge = match name.as_str() {
        "last_wins" => Merge::LastWins,
        "fields" => {
            let include = opts.list("include")?;
            let exclude = opts.list("exclude")?.unwrap_or_default();
            if let Some(both) = include.iter().flatten().find(|i| exclude.iter().any(|e| e.value() == i.value())) {
                return Err(syn::Error::new(
                    both.span(),
                    format!("field `{}` is both included and excluded; keep it in one list", both.value()),
                ));
            }
            Merge::Fields { include, exclude, keep_existing: opts.word("keep_existing")? }
        }
        "deep" => Merge::Deep { key: opts.field("key")?, append_lists: opts.word("append_lists")? },
        "timestamp" => Merge::Timestamp {
            field: opts.field("field")?.unwrap_or_else(|| LitStr::new("modified_at", span)),
            fallback_to_incoming: opts.word("fallback_to_incoming")?,
        },
        "union" => Merge::Union { key: opts.field("key")? },
        "with" => {
            return Err(syn::Error::new(span, "`with` takes a function; write `merge(with = my_merge)`"));
        }
        other => {
            let hint = did_you_mean(other, STRATEGIES.iter().copied())
                .map_or_else(|| format!("write {USAGE}"), |s| format!("did you mean `{s}`?"));
            return Err(syn::Error::new(span, format!("unknown merge strategy `{other}`; {hint}")));
        }
    };
    opts.finish()?;
    Ok(merge)
}

/// The options of one strategy, taken one by one; what is left at the end is unknown.
struct Options {
    strategy: String,
    items: Vec<(String, Option<Expr>, Span)>,
    known: Vec<&'static str>,
}

impl Options {
    fn new(strategy: &str, args: Punctuated<Expr, Token![,]>) -> syn::Result<Self> {
        let mut items: Vec<(String, Option<Expr>, Span)> = Vec::new();
        for arg in args {
            let span = arg.span();
            let (key, value) = match arg {
                Expr::Path(p) => (word_of(&p.path)?, None),
                Expr::Assign(a) => (word_of_expr(&a.left)?, Some(*a.right)),
                _ => {
                    return Err(syn::Error::new(
                        span,
                        format!("`{strategy}(..)` takes options like `key = id` or a bare word"),
                    ));
                }
            };
            if items.iter().any(|(k, _, _)| *k == key) {
                return Err(syn::Error::new(span, format!("duplicate `{key}`; keep one")));
            }
            items.push((key, value, span));
        }
        Ok(Options { strategy: strategy.to_owned(), items, known: Vec::new() })
    }

    fn take(&mut self, key: &'static str) -> Option<(Option<Expr>, Span)> {
        self.known.push(key);
        let i = self.items.iter().position(|(k, _, _)| k == key)?;
        let (_, value, span) = self.items.remove(i);
        Some((value, span))
    }

    fn word(&mut self, key: &'static str) -> syn::Result<bool> {
        match self.take(key) {
            None => Ok(false),
            Some((None, _)) => Ok(true),
            Some((Some(_), span)) => Err(syn::Error::new(span, format!("`{key}` takes no value; write just `{key}`"))),
        }
    }

    fn field(&mut self, key: &'static str) -> syn::Result<Option<LitStr>> {
        match self.take(key) {
            None => Ok(None),
            Some((Some(value), _)) => field_name(&value).map(Some),
            Some((None, span)) => Err(syn::Error::new(span, format!("`{key}` takes a field name; write `{key} = id`"))),
        }
    }

    fn list(&mut self, key: &'static str) -> syn::Result<Option<Vec<LitStr>>> {
        let wrong = |span| {
            syn::Error::new(span, format!("`{key}` takes a list of field names; write `{key} = [name, status]`"))
        };
        match self.take(key) {
            None => Ok(None),
            Some((Some(Expr::Array(list)), span)) => {
                if list.elems.is_empty() {
                    return Err(syn::Error::new(
                        span,
                        format!("`{key}` lists no field; name at least one or leave it out"),
                    ));
                }
                list.elems.iter().map(field_name).collect::<syn::Result<Vec<_>>>().map(Some)
            }
            Some((_, span)) => Err(wrong(span)),
        }
    }

    fn finish(self) -> syn::Result<()> {
        let Some((key, _, span)) = self.items.into_iter().next() else { return Ok(()) };
        let strategy = &self.strategy;
        let hint = match (did_you_mean(&key, self.known.iter().copied()), self.known.as_slice()) {
            (Some(s), _) => format!("did you mean `{s}`?"),
            (None, []) => format!("`{strategy}` takes no options"),
            (None, known) => format!("`{strategy}(..)` takes {}", list_of(known)),
        };
        Err(syn::Error::new(span, format!("unknown option `{key}` of `{strategy}`; {hint}")))
    }
}

fn list_of(words: &[&str]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

/// A field name: `id` or `"id"`.
fn field_name(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Path(p) => {
            p.path.get_ident().map(|i| LitStr::new(i.to_string().trim_start_matches("r#"), i.span())).ok_or_else(|| {
                syn::Error::new(expr.span(), "a field name is one word or a string, like `id` or `\"id\"`")
            })
        }
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) if !s.value().is_empty() => Ok(s.clone()),
        _ => Err(syn::Error::new(expr.span(), "a field name is one word or a string, like `id` or `\"id\"`")),
    }
}

/// The expression inside the invisible group a `macro_rules!` fragment makes.
fn ungroup(expr: Expr) -> Expr {
    match expr {
        Expr::Group(g) => ungroup(*g.expr),
        other => other,
    }
}

fn is_word(expr: &Expr, word: &str) -> bool {
    matches!(expr, Expr::Path(p) if p.path.is_ident(word))
}

fn word_of_expr(expr: &Expr) -> syn::Result<String> {
    match expr {
        Expr::Path(p) => word_of(&p.path),
        _ => Err(syn::Error::new(expr.span(), format!("not a merge strategy; write {USAGE}"))),
    }
}

fn word_of(path: &syn::Path) -> syn::Result<String> {
    path.get_ident()
        .map(ToString::to_string)
        .ok_or_else(|| syn::Error::new(path.span(), format!("not a merge strategy; write {USAGE}")))
}

impl Merge {
    /// The expression building the runtime's `MergeStrategy`.
    pub(crate) fn build(&self, k: &syn::Path) -> TokenStream {
        let p = quote!(#k::__private);
        let s = quote!(#p::MergeStrategy);
        let string = |l: &LitStr| quote!(#p::String::from(#l));
        let opt = |l: &Option<LitStr>| match l {
            Some(l) => {
                let l = string(l);
                quote!(#p::Some(#l))
            }
            None => quote!(#p::None),
        };
        match self {
            Merge::LastWins => quote!(#s::LastWins),
            Merge::Fields { include, exclude, keep_existing } => {
                let include = match include {
                    Some(list) => {
                        let list = list.iter().map(string);
                        quote!(#p::Some(#p::vec![#(#list),*]))
                    }
                    None => quote!(#p::None),
                };
                let exclude = exclude.iter().map(string);
                quote!(#s::Fields { include: #include, exclude: #p::vec![#(#exclude),*], keep_existing: #keep_existing })
            }
            Merge::Deep { key, append_lists } => {
                let key = opt(key);
                quote!(#s::Deep { list_key: #key, append_lists: #append_lists })
            }
            Merge::Timestamp { field, fallback_to_incoming } => {
                let field = string(field);
                quote!(#s::Timestamp { field: #field, fallback_to_incoming: #fallback_to_incoming })
            }
            Merge::Union { key } => {
                let key = opt(key);
                quote!(#s::Union { key: #key })
            }
            // Spanned on the path: a function of the wrong shape is reported there.
            Merge::With(path) => quote_spanned!(path.span() => #s::custom(#path)),
        }
    }
}
