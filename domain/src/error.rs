//! The one error type of the domain. The API maps it to GraphQL error codes in one place.

use sea_orm::{DbErr, RuntimeErr};

/// What can go wrong in a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something we refuse; `field` names the input field (`emails[1]`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The id does not exist, or belongs to another account (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The conversation was idle too long; the visitor must start a new one.
    #[error("the conversation has expired; start a new one")]
    ConversationExpired,
    /// No key, an unknown key, or a revoked key.
    #[error("a valid API key is required")]
    Unauthenticated,
    /// The key is valid but its kind may not do this.
    #[error("this API key may not perform this operation")]
    Forbidden,
    /// The account already has the most of these it may have.
    #[error("an account may have at most {max} {what}; delete some first")]
    LimitReached { what: &'static str, max: u64 },
    /// The caller did this as often as an hour allows.
    #[error("{what} at most {max} times an hour; try again later")]
    TooOften { what: &'static str, max: u64 },
    /// The database could not be reached; worth retrying later.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbErr),
    /// Any other database failure: a bug or a broken schema.
    #[error("database error")]
    Db(#[source] DbErr),
    /// A stored value the code cannot read (a corrupt row, or a newer version's): a state
    /// none of its enum's, a JSON column that is not its type.
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
}

/// Shorthand for domain results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if is_connection_error(&err) {
            Error::Unavailable(err)
        } else if is_decode_error(&err) {
            Error::Corrupt(err.to_string())
        } else {
            Error::Db(err)
        }
    }
}

/// Whether the error means "the database cannot be reached right now" rather than "the query
/// failed": worth a retry, answered `SERVICE_UNAVAILABLE`.
fn is_connection_error(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            is_unreachable(e)
        }
        _ => false,
    }
}

/// The sqlx errors of a database that is away: the connection refused, reset or closed, the
/// pool out of connections, or the server shutting down, starting up or in recovery.
fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash
            // shutdown, cannot connect now: starting up or in recovery), 53300 (too many
            // connections).
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether a row was read but a column's value is not its type: an unknown state (sea-orm's
/// active enums), JSON of another shape (sqlx's decoding of a typed JSON column).
fn is_decode_error(err: &DbErr) -> bool {
    match err {
        DbErr::Type(_) | DbErr::Json(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A server error with a SQLSTATE, as the PostgreSQL driver reports it.
    #[derive(Debug)]
    struct ServerError(&'static str);

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for ServerError {}

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn query_error(e: sqlx::Error) -> Error {
        Error::from(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(e))))
    }

    #[test]
    fn a_database_that_is_away_is_unavailable_not_a_failure() {
        for code in ["57P01", "57P02", "57P03", "08006", "08001", "53300"] {
            let e = query_error(sqlx::Error::Database(Box::new(ServerError(code))));
            assert!(matches!(e, Error::Unavailable(_)), "{code}: {e:?}");
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            query_error(sqlx::Error::Io(refused)),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            query_error(sqlx::Error::PoolTimedOut),
            Error::Unavailable(_)
        ));
        for code in ["23505", "42P01"] {
            let e = query_error(sqlx::Error::Database(Box::new(ServerError(code))));
            assert!(matches!(e, Error::Db(_)), "{code}: {e:?}");
        }
    }
}
