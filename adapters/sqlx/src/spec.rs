//! Specifications compiled to SQL, one compiler for the three databases.
//!
//! The compiled SQL answers exactly what the in-memory evaluator answers
//! ([`cqrs_ddd::spec`]): SQL's three-valued logic, a value of another type than the one
//! compared with is unknown, a path crosses a list only at `[*]` (as an `EXISTS`-like
//! subquery), objects and lists compare as PostgreSQL's `@>` does. A differential
//! property test holds the four to the same rows.
//!
//! Every value is a bind parameter; SQL text holds only what the framework writes and
//! field names, which [`Path`] restricts to letters, digits, `_` and `-` (an expression
//! index must name its path literally, so the query must too).
//!
//! A document is a JSON value in each database's form: `jsonb` on PostgreSQL, JSON text
//! on SQLite (JSON1, `->`) and MariaDB. A field's typed value (`text`, `number`,
//! `boolean`) is `NULL` unless the JSON value there has that type, and the same
//! expression serves filters, orderings and declared indexes, so an index is used.

use std::fmt::Write as _;

use cqrs_ddd::spec::{
    AggFn, Aggregation, Condition, Dir, EvalError, FieldKind, Index, JsonStep, Op, Order, Path, QueryOptions, Spec,
    Step, json_path,
};
use cqrs_ddd::{Error, Result};
use serde_json::Value as Json;

use crate::dialect::Flavor;

#[cfg(feature = "geo")]
mod geometry;

/// One bound argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// Text (every value: numbers and booleans are cast in SQL).
    Text(String),
    /// A whole number (limits, offsets).
    Int(i64),
    /// A double-precision number (coordinates, distances).
    #[cfg_attr(not(feature = "geo"), allow(dead_code))]
    Real(f64),
}

/// SQL text with `?` placeholders and its arguments in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Frag {
    pub(crate) sql: String,
    pub(crate) args: Vec<Arg>,
}

impl Frag {
    fn new(sql: impl Into<String>) -> Frag {
        Frag { sql: sql.into(), args: Vec::new() }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    fn append(&mut self, other: Frag) -> &mut Self {
        self.sql.push_str(&other.sql);
        self.args.extend(other.args);
        self
    }

    fn wrap(self, before: &str, after: &str) -> Frag {
        Frag { sql: format!("{before}{}{after}", self.sql), args: self.args }
    }

    /// Fragments joined by `sep`, or `empty` when there are none.
    fn join(parts: Vec<Frag>, sep: &str, empty: &str) -> Frag {
        if parts.is_empty() {
            return Frag::new(empty);
        }
        let mut out = Frag::new("(");
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            out.append(p);
        }
        out.push(")");
        out
    }
}

const TRUE: &str = "(1 = 1)";
/// The id column: compared by code point on every database (its collation is `"C"` on
/// PostgreSQL and binary on MariaDB; SQLite compares bytes).
const ID: &str = "id";
const FALSE: &str = "(1 = 0)";

fn bad(c: &Condition, reason: impl Into<String>) -> Error {
    Error::Spec(EvalError::BadValue { attr: c.attr.clone(), op: c.op, reason: reason.into() })
}

/// The compiler for one statement: the database's flavour and the next alias.
pub(crate) struct Compiler {
    f: Flavor,
    aliases: usize,
}

impl Compiler {
    pub(crate) fn new(f: Flavor) -> Self {
        Compiler { f, aliases: 0 }
    }

    /// The unknown truth value (typed, so PostgreSQL can compare it).
    fn unknown(&self) -> &'static str {
        if self.f == Flavor::Postgres { "CAST(NULL AS boolean)" } else { "NULL" }
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("j{}", self.aliases)
    }

    // ---- JSON values and their types -------------------------------------------------

    /// The JSON value at `keys` under `x`.
    fn member(&self, x: &str, keys: &[&str]) -> String {
        if keys.is_empty() {
            return x.to_owned();
        }
        match self.f {
            Flavor::Postgres => keys.iter().fold(x.to_owned(), |acc, k| format!("{acc}->'{k}'")),
            Flavor::Sqlite => format!("({x} -> '$.{}')", quoted_keys(keys)),
            Flavor::MariaDb => format!("JSON_EXTRACT({x}, '$.{}')", quoted_keys(keys)),
        }
    }

    /// The element at index `i` of a JSON list.
    fn element(&self, x: &str, i: u32) -> String {
        match self.f {
            Flavor::Postgres => format!("({x} -> {i})"),
            Flavor::Sqlite => format!("({x} -> '$[{i}]')"),
            Flavor::MariaDb => format!("JSON_EXTRACT({x}, '$[{i}]')"),
        }
    }

    fn type_of(&self, x: &str) -> String {
        match self.f {
            Flavor::Postgres => format!("jsonb_typeof({x})"),
            Flavor::Sqlite => format!("json_type({x})"),
            Flavor::MariaDb => format!("JSON_TYPE({x})"),
        }
    }

    fn is(&self, x: &str, kind: JsonType) -> String {
        let names: &[&str] = match (self.f, kind) {
            (Flavor::Postgres, JsonType::String) => &["string"],
            (Flavor::Postgres, JsonType::Number) => &["number"],
            (Flavor::Postgres, JsonType::Bool) => &["boolean"],
            (Flavor::Postgres | Flavor::Sqlite, JsonType::Array) => &["array"],
            (Flavor::Postgres | Flavor::Sqlite, JsonType::Object) => &["object"],
            (Flavor::Postgres | Flavor::Sqlite, JsonType::Null) => &["null"],
            (Flavor::Sqlite, JsonType::String) => &["text"],
            (Flavor::Sqlite, JsonType::Number) => &["integer", "real"],
            (Flavor::Sqlite, JsonType::Bool) => &["true", "false"],
            (Flavor::MariaDb, JsonType::String) => &["STRING"],
            (Flavor::MariaDb, JsonType::Number) => &["INTEGER", "DOUBLE", "DECIMAL", "UNSIGNED INTEGER"],
            (Flavor::MariaDb, JsonType::Bool) => &["BOOLEAN"],
            (Flavor::MariaDb, JsonType::Array) => &["ARRAY"],
            (Flavor::MariaDb, JsonType::Object) => &["OBJECT"],
            (Flavor::MariaDb, JsonType::Null) => &["NULL"],
        };
        let t = self.type_of(x);
        match names {
            [one] => format!("({t} = '{one}')"),
            many => format!("({t} IN ({}))", many.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")),
        }
    }

    /// Missing or JSON `null`.
    fn nullish(&self, x: &str) -> String {
        format!("({x} IS NULL OR {})", self.is(x, JsonType::Null))
    }

    /// The text of a JSON string (no type check).
    fn raw_text(&self, x: &str) -> String {
        match self.f {
            Flavor::Postgres => format!("({x} #>> '{{}}')"),
            Flavor::Sqlite => format!("({x} ->> '$')"),
            Flavor::MariaDb => format!("JSON_UNQUOTE({x})"),
        }
    }

    /// The field's text when it is a string, compared by code point.
    fn text(&self, x: &str) -> String {
        let t = format!("CASE WHEN {} THEN {} END", self.is(x, JsonType::String), self.raw_text(x));
        match self.f {
            Flavor::Postgres => format!("(({t}) COLLATE \"C\")"),
            Flavor::Sqlite => format!("({t})"),
            Flavor::MariaDb => format!("(({t}) COLLATE utf8mb4_bin)"),
        }
    }

    /// The field's number when it is one.
    fn number(&self, x: &str) -> String {
        let is = self.is(x, JsonType::Number);
        match self.f {
            Flavor::Postgres => format!("(CASE WHEN {is} THEN ({x})::numeric END)"),
            Flavor::Sqlite => format!("(CASE WHEN {is} THEN {x} ->> '$' END)"),
            Flavor::MariaDb => format!("(CASE WHEN {is} THEN CAST(JSON_UNQUOTE({x}) AS DOUBLE) END)"),
        }
    }

    /// The field's boolean when it is one (`0`/`1` on SQLite and MariaDB).
    fn boolean(&self, x: &str) -> String {
        match self.f {
            Flavor::Postgres => format!("(CASE WHEN {} THEN ({x})::boolean END)", self.is(x, JsonType::Bool)),
            Flavor::Sqlite => format!("(CASE json_type({x}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"),
            Flavor::MariaDb => {
                format!("(CASE WHEN {} THEN JSON_UNQUOTE({x}) = 'true' END)", self.is(x, JsonType::Bool))
            }
        }
    }

    /// The field as a value of `kind`.
    fn typed(&self, x: &str, kind: JsonType) -> String {
        match kind {
            JsonType::String => self.text(x),
            JsonType::Number => self.number(x),
            JsonType::Bool => self.boolean(x),
            _ => "NULL".to_owned(),
        }
    }

    /// A parameter holding a value of `kind`, cast in SQL.
    fn param(&self, v: &Json) -> Option<(JsonType, Frag)> {
        let (kind, text, cast) = match v {
            Json::String(s) => (JsonType::String, s.clone(), None),
            Json::Number(n) => (
                JsonType::Number,
                n.to_string(),
                Some(match self.f {
                    Flavor::Postgres => "numeric",
                    Flavor::Sqlite => "NUMERIC",
                    Flavor::MariaDb => "DOUBLE",
                }),
            ),
            Json::Bool(b) => match self.f {
                Flavor::Postgres => (JsonType::Bool, b.to_string(), Some("boolean")),
                Flavor::Sqlite => (JsonType::Bool, u8::from(*b).to_string(), Some("INTEGER")),
                Flavor::MariaDb => (JsonType::Bool, u8::from(*b).to_string(), Some("SIGNED")),
            },
            _ => return None,
        };
        // A text needs no cast: every place it goes is typed by the other side.
        let sql = cast.map_or_else(|| "?".to_owned(), |c| format!("CAST(? AS {c})"));
        Some((kind, Frag { sql, args: vec![Arg::Text(text)] }))
    }

    /// The elements of a JSON list (none when it is not one): the `FROM` item and each
    /// element's JSON value.
    fn elements(&mut self, x: &str) -> (String, String) {
        let a = self.alias();
        let list = format!("CASE WHEN {} THEN {x} END", self.is(x, JsonType::Array));
        match self.f {
            Flavor::Postgres => (format!("jsonb_array_elements({list}) AS {a}(v)"), format!("{a}.v")),
            Flavor::Sqlite => (format!("json_each({list}) AS {a}"), format!("({x} -> {a}.fullkey)")),
            Flavor::MariaDb => {
                (format!("JSON_TABLE({list}, '$[*]' COLUMNS (v JSON PATH '$')) AS {a}"), format!("{a}.v"))
            }
        }
    }

    /// The members of a JSON object (none when it is not one): the `FROM` item, each
    /// key (text) and each member's JSON value.
    fn members(&mut self, x: &str) -> (String, String, String) {
        let a = self.alias();
        let object = format!("CASE WHEN {} THEN {x} END", self.is(x, JsonType::Object));
        match self.f {
            Flavor::Postgres => (format!("jsonb_each({object}) AS {a}(k, v)"), format!("{a}.k"), format!("{a}.v")),
            Flavor::Sqlite => {
                (format!("json_each({object}) AS {a}"), format!("{a}.key"), format!("({x} -> {a}.fullkey)"))
            }
            Flavor::MariaDb => (
                format!("JSON_TABLE(JSON_KEYS({object}), '$[*]' COLUMNS (k VARCHAR(4096) PATH '$')) AS {a}"),
                format!("({a}.k COLLATE utf8mb4_bin)"),
                format!("JSON_EXTRACT({x}, CONCAT('$.', JSON_QUOTE({a}.k)))"),
            ),
        }
    }

    // ---- Specifications ----------------------------------------------------------------

    /// The `WHERE` condition of a specification on the document column.
    pub(crate) fn spec(&mut self, spec: &Spec) -> Result<Frag> {
        Ok(match spec {
            Spec::Leaf(c) => self.condition(c)?,
            Spec::And(children) => {
                let parts = children.iter().map(|c| self.spec(c)).collect::<Result<Vec<_>>>()?;
                Frag::join(parts, " AND ", TRUE)
            }
            Spec::Or(children) => {
                let parts = children.iter().map(|c| self.spec(c)).collect::<Result<Vec<_>>>()?;
                Frag::join(parts, " OR ", FALSE)
            }
            Spec::Not(child) => self.spec(child)?.wrap("(NOT ", ")"),
        })
    }

    fn condition(&mut self, c: &Condition) -> Result<Frag> {
        if c.op.is_geometry() && !cfg!(feature = "geo") {
            return Err(Error::Spec(EvalError::Unsupported(c.op)));
        }
        let path = c.check().map_err(Error::Spec)?;
        self.along(c, "document", &path.steps)
    }

    /// The condition at the end of `steps` from `x`; over a list, it holds when it holds
    /// for one element (true if one is true, else unknown if one is unknown, else false);
    /// an empty list, or no list, is a missing value.
    fn along(&mut self, c: &Condition, x: &str, steps: &[Step]) -> Result<Frag> {
        let keys: Vec<&str> = steps
            .iter()
            .map_while(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Each => None,
            })
            .collect();
        let at = self.member(x, &keys);
        let rest = &steps[keys.len()..];
        if rest.is_empty() {
            return self.leaf(c, &at);
        }
        let (from, element) = self.elements(&at);
        let inner = self.along(c, &element, &rest[1..])?;
        let missing = match c.op {
            Op::IsNull | Op::IsEmpty => TRUE,
            Op::IsNotNull | Op::IsNotEmpty => FALSE,
            _ => self.unknown(),
        };
        Ok(inner.wrap(
            "COALESCE((SELECT CASE MAX(CASE (",
            &format!(") WHEN TRUE THEN 2 WHEN FALSE THEN 0 ELSE 1 END) WHEN 2 THEN TRUE WHEN 0 THEN FALSE END FROM {from}), {missing})"),
        ))
    }

    /// `x op value`, unknown (`NULL`) when `x` is missing or of another type.
    #[allow(clippy::many_single_char_names)]
    fn leaf(&mut self, c: &Condition, x: &str) -> Result<Frag> {
        let val = &c.val;
        let compare = |me: &Self, sym: &str| -> Frag {
            match me.param(val) {
                Some((kind, p)) => {
                    let mut f = Frag::new(format!("({} {sym} ", me.typed(x, kind)));
                    f.append(p).push(")");
                    f
                }
                None => Frag::new(me.unknown()),
            }
        };
        let list = || val.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(match c.op {
            Op::Eq => compare(self, "="),
            Op::Ne => compare(self, "<>"),
            Op::Gt => compare(self, ">"),
            Op::Lt => compare(self, "<"),
            Op::Ge => compare(self, ">="),
            Op::Le => compare(self, "<="),
            Op::In => self.in_list(x, list()),
            Op::NotIn => self.in_list(x, list()).wrap("(NOT ", ")"),
            Op::All => {
                let mut each = Vec::new();
                for v in list() {
                    each.push(match self.param(v) {
                        Some((kind, p)) => {
                            let (from, e) = self.elements(x);
                            let mut f =
                                Frag::new(format!("EXISTS (SELECT 1 FROM {from} WHERE {} = ", self.typed(&e, kind)));
                            f.append(p).push(")");
                            f
                        }
                        None => Frag::new(FALSE),
                    });
                }
                Frag::join(each, " AND ", TRUE)
                    .wrap(&format!("(CASE WHEN {} THEN ", self.is(x, JsonType::Array)), " END)")
            }
            Op::Between | Op::NotBetween => {
                let [low, high] = list() else { return Err(bad(c, "takes two values, `[low, high]`")) };
                let f = match (self.param(low), self.param(high)) {
                    (Some((kl, pl)), Some((kh, ph))) if kl == kh => {
                        let t = self.typed(x, kl);
                        let mut f = Frag::new(format!("({t} >= "));
                        f.append(pl).push(&format!(" AND {t} <= ")).append(ph).push(")");
                        f
                    }
                    _ => Frag::new(self.unknown()),
                };
                if c.op == Op::NotBetween { f.wrap("(NOT ", ")") } else { f }
            }
            Op::Like | Op::NotLike => {
                let f = self.like(x, &like_tokens(text_of(c)?), false);
                if c.op == Op::NotLike { f.wrap("(NOT ", ")") } else { f }
            }
            Op::Ilike => self.like(x, &like_tokens(text_of(c)?), true),
            Op::Contains | Op::StartsWith | Op::EndsWith | Op::Icontains | Op::IstartsWith | Op::IendsWith => {
                let needle = text_of(c)?;
                let mut tokens: Vec<Like> = needle.chars().map(Like::Char).collect();
                if matches!(c.op, Op::Contains | Op::Icontains | Op::EndsWith | Op::IendsWith) {
                    tokens.insert(0, Like::Any);
                }
                if matches!(c.op, Op::Contains | Op::Icontains | Op::StartsWith | Op::IstartsWith) {
                    tokens.push(Like::Any);
                }
                let fold = matches!(c.op, Op::Icontains | Op::IstartsWith | Op::IendsWith);
                self.like(x, &tokens, fold)
            }
            Op::Regex | Op::Iregex => {
                let pattern = text_of(c)?;
                let t = self.text(x);
                match self.f {
                    Flavor::Postgres => {
                        let op = if c.op == Op::Iregex { "~*" } else { "~" };
                        let mut f = Frag::new(format!("({t} {op} "));
                        f.append(text_param(pattern)).push(")");
                        f
                    }
                    Flavor::Sqlite | Flavor::MariaDb => {
                        let pattern = if c.op == Op::Iregex { format!("(?i){pattern}") } else { pattern.to_owned() };
                        let mut f = Frag::new(format!("({t} REGEXP "));
                        f.append(text_param(&pattern)).push(")");
                        f
                    }
                }
            }
            Op::IsNull => Frag::new(self.nullish(x)),
            Op::IsNotNull => Frag::new(format!("(NOT {})", self.nullish(x))),
            Op::IsEmpty => Frag::new(self.empty(x)),
            Op::IsNotEmpty => Frag::new(format!("(NOT {})", self.empty(x))),
            Op::JsonContains | Op::JsonContainedBy => {
                let body = if self.f == Flavor::Postgres {
                    let op = if c.op == Op::JsonContains { "@>" } else { "<@" };
                    let mut f = Frag::new(format!("({x} {op} CAST(? AS jsonb))"));
                    f.args.push(Arg::Text(val.to_string()));
                    f
                } else if c.op == Op::JsonContains {
                    self.contains_top(x, val)
                } else {
                    self.contained_by_top(x, val)
                };
                self.known(x, body)
            }
            Op::JsonHasKey => {
                let key = text_of(c)?.to_owned();
                let f = self.has_key(x, &key);
                self.known(x, f)
            }
            Op::JsonHasAny | Op::JsonHasAll => {
                let keys: Vec<String> = list().iter().filter_map(|k| k.as_str().map(ToOwned::to_owned)).collect();
                let parts = keys.iter().map(|k| self.has_key(x, k)).collect();
                let f = if c.op == Op::JsonHasAny {
                    Frag::join(parts, " OR ", FALSE)
                } else {
                    Frag::join(parts, " AND ", TRUE)
                };
                self.known(x, f)
            }
            Op::JsonPathExists => {
                let steps = json_path(text_of(c)?).map_err(|reason| bad(c, reason))?;
                let mut at = x.to_owned();
                for step in &steps {
                    at = match step {
                        JsonStep::Key(k) => {
                            format!(
                                "(CASE WHEN {} THEN {} END)",
                                self.is(&at, JsonType::Object),
                                self.member(&at, &[k])
                            )
                        }
                        JsonStep::Index(i) => {
                            format!("(CASE WHEN {} THEN {} END)", self.is(&at, JsonType::Array), self.element(&at, *i))
                        }
                    };
                }
                self.known(x, Frag::new(format!("({at} IS NOT NULL)")))
            }
            Op::Fts | Op::FtsPhrase => {
                let query = text_of(c)?;
                match self.f {
                    Flavor::Postgres => {
                        let func = if c.op == Op::Fts { "websearch_to_tsquery" } else { "phraseto_tsquery" };
                        let mut f = Frag::new(format!(
                            "(to_tsvector('simple', CASE WHEN {} THEN {} END) @@ {func}('simple', ",
                            self.is(x, JsonType::String),
                            self.raw_text(x)
                        ));
                        f.append(text_param(query)).push("))");
                        f
                    }
                    _ => {
                        let lowered = query.to_lowercase();
                        let words: Vec<&str> =
                            if c.op == Op::Fts { lowered.split_whitespace().collect() } else { vec![lowered.trim()] };
                        let parts = words
                            .iter()
                            .map(|w| {
                                let mut tokens: Vec<Like> = w.chars().map(Like::Char).collect();
                                tokens.insert(0, Like::Any);
                                tokens.push(Like::Any);
                                self.like(x, &tokens, true)
                            })
                            .collect();
                        // An empty query holds for every text, as in memory.
                        Frag::join(parts, " AND ", TRUE)
                            .wrap(&format!("(CASE WHEN {} THEN ", self.is(x, JsonType::String)), " END)")
                    }
                }
            }
            #[cfg(feature = "geo")]
            op if op.is_geometry() => self.geometry(c, x)?,
            other => return Err(Error::Spec(EvalError::Unsupported(other))),
        })
    }

    /// `body`, or unknown when `x` is missing or null.
    fn known(&self, x: &str, body: Frag) -> Frag {
        body.wrap(&format!("(CASE WHEN {} THEN NULL ELSE COALESCE(", self.nullish(x)), &format!(", {FALSE}) END)"))
    }

    fn in_list(&self, x: &str, list: &[Json]) -> Frag {
        let mut by_kind: Vec<(JsonType, Vec<Frag>)> = Vec::new();
        let mut unknown = false;
        for v in list {
            match self.param(v) {
                Some((kind, p)) => match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, ps)) => ps.push(p),
                    None => by_kind.push((kind, vec![p])),
                },
                None => unknown = true,
            }
        }
        let mut parts: Vec<Frag> = by_kind
            .into_iter()
            .map(|(kind, ps)| Frag::join(ps, ", ", "").wrap(&format!("({} IN ", self.typed(x, kind)), ")"))
            .collect();
        if unknown {
            parts.push(Frag::new(self.unknown()));
        }
        if parts.is_empty() {
            // In no value: false, but unknown for a missing value, as everywhere.
            return Frag::new(format!("(CASE WHEN {} THEN {} ELSE {FALSE} END)", self.nullish(x), self.unknown()));
        }
        Frag::join(parts, " OR ", FALSE)
    }

    /// Missing, null, `""`, `[]` or `{}`.
    fn empty(&self, x: &str) -> String {
        let sized = match self.f {
            Flavor::Postgres => format!("{x} IN ('\"\"'::jsonb, '[]'::jsonb, '{{}}'::jsonb)"),
            Flavor::Sqlite => format!(
                "({} AND {} = '') OR ({} AND NOT EXISTS (SELECT 1 FROM json_each({x})))",
                self.is(x, JsonType::String),
                self.raw_text(x),
                format_args!("({} OR {})", self.is(x, JsonType::Array), self.is(x, JsonType::Object))
            ),
            Flavor::MariaDb => format!(
                "({} AND {} = '') OR (({} OR {}) AND JSON_LENGTH({x}) = 0)",
                self.is(x, JsonType::String),
                self.raw_text(x),
                self.is(x, JsonType::Array),
                self.is(x, JsonType::Object)
            ),
        };
        format!("({} OR {sized})", self.nullish(x))
    }

    /// The text of `x` matches a `LIKE` pattern, case-sensitively or ignoring case
    /// (`fold`). SQLite's `LIKE` ignores ASCII case, so its case-sensitive match is a
    /// `GLOB`.
    fn like(&self, x: &str, tokens: &[Like], fold: bool) -> Frag {
        let text = self.text(x);
        if self.f == Flavor::Sqlite && !fold {
            let mut pattern = String::new();
            for t in tokens {
                match t {
                    Like::Any => pattern.push('*'),
                    Like::One => pattern.push('?'),
                    Like::Char(c @ ('*' | '?' | '[')) => {
                        let _ = write!(pattern, "[{c}]");
                    }
                    Like::Char(c) => pattern.push(*c),
                }
            }
            let mut f = Frag::new(format!("({text} GLOB "));
            f.append(text_param(&pattern)).push(")");
            return f;
        }
        let mut pattern = String::new();
        for t in tokens {
            match t {
                Like::Any => pattern.push('%'),
                Like::One => pattern.push('_'),
                Like::Char(c @ ('%' | '_' | '!')) => {
                    pattern.push('!');
                    pattern.push(*c);
                }
                Like::Char(c) => pattern.push(*c),
            }
        }
        let (text, op, param) = match (self.f, fold) {
            // ILIKE under the database's collation: `"C"` folds ASCII only.
            (Flavor::Postgres, true) => (
                format!("(CASE WHEN {} THEN {} END)", self.is(x, JsonType::String), self.raw_text(x)),
                "ILIKE",
                text_param(&pattern),
            ),
            (Flavor::MariaDb, true) => (format!("LOWER({text})"), "LIKE", text_param(&pattern).wrap("LOWER(", ")")),
            _ => (text, "LIKE", text_param(&pattern)),
        };
        let mut f = Frag::new(format!("({text} {op} "));
        f.append(param).push(" ESCAPE '!')");
        f
    }

    fn has_key(&mut self, x: &str, key: &str) -> Frag {
        if self.f == Flavor::Postgres {
            let mut f = Frag::new(format!("jsonb_exists({x}, "));
            f.append(text_param(key)).push(")");
            return f;
        }
        let (from, k, _) = self.members(x);
        let mut f = Frag::new(format!("(EXISTS (SELECT 1 FROM {from} WHERE {k} = "));
        f.append(text_param(key));
        let (from, e) = self.elements(x);
        f.push(&format!(") OR EXISTS (SELECT 1 FROM {from} WHERE {} = ", self.text(&e)));
        f.append(text_param(key));
        f.push(&format!(") OR {} = ", self.text(x)));
        f.append(text_param(key)).push(")");
        f
    }

    /// PostgreSQL's `x @> needle` for a known needle: at the top, a list also contains a
    /// bare scalar it holds.
    fn contains_top(&mut self, x: &str, needle: &Json) -> Frag {
        if needle.is_object() || needle.is_array() {
            return self.contains(x, needle);
        }
        let (from, e) = self.elements(x);
        let mut f = Frag::new(format!("(EXISTS (SELECT 1 FROM {from} WHERE "));
        f.append(self.equal(&e, needle)).push(") OR ").append(self.equal(x, needle)).push(")");
        f
    }

    fn contains(&mut self, x: &str, needle: &Json) -> Frag {
        match needle {
            Json::Object(map) => {
                let mut parts = vec![Frag::new(self.is(x, JsonType::Object))];
                for (k, v) in map {
                    let (from, key, member) = self.members(x);
                    let mut f = Frag::new(format!("EXISTS (SELECT 1 FROM {from} WHERE {key} = "));
                    f.append(text_param(k)).push(" AND ").append(self.contains(&member, v)).push(")");
                    parts.push(f);
                }
                Frag::join(parts, " AND ", TRUE)
            }
            Json::Array(items) => {
                let mut parts = vec![Frag::new(self.is(x, JsonType::Array))];
                for v in items {
                    let (from, e) = self.elements(x);
                    let mut f = Frag::new(format!("EXISTS (SELECT 1 FROM {from} WHERE "));
                    f.append(self.contains(&e, v)).push(")");
                    parts.push(f);
                }
                Frag::join(parts, " AND ", TRUE)
            }
            scalar => self.equal(x, scalar),
        }
    }

    /// PostgreSQL's `x <@ haystack` for a known haystack.
    fn contained_by_top(&mut self, x: &str, haystack: &Json) -> Frag {
        match haystack {
            Json::Array(items) => {
                let scalars: Vec<Frag> =
                    items.iter().filter(|v| !v.is_object() && !v.is_array()).map(|v| self.equal(x, v)).collect();
                let mut f = Frag::join(scalars, " OR ", FALSE);
                f = f.wrap("(", " OR ");
                f.append(self.contained_by(x, haystack)).push(")");
                f
            }
            _ => self.contained_by(x, haystack),
        }
    }

    fn contained_by(&mut self, x: &str, haystack: &Json) -> Frag {
        match haystack {
            Json::Object(map) => {
                // Every member of `x` is a member of the haystack it is contained by.
                let (from, key, member) = self.members(x);
                let mut alternatives = Vec::new();
                for (k, v) in map {
                    let mut f = Frag::new(format!("({key} = "));
                    f.append(text_param(k)).push(" AND COALESCE(").append(self.contained_by(&member, v));
                    f.push(&format!(", {FALSE}))"));
                    alternatives.push(f);
                }
                let mut f = Frag::new(format!(
                    "({} AND NOT EXISTS (SELECT 1 FROM {from} WHERE NOT ",
                    self.is(x, JsonType::Object)
                ));
                f.append(Frag::join(alternatives, " OR ", FALSE)).push("))");
                f
            }
            Json::Array(items) => {
                let (from, e) = self.elements(x);
                let alternatives: Vec<Frag> = items
                    .iter()
                    .map(|v| {
                        let inner = self.contained_by(&e, v);
                        inner.wrap("COALESCE(", &format!(", {FALSE})"))
                    })
                    .collect();
                let mut f = Frag::new(format!(
                    "({} AND NOT EXISTS (SELECT 1 FROM {from} WHERE NOT ",
                    self.is(x, JsonType::Array)
                ));
                f.append(Frag::join(alternatives, " OR ", FALSE)).push("))");
                f
            }
            scalar => self.equal(x, scalar),
        }
    }

    /// `x` is this JSON scalar (numbers by value).
    fn equal(&self, x: &str, v: &Json) -> Frag {
        match self.param(v) {
            Some((kind, p)) => {
                let mut f = Frag::new(format!("({} = ", self.typed(x, kind)));
                f.append(p).push(")");
                f
            }
            None if v.is_null() => Frag::new(self.is(x, JsonType::Null)),
            None => Frag::new(FALSE),
        }
    }

    // ---- Orderings, pages, aggregations ------------------------------------------------

    /// The SQL columns an ordering key sorts by, each with "null is largest".
    fn order_columns(&self, field: &str, kind: FieldKind) -> Result<Vec<String>> {
        let keys = plain(field)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let x = self.member("document", &keys);
        Ok(match kind {
            FieldKind::Text => vec![self.text(&x)],
            FieldKind::Number => vec![self.number(&x)],
            FieldKind::Bool => vec![self.boolean(&x)],
            FieldKind::Any => vec![self.rank(&x, 4), self.number(&x), self.text(&x), self.boolean(&x)],
        })
    }

    /// The rank of a value's type: numbers, texts, booleans, lists and objects, then
    /// missing (`missing` is 4 for ordering, 3 for grouping, where lists and objects
    /// group as missing).
    fn rank(&self, x: &str, missing: u8) -> String {
        let other = if missing == 4 { format!("WHEN {} THEN 4 ELSE 3", self.nullish(x)) } else { "ELSE 3".to_owned() };
        format!(
            "(CASE WHEN {} THEN 0 WHEN {} THEN 1 WHEN {} THEN 2 {other} END)",
            self.is(x, JsonType::Number),
            self.is(x, JsonType::String),
            self.is(x, JsonType::Bool)
        )
    }

    /// The values of a keyset in the order columns, `None` for `NULL`.
    fn keyset_values(&self, order: &Order, v: &Json) -> Vec<Option<Frag>> {
        let v = order.kind.of(Some(v));
        let typed = |kind: JsonType| v.and_then(|v| self.param(v).filter(|(k, _)| *k == kind).map(|(_, p)| p));
        match order.kind {
            FieldKind::Text => vec![typed(JsonType::String)],
            FieldKind::Number => vec![typed(JsonType::Number)],
            FieldKind::Bool => vec![typed(JsonType::Bool)],
            FieldKind::Any => {
                let rank = match v {
                    Some(Json::Number(_)) => 0,
                    Some(Json::String(_)) => 1,
                    Some(Json::Bool(_)) => 2,
                    Some(_) => 3,
                    None => 4,
                };
                vec![
                    self.param(&Json::from(rank)).map(|(_, p)| p),
                    typed(JsonType::Number),
                    typed(JsonType::String),
                    typed(JsonType::Bool),
                ]
            }
        }
    }

    /// `ORDER BY` columns, nulls largest, then the id when `id`.
    fn order_by(&self, columns: &[(String, Dir)], id: bool) -> String {
        let mut parts = Vec::new();
        for (c, dir) in columns {
            let d = if *dir == Dir::Asc { "ASC" } else { "DESC" };
            parts.push(match self.f {
                Flavor::Postgres => format!("{c} {d}"),
                Flavor::Sqlite => format!("{c} {d} NULLS {}", if *dir == Dir::Asc { "LAST" } else { "FIRST" }),
                Flavor::MariaDb => format!("({c} IS NULL) {d}, {c} {d}"),
            });
        }
        if id {
            parts.push(ID.to_owned());
        }
        parts.join(", ")
    }

    /// Rows after a keyset: `(c1, .., cn, id) > (v1, .., vn, id)` with each column's
    /// direction, nulls largest.
    fn after(columns: &[(String, Dir)], values: Vec<Option<Frag>>, id: &str) -> Frag {
        let mut alternatives = Vec::new();
        let mut equal_before: Vec<Frag> = Vec::new();
        for ((c, dir), v) in columns.iter().zip(values) {
            let later = match (&v, dir) {
                (None, Dir::Asc) => None,
                (None, Dir::Desc) => Some(Frag::new(format!("({c} IS NOT NULL)"))),
                (Some(p), Dir::Asc) => {
                    let mut f = Frag::new(format!("({c} > "));
                    f.append(p.clone()).push(&format!(" OR {c} IS NULL)"));
                    Some(f)
                }
                (Some(p), Dir::Desc) => {
                    let mut f = Frag::new(format!("({c} < "));
                    f.append(p.clone()).push(")");
                    Some(f)
                }
            };
            if let Some(later) = later {
                let mut parts = equal_before.clone();
                parts.push(later);
                alternatives.push(Frag::join(parts, " AND ", TRUE));
            }
            equal_before.push(match v {
                None => Frag::new(format!("({c} IS NULL)")),
                Some(p) => {
                    let mut f = Frag::new(format!("({c} = "));
                    f.append(p).push(")");
                    f
                }
            });
        }
        let mut last = Frag::new(format!("({ID} > "));
        last.append(text_param(id)).push(")");
        equal_before.push(last);
        alternatives.push(Frag::join(equal_before, " AND ", TRUE));
        Frag::join(alternatives, " OR ", FALSE)
    }

    /// The `WHERE` of a collection of a tenant and a filter.
    fn scope(&mut self, collection: &str, tenant: &str, spec: Option<&Spec>) -> Result<Frag> {
        let mut f = Frag::new(" WHERE collection = ");
        f.append(text_param(collection)).push(" AND tenant_id = ").append(text_param(tenant));
        if let Some(spec) = spec {
            f.push(" AND ").append(self.spec(spec)?);
        }
        Ok(f)
    }

    /// `SELECT` of the documents a query finds, in its order and page.
    pub(crate) fn find(&mut self, table: &str, collection: &str, tenant: &str, q: &QueryOptions) -> Result<Frag> {
        q.check().map_err(Error::Spec)?;
        let pg_text = if self.f == Flavor::Postgres { "::text" } else { "" };
        let mut f = Frag::new(format!("SELECT id, version, document{pg_text} AS document FROM {table}"));
        f.append(self.scope(collection, tenant, q.spec.as_ref())?);
        let mut columns = Vec::new();
        for o in &q.order {
            for c in self.order_columns(&o.field, o.kind)? {
                columns.push((c, o.dir));
            }
        }
        if let Some(after) = &q.after {
            let mut values = Vec::new();
            for (o, v) in q.order.iter().zip(&after.values) {
                values.extend(self.keyset_values(o, v));
            }
            f.push(" AND ").append(Self::after(&columns, values, &after.id));
        }
        f.push(" ORDER BY ").push(&self.order_by(&columns, true));
        let limit = q.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        match (limit, offset) {
            (None, 0) => {}
            (Some(l), 0) => {
                f.push(" LIMIT ?");
                f.args.push(Arg::Int(l));
            }
            (l, o) => {
                let l = l.unwrap_or(match self.f {
                    Flavor::Sqlite => -1,
                    _ => i64::MAX,
                });
                f.push(" LIMIT ? OFFSET ?");
                f.args.push(Arg::Int(l));
                f.args.push(Arg::Int(o));
            }
        }
        Ok(f)
    }

    /// `SELECT count(*) AS n` of the documents a filter finds.
    pub(crate) fn count(&mut self, table: &str, collection: &str, tenant: &str, q: &QueryOptions) -> Result<Frag> {
        q.check().map_err(Error::Spec)?;
        let mut f = Frag::new(format!("SELECT count(*) AS n FROM {table}"));
        f.append(self.scope(collection, tenant, q.spec.as_ref())?);
        Ok(f)
    }

    fn as_text(&self, e: &str) -> String {
        match self.f {
            Flavor::Postgres => format!("CAST({e} AS text)"),
            Flavor::Sqlite => format!("CAST({e} AS TEXT)"),
            Flavor::MariaDb => format!("CAST({e} AS CHAR)"),
        }
    }

    /// An aggregation: per group field `g{i}_r`, `g{i}_n`, `g{i}_t`, `g{i}_b` (rank,
    /// number, text, boolean as text), per measure `m{i}` (as text).
    pub(crate) fn aggregate(&mut self, table: &str, collection: &str, tenant: &str, a: &Aggregation) -> Result<Frag> {
        a.check().map_err(Error::Spec)?;
        let mut select = Vec::new();
        let mut group = Vec::new();
        for (i, field) in a.group_by.iter().enumerate() {
            let keys = plain(field)?;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let x = self.member("document", &keys);
            let cols = [("r", self.rank(&x, 3)), ("n", self.number(&x)), ("t", self.text(&x)), ("b", self.boolean(&x))];
            for (suffix, e) in cols {
                select.push(format!("{} AS g{i}_{suffix}", self.as_text(&e)));
                group.push(e);
            }
        }
        for (i, m) in a.measures.iter().enumerate() {
            let x = match &m.field {
                Some(field) => {
                    let keys = plain(field)?;
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    Some(self.member("document", &keys))
                }
                None => None,
            };
            let e = match (m.func, x) {
                (AggFn::Count, None) => "count(*)".to_owned(),
                (AggFn::Count, Some(x)) => format!("count(CASE WHEN NOT {} THEN 1 END)", self.nullish(&x)),
                (func, Some(x)) => {
                    let name = match func {
                        AggFn::Sum => "sum",
                        AggFn::Avg => "avg",
                        AggFn::Min => "min",
                        _ => "max",
                    };
                    format!("{name}({})", self.number(&x))
                }
                (_, None) => "NULL".to_owned(),
            };
            select.push(format!("{} AS m{i}", self.as_text(&e)));
        }
        if select.is_empty() {
            select.push("count(*) AS n".to_owned());
        }
        let mut f = Frag::new(format!("SELECT {} FROM {table}", select.join(", ")));
        f.append(self.scope(collection, tenant, a.spec.as_ref())?);
        if !group.is_empty() {
            let _ = write!(f.sql, " GROUP BY {}", group.join(", "));
            let order: Vec<(String, Dir)> = group.into_iter().map(|g| (g, Dir::Asc)).collect();
            let order = self.order_by(&order, false);
            let _ = write!(f.sql, " ORDER BY {order}");
        }
        Ok(f)
    }

    /// `CREATE INDEX` for a declared index: the collection, the tenant, then each field's
    /// typed expression, as the compiled queries write it.
    pub(crate) fn index(&self, prefix: &str, collection: &str, index: &Index) -> Result<Option<String>> {
        if self.f == Flavor::MariaDb || index.fields.is_empty() {
            return Ok(None);
        }
        let mut columns = vec!["collection".to_owned(), "tenant_id".to_owned()];
        for (field, kind) in &index.fields {
            for c in self.order_columns(field, *kind)? {
                columns.push(if self.f == Flavor::Postgres { format!("({c})") } else { c });
            }
        }
        let mut name = String::from(collection);
        for (field, kind) in &index.fields {
            let _ = write!(name, "|{field}:{kind:?}");
        }
        let table = if self.f == Flavor::Postgres { format!("{prefix}documents") } else { "documents".to_owned() };
        Ok(Some(format!(
            "CREATE INDEX IF NOT EXISTS documents_ix_{:016x} ON {table} ({})",
            fnv1a(name.as_bytes()),
            columns.join(", ")
        )))
    }
}

/// A text parameter.
fn text_param(s: &str) -> Frag {
    Frag { sql: "?".to_owned(), args: vec![Arg::Text(s.to_owned())] }
}

/// JSON's types, as the compiler tests them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    String,
    Number,
    Bool,
    Array,
    Object,
    Null,
}

/// One token of a `LIKE` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Like {
    Any,
    One,
    Char(char),
}

/// The tokens of a pattern in the evaluator's syntax: `%`, `_`, and `\` escaping the next
/// character.
fn like_tokens(pattern: &str) -> Vec<Like> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => Like::Char(chars.next().unwrap_or('\\')),
            '%' => Like::Any,
            '_' => Like::One,
            other => Like::Char(other),
        });
    }
    out
}

fn text_of(c: &Condition) -> Result<&str> {
    c.val.as_str().ok_or_else(|| bad(c, "takes a text"))
}

/// `"a"."b"` for a JSON path (names are letters, digits, `_` and `-`).
fn quoted_keys(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(".")
}

/// The names of a path that does not cross a list.
fn plain(field: &str) -> Result<Vec<String>> {
    let path = Path::parse(field)
        .map_err(|reason| Error::Spec(EvalError::BadValue { attr: field.to_owned(), op: Op::Eq, reason }))?;
    path.keys().map(|k| k.into_iter().map(ToOwned::to_owned).collect()).ok_or_else(|| {
        Error::Spec(EvalError::BadValue {
            attr: field.to_owned(),
            op: Op::Eq,
            reason: "ordering, selected and grouped fields do not cross a list (`[*]`)".to_owned(),
        })
    })
}

/// A stable 64-bit hash (FNV-1a), for index names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Reads an aggregation's rows back into JSON objects.
pub(crate) fn aggregate_row(a: &Aggregation, text: impl Fn(&str) -> Result<Option<String>>) -> Result<Json> {
    let mut row = serde_json::Map::new();
    let number = |s: Option<String>| -> Json {
        s.and_then(|s| s.trim().parse::<f64>().ok()).map_or(Json::Null, cqrs_ddd::spec::number)
    };
    for (i, field) in a.group_by.iter().enumerate() {
        let rank = text(&format!("g{i}_r"))?;
        let v = match rank.as_deref().map(str::trim) {
            Some("0") => number(text(&format!("g{i}_n"))?),
            Some("1") => text(&format!("g{i}_t"))?.map_or(Json::Null, Json::String),
            Some("2") => {
                text(&format!("g{i}_b"))?.map_or(Json::Null, |b| Json::Bool(matches!(b.trim(), "true" | "1" | "t")))
            }
            _ => Json::Null,
        };
        row.insert(field.clone(), v);
    }
    for (i, m) in a.measures.iter().enumerate() {
        let v = text(&format!("m{i}"))?;
        row.insert(
            m.alias.clone(),
            match m.func {
                AggFn::Count => number(v.or_else(|| Some("0".to_owned()))),
                _ => number(v),
            },
        );
    }
    Ok(Json::Object(row))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(f: Flavor, spec: &Spec) -> Frag {
        Compiler::new(f).spec(spec).unwrap()
    }

    #[test]
    fn values_are_parameters_never_text() {
        let hostile = "x'); DROP TABLE documents; --";
        let spec = Spec::leaf("name", Op::Eq, hostile)
            | Spec::leaf("name", Op::Contains, hostile)
            | Spec::leaf("tags", Op::JsonContains, json!({ hostile: [hostile] }))
            | Spec::leaf("tags", Op::JsonHasKey, hostile);
        for f in [Flavor::Postgres, Flavor::Sqlite, Flavor::MariaDb] {
            let frag = compiled(f, &spec);
            assert!(!frag.sql.contains("DROP"), "{f:?}: {}", frag.sql);
            assert_eq!(frag.sql.matches('?').count(), frag.args.len(), "{f:?}: {}", frag.sql);
        }
    }

    #[test]
    fn hostile_field_names_are_refused() {
        for attr in ["a'b", "a\"b", "a;b", "a) OR (1=1", ""] {
            let err = Compiler::new(Flavor::Postgres).spec(&Spec::leaf(attr, Op::Eq, 1)).unwrap_err();
            assert!(matches!(err, Error::Spec(EvalError::BadValue { .. })), "{attr}");
        }
    }

    #[test]
    fn like_patterns_are_escaped_for_each_database() {
        let spec = Spec::leaf("s", Op::Contains, "50%_!*");
        assert_eq!(compiled(Flavor::Postgres, &spec).args, [Arg::Text("%50!%!_!!*%".into())]);
        assert_eq!(compiled(Flavor::Sqlite, &spec).args, [Arg::Text("*50%_![*]*".into())]);
        let like = Spec::leaf("s", Op::Like, "a\\%b_");
        assert_eq!(compiled(Flavor::MariaDb, &like).args, [Arg::Text("a!%b_".into())]);
    }

    #[test]
    fn a_bad_value_is_the_evaluators_error() {
        let err = Compiler::new(Flavor::Sqlite).spec(&Spec::leaf("n", Op::Between, json!([1]))).unwrap_err();
        assert!(matches!(err, Error::Spec(EvalError::BadValue { .. })));
        let err = Compiler::new(Flavor::Sqlite).spec(&Spec::leaf("g", Op::Within, json!({}))).unwrap_err();
        if cfg!(feature = "geo") {
            assert!(matches!(err, Error::Spec(EvalError::BadValue { .. })), "{err}");
        } else {
            assert!(matches!(err, Error::Spec(EvalError::Unsupported(Op::Within))), "{err}");
        }
    }

    #[test]
    fn index_names_are_stable() {
        let c = Compiler::new(Flavor::Postgres);
        let sql = c.index("\"s\".", "books", &Index::on("status", FieldKind::Text)).unwrap().unwrap();
        assert!(sql.starts_with("CREATE INDEX IF NOT EXISTS documents_ix_"), "{sql}");
        assert_eq!(sql, c.index("\"s\".", "books", &Index::on("status", FieldKind::Text)).unwrap().unwrap());
        assert!(
            Compiler::new(Flavor::MariaDb).index("", "books", &Index::on("status", FieldKind::Text)).unwrap().is_none()
        );
    }
}
