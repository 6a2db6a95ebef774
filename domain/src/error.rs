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

/// Whether the error means "could not talk to the database" rather than "the query failed".
fn is_connection_error(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        ),
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
