//! Domain errors become GraphQL errors here and only here, with a closed set of
//! `extensions.code` values: `BAD_USER_INPUT` (with `field`), `NOT_FOUND`, `UNAUTHENTICATED`,
//! `FORBIDDEN`, `CONVERSATION_EXPIRED`, `LIMIT_REACHED` (with `max`), `SERVICE_UNAVAILABLE`
//! and `INTERNAL_SERVER_ERROR`. Internals are logged, never
//! sent to clients.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

/// Every `extensions.code` the service answers (the README's error table): resolvers' codes
/// from this module, the refusals of `limits` and the HTTP layer's. Metrics label errors
/// with these and nothing else.
pub const CODES: [&str; 20] = [
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "ORIGIN_NOT_ALLOWED",
    "CONVERSATION_EXPIRED",
    "LIMIT_REACHED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "TOO_MANY_ALIASES",
    "RATE_LIMITED",
    "BATCH_NOT_SUPPORTED",
    "BAD_REQUEST",
    "UNSUPPORTED_MEDIA_TYPE",
    "NOT_ACCEPTABLE",
    "METHOD_NOT_ALLOWED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_SERVER_ERROR",
];

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
                ext.set("code", "BAD_USER_INPUT");
                ext.set("field", field.as_str());
            })
        }
        E::NotFound(_) => e.extend_with(|_, ext| ext.set("code", "NOT_FOUND")),
        E::Unauthenticated => e.extend_with(|_, ext| ext.set("code", "UNAUTHENTICATED")),
        E::Forbidden => e.extend_with(|_, ext| ext.set("code", "FORBIDDEN")),
        E::ConversationExpired => e.extend_with(|_, ext| ext.set("code", "CONVERSATION_EXPIRED")),
        E::LimitReached { max, .. } => {
            let max = *max;
            e.extend_with(|_, ext| {
                ext.set("code", "LIMIT_REACHED");
                ext.set("max", max);
            })
        }
        E::Unavailable(source) => {
            tracing::warn!(error = %source, "database unavailable");
            async_graphql::Error::new("the service is temporarily unavailable, try again shortly")
                .extend_with(|_, ext| ext.set("code", "SERVICE_UNAVAILABLE"))
        }
        E::Db(source) => {
            tracing::error!(error = %source, "database error");
            async_graphql::Error::new("internal error")
                .extend_with(|_, ext| ext.set("code", "INTERNAL_SERVER_ERROR"))
        }
    }
}
