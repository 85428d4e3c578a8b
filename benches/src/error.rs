//! What can go wrong, worded for the person running the benchmark.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "PostgreSQL at {url} is not reachable: {source}; start it with scripts/services.sh \
         (or point DATABASE_URL at a running server)"
    )]
    Unreachable { url: String, source: sqlx::Error },
    #[error("PostgreSQL at {url} refused the connection: {source}; check the user and database in DATABASE_URL")]
    Refused { url: String, source: sqlx::Error },
    #[error("PostgreSQL: {what} failed: {source}")]
    Sql { what: String, source: sqlx::Error },
    #[error("{contender}: {what} failed: {message}")]
    Framework { contender: &'static str, what: &'static str, message: String },
    #[error("{0}")]
    Check(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{contender} in `{group}` failed: {message}")]
    Cell { contender: &'static str, group: &'static str, message: String },
    #[error("interrupted")]
    Interrupted,
}

impl BenchError {
    /// A failed connection: refused by the server (user, database, auth), or no server.
    pub(crate) fn connecting(url: String, source: sqlx::Error) -> Self {
        match source {
            sqlx::Error::Database(_) => BenchError::Refused { url, source },
            _ => BenchError::Unreachable { url, source },
        }
    }

    pub(crate) fn framework(contender: &'static str, what: &'static str, e: impl Display) -> Self {
        BenchError::Framework { contender, what, message: e.to_string() }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io { what: what.into(), source }
    }
}

/// `.sql("insert into events")?` on a sqlx result.
pub(crate) trait SqlContext<T> {
    fn sql(self, what: &str) -> Result<T, BenchError>;
}

impl<T> SqlContext<T> for Result<T, sqlx::Error> {
    fn sql(self, what: &str) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Sql { what: what.to_owned(), source })
    }
}
