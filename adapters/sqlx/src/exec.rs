//! Running a statement on any of the databases, written once.
//!
//! sqlx's traits are generic, but code generic over `sqlx::Database` must repeat a dozen
//! higher-ranked bounds (`for<'c> &'c mut Connection: Executor<'c>`, `for<'q> String:
//! Encode<'q, DB>`, ...) on every function and impl block: Rust does not carry such
//! bounds along with a type parameter. Here they are written once, on the blanket impls
//! of two small traits, [`SqlConn`] (run a [`Stmt`]) and [`SqlRow`] (read a column by
//! name). A [`Dialect`](crate::dialect::Dialect) names its connection and row types with
//! those traits as bounds, which Rust does carry, so the generic store needs no
//! where-clause at all.
//!
//! Arguments are collected as [`Value`]s and bound in order when the statement runs:
//! one small vector per statement, nothing per row returned.

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::{ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

/// One argument of a statement.
#[derive(Debug, Clone)]
pub enum Value<'q> {
    /// Text borrowed from the caller.
    Str(&'q str),
    /// Text, or NULL.
    OptStr(Option<&'q str>),
    /// Text made for the statement.
    String(String),
    /// Text made for the statement, or NULL.
    OptString(Option<String>),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit integer, or NULL.
    OptInt(Option<i64>),
    /// A double-precision number (the coordinates and distances of geometry filters).
    Float(f64),
    /// A UUID in the database's own encoding.
    Uuid(Uuid),
    /// A UUID, or NULL.
    OptUuid(Option<Uuid>),
    /// A time in the database's timestamp type.
    Time(DateTime<Utc>),
    /// A time, or NULL.
    OptTime(Option<DateTime<Utc>>),
    /// A time in UTC, sent without a zone (MariaDB's `DATETIME`).
    Naive(NaiveDateTime),
}

/// A statement and its arguments, in placeholder order.
#[derive(Debug)]
pub struct Stmt<'q> {
    pub(crate) sql: &'q str,
    pub(crate) args: Vec<Value<'q>>,
}

impl<'q> Stmt<'q> {
    /// A statement with no arguments yet.
    pub(crate) fn new(sql: &'q str) -> Self {
        Stmt { sql, args: Vec::new() }
    }

    /// Appends an argument.
    pub(crate) fn arg(mut self, v: Value<'q>) -> Self {
        self.args.push(v);
        self
    }

    /// Appends a text argument.
    pub(crate) fn str(self, v: &'q str) -> Self {
        self.arg(Value::Str(v))
    }

    /// Appends an integer argument.
    pub(crate) fn int(self, v: i64) -> Self {
        self.arg(Value::Int(v))
    }

    /// Appends a UUID argument.
    pub(crate) fn uuid(self, v: Uuid) -> Self {
        self.arg(Value::Uuid(v))
    }
}

/// A connection that runs [`Stmt`]s: every sqlx connection whose database binds the
/// [`Value`] types (all three here).
#[doc(hidden)]
pub trait SqlConn: Send {
    /// The row type.
    type Row: Send + Unpin;

    /// Runs the statement; the number of rows it changed.
    fn run<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<u64, sqlx::Error>>;
    /// Every row the statement returns.
    fn rows<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>>;
    /// The first row, if any.
    fn row<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>>;
    /// The rows one at a time.
    fn stream<'a>(&'a mut self, s: Stmt<'a>) -> BoxStream<'a, Result<Self::Row, sqlx::Error>>;
    /// Runs SQL text of one or more statements without arguments (migrations).
    fn script<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// A database that binds every [`Value`].
#[doc(hidden)]
pub trait Binds: Database {
    /// `q` with `v` bound as its next argument.
    fn bind_value<'q>(q: Query<'q, Self>, v: Value<'q>) -> Query<'q, Self>;
}

impl<DB> Binds for DB
where
    DB: Database,
    for<'v> &'v str: Encode<'v, DB> + Type<DB>,
    for<'v> Option<&'v str>: Encode<'v, DB> + Type<DB>,
    String: for<'v> Encode<'v, DB> + Type<DB>,
    Option<String>: for<'v> Encode<'v, DB> + Type<DB>,
    i64: for<'v> Encode<'v, DB> + Type<DB>,
    Option<i64>: for<'v> Encode<'v, DB> + Type<DB>,
    f64: for<'v> Encode<'v, DB> + Type<DB>,
    Uuid: for<'v> Encode<'v, DB> + Type<DB>,
    Option<Uuid>: for<'v> Encode<'v, DB> + Type<DB>,
    DateTime<Utc>: for<'v> Encode<'v, DB> + Type<DB>,
    Option<DateTime<Utc>>: for<'v> Encode<'v, DB> + Type<DB>,
    NaiveDateTime: for<'v> Encode<'v, DB> + Type<DB>,
{
    fn bind_value<'q>(q: Query<'q, Self>, v: Value<'q>) -> Query<'q, Self> {
        match v {
            Value::Str(v) => q.bind(v),
            Value::OptStr(v) => q.bind(v),
            Value::String(v) => q.bind(v),
            Value::OptString(v) => q.bind(v),
            Value::Int(v) => q.bind(v),
            Value::OptInt(v) => q.bind(v),
            Value::Float(v) => q.bind(v),
            Value::Uuid(v) => q.bind(v),
            Value::OptUuid(v) => q.bind(v),
            Value::Time(v) => q.bind(v),
            Value::OptTime(v) => q.bind(v),
            Value::Naive(v) => q.bind(v),
        }
    }
}

pub(crate) fn bind<DB: Binds>(s: Stmt<'_>) -> Query<'_, DB> {
    s.args.into_iter().fold(sqlx::query::<DB>(s.sql), DB::bind_value)
}

impl<C> SqlConn for C
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    for<'q> <C::Database as Database>::Arguments<'q>: IntoArguments<'q, C::Database>,
    C::Database: Binds,
    <C::Database as Database>::QueryResult: RowsAffected,
{
    type Row = <C::Database as Database>::Row;

    fn run<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            let done = bind::<C::Database>(s).execute(self).await?;
            Ok(done.rows_affected())
        })
    }

    fn rows<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
        Box::pin(bind::<C::Database>(s).fetch_all(self))
    }

    fn row<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>> {
        Box::pin(bind::<C::Database>(s).fetch_optional(self))
    }

    fn stream<'a>(&'a mut self, s: Stmt<'a>) -> BoxStream<'a, Result<Self::Row, sqlx::Error>> {
        bind::<C::Database>(s).fetch(self).boxed()
    }

    fn script<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(sqlx::raw_sql(sql).execute_many(self).try_for_each(|_| async { Ok(()) }))
    }
}

/// The number of rows a statement changed, which sqlx reports per database.
#[doc(hidden)]
pub trait RowsAffected {
    /// Rows changed.
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A row whose columns are read by name: every sqlx row of a database that decodes the
/// [`Value`] types.
#[doc(hidden)]
pub trait SqlRow: Send + Unpin + 'static {
    /// Text.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// Text or NULL.
    fn text_opt(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// Text read without the type check (MariaDB flags text of a binary collation as
    /// binary, which sqlx would refuse as text).
    fn text_unchecked(&self, col: &str) -> Result<String, sqlx::Error>;
    /// Text or NULL, read without the type check.
    fn text_opt_unchecked(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// The integer in column `i` (no lookup of the column by name: the hot rows).
    fn int_at(&self, i: usize) -> Result<i64, sqlx::Error>;
    /// The text in column `i`.
    fn text_at(&self, i: usize) -> Result<String, sqlx::Error>;
    /// The text in column `i`, read without the type check.
    fn text_at_unchecked(&self, i: usize) -> Result<String, sqlx::Error>;
    /// An integer or NULL.
    fn int_opt(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A UUID.
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error>;
    /// A UUID or NULL.
    fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error>;
    /// A timestamp.
    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error>;
    /// A timestamp or NULL.
    fn time_opt(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error>;
}

impl<R> SqlRow for R
where
    R: Row + Send + Unpin + 'static,
    for<'n> &'n str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
    Option<Uuid>: for<'r> Decode<'r, R::Database>,
    Option<DateTime<Utc>>: for<'r> Decode<'r, R::Database>,
    Uuid: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }

    fn text_opt(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }

    fn text_unchecked(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get_unchecked(col)
    }

    fn text_opt_unchecked(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get_unchecked(col)
    }

    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.try_get(col)
    }

    fn int_opt(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }

    fn int_at(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }

    fn text_at(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }

    fn text_at_unchecked(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get_unchecked(i)
    }

    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get(col)
    }

    fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
        self.try_get(col)
    }

    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.try_get(col)
    }

    fn time_opt(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        self.try_get(col)
    }
}
