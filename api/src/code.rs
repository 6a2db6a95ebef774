//! The closed set of `extensions.code` values the API answers, at both of its boundaries:
//! GraphQL errors (`graphql::error`, `graphql::limits`) and refusals before GraphQL (the
//! HTTP layer). The README's error table lists exactly these (a test reads it), and metrics
//! label errors with them.

/// An error's `extensions.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    BadUserInput,
    NotFound,
    Unauthenticated,
    Forbidden,
    OriginNotAllowed,
    ConversationExpired,
    LimitReached,
    GraphqlParseFailed,
    GraphqlValidationFailed,
    QueryTooDeep,
    QueryTooComplex,
    TooManyAliases,
    RateLimited,
    BatchNotSupported,
    BadRequest,
    UnsupportedMediaType,
    NotAcceptable,
    MethodNotAllowed,
    ServiceUnavailable,
    InternalServerError,
}

impl Code {
    /// Every code, in the README table's order.
    pub const ALL: [Code; 20] = [
        Code::BadUserInput,
        Code::NotFound,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::OriginNotAllowed,
        Code::ConversationExpired,
        Code::LimitReached,
        Code::GraphqlParseFailed,
        Code::GraphqlValidationFailed,
        Code::QueryTooDeep,
        Code::QueryTooComplex,
        Code::TooManyAliases,
        Code::RateLimited,
        Code::BatchNotSupported,
        Code::BadRequest,
        Code::UnsupportedMediaType,
        Code::NotAcceptable,
        Code::MethodNotAllowed,
        Code::ServiceUnavailable,
        Code::InternalServerError,
    ];

    /// As clients see it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            Code::ConversationExpired => "CONVERSATION_EXPIRED",
            Code::LimitReached => "LIMIT_REACHED",
            Code::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::QueryTooDeep => "QUERY_TOO_DEEP",
            Code::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Code::TooManyAliases => "TOO_MANY_ALIASES",
            Code::RateLimited => "RATE_LIMITED",
            Code::BatchNotSupported => "BATCH_NOT_SUPPORTED",
            Code::BadRequest => "BAD_REQUEST",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::NotAcceptable => "NOT_ACCEPTABLE",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Code::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The code spelled `s`, if it is one of ours.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Refusals before execution: the request itself was wrong (HTTP 400 under
    /// `application/graphql-response+json`).
    pub const fn is_request_error(self) -> bool {
        matches!(
            self,
            Code::GraphqlParseFailed
                | Code::GraphqlValidationFailed
                | Code::QueryTooDeep
                | Code::QueryTooComplex
                | Code::TooManyAliases
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_is_listed_once() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        let unique: std::collections::HashSet<_> = Code::ALL.iter().collect();
        assert_eq!(unique.len(), Code::ALL.len());
        assert_eq!(Code::parse("UNKNOWN"), None);
    }

    /// The README's error table documents exactly the codes the API answers.
    #[test]
    fn the_readme_lists_exactly_these_codes() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Errors")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .expect("the README has an Errors section");
        let listed: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        let ours: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours, "README error table vs api::code::Code");
    }
}
