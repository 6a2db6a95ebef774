//! The operation's name for the request metrics, read from the document async-graphql parses
//! for execution, so the HTTP layer does not parse the query a second time.

use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{ServerResult, Variables};

/// Request data the extension fills with the name of the document's only operation.
#[derive(Clone, Default)]
pub struct OperationName(Arc<OnceLock<String>>);

impl OperationName {
    /// The name, once the query parsed and named its single operation.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Fills [`OperationName`] when the request carries one.
pub struct RecordOperationName;

impl ExtensionFactory for RecordOperationName {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RecordOperationName)
    }
}

#[async_trait::async_trait]
impl Extension for RecordOperationName {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let (Some(slot), DocumentOperations::Multiple(operations)) =
            (ctx.data_opt::<OperationName>(), &document.operations)
            && operations.len() == 1
            && let Some(name) = operations.keys().next()
        {
            let _ = slot.0.set(name.to_string());
        }
        Ok(document)
    }
}
