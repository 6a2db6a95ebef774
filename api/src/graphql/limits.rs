//! Refusals before execution, each with its own `extensions.code`: `GRAPHQL_PARSE_FAILED`,
//! `GRAPHQL_VALIDATION_FAILED`, `QUERY_TOO_DEEP`, `QUERY_TOO_COMPLEX` and `TOO_MANY_ALIASES`
//! (aliases multiply the work one request can ask for).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::code::Code;

/// The limits; see the README's error table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

fn coded(mut error: ServerError, code: Code) -> ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
    error
}

/// async-graphql's messages for an input that does not fit its type.
fn is_coercion(message: &str) -> bool {
    message.starts_with("Failed to parse") || message.starts_with("Invalid value")
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Aliases in every operation and fragment of the document.
pub fn aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

#[async_trait::async_trait]
impl Extension for Limits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| coded(e, Code::GraphqlParseFailed))?;
        let found = aliases(&document);
        if found > self.max_aliases {
            return Err(coded(
                ServerError::new(
                    format!(
                        "the query uses {found} aliases; at most {} are accepted",
                        self.max_aliases
                    ),
                    None,
                ),
                Code::TooManyAliases,
            ));
        }
        Ok(document)
    }

    /// Errors async-graphql raises itself while executing carry no code: a value that does not
    /// fit its type (an `Int` out of range in the variables, say) is the caller's input, and
    /// anything else is ours.
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|error| {
                let code = if is_coercion(&error.message) {
                    Code::BadUserInput
                } else {
                    Code::InternalServerError
                };
                coded(error, code)
            })
            .collect();
        response
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| coded(e, Code::GraphqlValidationFailed))
                .collect::<Vec<_>>()
        })?;
        if result.depth > self.max_depth {
            return Err(vec![coded(
                ServerError::new(
                    format!(
                        "the query is {} levels deep; at most {} are accepted",
                        result.depth, self.max_depth
                    ),
                    None,
                ),
                Code::QueryTooDeep,
            )]);
        }
        if result.complexity > self.max_complexity {
            let mut error = ServerError::new(
                format!(
                    "the query costs {} and the budget is {}: lists multiply what is selected \
                     under them (by `first` or their documented bound); ask for fewer items or \
                     fewer nested lists",
                    result.complexity, self.max_complexity
                ),
                None,
            );
            let extensions = error.extensions.get_or_insert_with(Default::default);
            extensions.set("cost", result.complexity as u64);
            extensions.set("budget", self.max_complexity as u64);
            return Err(vec![coded(error, Code::QueryTooComplex)]);
        }
        Ok(result)
    }
}
