//! What can go wrong, worded for the person running the benchmark.

use std::fmt::Display;

use crate::scenarios::Backend;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "{} at {url} is not reachable: {source}; start it with scripts/services.sh \
         (or point {} at a running server)",
        .backend.name(),
        .backend.env()
    )]
    Unreachable { backend: Backend, url: String, source: sqlx::Error },
    #[error(
        "{} at {url} refused the connection: {source}; check the user and database in {}",
        .backend.name(),
        .backend.env()
    )]
    Refused { backend: Backend, url: String, source: sqlx::Error },
    #[error("{}: {what} failed: {source}", .backend.name())]
    Sql { backend: Backend, what: String, source: sqlx::Error },
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
    /// A failed connection to PostgreSQL: refused by the server (user, database, auth),
    /// or no server.
    pub(crate) fn connecting(url: String, source: sqlx::Error) -> Self {
        Self::connecting_to(Backend::Postgres, url, source)
    }

    /// A failed connection to the server of `backend`.
    pub(crate) fn connecting_to(backend: Backend, url: String, source: sqlx::Error) -> Self {
        match source {
            sqlx::Error::Database(_) => BenchError::Refused { backend, url, source },
            _ => BenchError::Unreachable { backend, url, source },
        }
    }

    pub(crate) fn framework(contender: &'static str, what: &'static str, e: impl Display) -> Self {
        BenchError::Framework { contender, what, message: e.to_string() }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io { what: what.into(), source }
    }
}

/// `.sql("insert into events")?` on a sqlx result of PostgreSQL, `.sql_on(backend, ..)`
/// on one of another database.
pub(crate) trait SqlContext<T> {
    fn sql(self, what: &str) -> Result<T, BenchError>;
    fn sql_on(self, backend: Backend, what: &str) -> Result<T, BenchError>;
}

impl<T> SqlContext<T> for Result<T, sqlx::Error> {
    fn sql(self, what: &str) -> Result<T, BenchError> {
        self.sql_on(Backend::Postgres, what)
    }

    fn sql_on(self, backend: Backend, what: &str) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Sql { backend, what: what.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_name_the_database_and_its_variable() {
        #[cfg(feature = "mysql")]
        {
            let down =
                BenchError::connecting_to(Backend::MariaDb, "mysql://root@h:3306".into(), sqlx::Error::PoolTimedOut);
            let text = down.to_string();
            assert!(text.starts_with("MariaDB at mysql://root@h:3306 is not reachable"), "{text}");
            assert!(text.contains("MYSQL_URL"), "{text}");
        }
        let pg = BenchError::connecting("postgres://h".into(), sqlx::Error::PoolTimedOut).to_string();
        assert!(pg.starts_with("PostgreSQL at postgres://h") && pg.contains("DATABASE_URL"), "{pg}");
        let sql: Result<(), _> = Err(sqlx::Error::RowNotFound);
        assert!(sql.sql_on(Backend::Sqlite, "seeding").unwrap_err().to_string().starts_with("SQLite: seeding failed"));
    }
}
