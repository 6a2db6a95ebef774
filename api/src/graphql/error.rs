//! Domain errors become GraphQL errors here and only here, with codes of [`Code`]:
//! `BAD_USER_INPUT` (with `field`), `NOT_FOUND`, `UNAUTHENTICATED`, `FORBIDDEN`,
//! `CONVERSATION_EXPIRED`, `LIMIT_REACHED` (with `max`), `SERVICE_UNAVAILABLE` and
//! `INTERNAL_SERVER_ERROR`. Internals are logged, never sent to clients.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

use crate::code::Code;

/// A resolver's error. Deliberately not `Display`, so it cannot slip through
/// async-graphql's blanket conversion and lose its code.
#[derive(Debug, Clone)]
pub enum ApiError {
    Domain(Arc<domain::Error>),
    Graphql(async_graphql::Error),
}

/// A resolver's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<domain::Error> for ApiError {
    fn from(e: domain::Error) -> Self {
        ApiError::Domain(Arc::new(e))
    }
}

impl From<async_graphql::Error> for ApiError {
    fn from(e: async_graphql::Error) -> Self {
        ApiError::Graphql(e)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Domain(e) => to_graphql(&e),
            ApiError::Graphql(e) => e,
        }
    }
}

fn to_graphql(e: &domain::Error) -> async_graphql::Error {
    use domain::Error as E;
    match e {
        E::Invalid { field, message } => {
            let field = field.clone();
            async_graphql::Error::new(format!("{field}: {message}")).extend_with(|_, ext| {
                ext.set("code", Code::BadUserInput.as_str());
                ext.set("field", field.as_str());
            })
        }
        E::NotFound(_) => e.extend_with(|_, ext| ext.set("code", Code::NotFound.as_str())),
        E::Unauthenticated => {
            e.extend_with(|_, ext| ext.set("code", Code::Unauthenticated.as_str()))
        }
        E::Forbidden => e.extend_with(|_, ext| ext.set("code", Code::Forbidden.as_str())),
        E::ConversationExpired => {
            e.extend_with(|_, ext| ext.set("code", Code::ConversationExpired.as_str()))
        }
        E::LimitReached { max, .. } => {
            let max = *max;
            e.extend_with(|_, ext| {
                ext.set("code", Code::LimitReached.as_str());
                ext.set("max", max);
            })
        }
        E::TooOften { max, .. } => {
            let max = *max;
            e.extend_with(|_, ext| {
                ext.set("code", Code::RateLimited.as_str());
                ext.set("max", max);
            })
        }
        E::Unavailable(source) => {
            tracing::warn!(error = %source, "database unavailable");
            async_graphql::Error::new("the service is temporarily unavailable, try again shortly")
                .extend_with(|_, ext| ext.set("code", Code::ServiceUnavailable.as_str()))
        }
        E::Corrupt(source) => {
            tracing::error!(error = %source, "unreadable row");
            async_graphql::Error::new("internal error")
                .extend_with(|_, ext| ext.set("code", Code::InternalServerError.as_str()))
        }
        E::Db(source) => {
            tracing::error!(error = %source, "database error");
            async_graphql::Error::new("internal error")
                .extend_with(|_, ext| ext.set("code", Code::InternalServerError.as_str()))
        }
    }
}
