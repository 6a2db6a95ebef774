//! What a request ran, as a metric label: the root field its operation selects (`openTicket`,
//! `tickets`, ...), read from the document async-graphql parses for execution. Labels come from
//! the schema, never from client text (an `operationName` is the client's to choose, so a
//! caller could mint a new time series per request with it): a field counts only once the
//! document has passed validation, so the label set is the root fields plus a few fixed values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

/// The label when the request did not parse or validate.
const INVALID: &str = "invalid";
/// The label of an operation selecting several root fields.
const MULTIPLE: &str = "multiple";
/// The label of `__schema`, `__type` and `__typename` at the root.
const INTROSPECTION: &str = "introspection";
/// The label when no operation of the document was chosen (an unknown `operationName`).
const NONE: &str = "none";

/// Request data the extension fills: each operation's label by its name, once valid.
#[derive(Clone, Default)]
pub struct RootFields(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Operation name (`None` for an anonymous one) -> label.
    labels: Mutex<BTreeMap<Option<String>, String>>,
    validated: OnceLock<()>,
}

impl RootFields {
    /// The label of the operation `chosen` (the request's `operationName`), or of the only one.
    pub fn label(&self, chosen: Option<&str>) -> String {
        if self.0.validated.get().is_none() {
            return INVALID.to_owned();
        }
        let labels = self.0.labels.lock().unwrap_or_else(|e| e.into_inner());
        let found = match chosen {
            Some(name) => labels.get(&Some(name.to_owned())),
            None if labels.len() == 1 => labels.values().next(),
            None => None,
        };
        found.map_or_else(|| NONE.to_owned(), Clone::clone)
    }
}

/// Root field names of a selection, following fragments at the root.
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    into: &mut Vec<&'a str>,
    depth: usize,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => into.push(f.node.name.node.as_str()),
            Selection::InlineFragment(f) => {
                collect(&f.node.selection_set.node, document, into, depth + 1);
            }
            // Validation refuses fragment cycles; `depth` keeps this bounded before it.
            Selection::FragmentSpread(spread) if depth < 8 => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(&fragment.node.selection_set.node, document, into, depth + 1);
                }
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn label_of(set: &SelectionSet, document: &ExecutableDocument) -> String {
    let mut names = Vec::new();
    collect(set, document, &mut names, 0);
    let mut names: Vec<&str> = names
        .into_iter()
        .map(|n| {
            if n.starts_with("__") {
                INTROSPECTION
            } else {
                n
            }
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] => (*one).to_owned(),
        [] => NONE.to_owned(),
        _ => MULTIPLE.to_owned(),
    }
}

/// Fills [`RootFields`].
pub struct RecordRootFields;

impl ExtensionFactory for RecordRootFields {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RecordRootFields)
    }
}

#[async_trait::async_trait]
impl Extension for RecordRootFields {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Some(slot) = ctx.data_opt::<RootFields>() {
            let mut labels = slot.0.labels.lock().unwrap_or_else(|e| e.into_inner());
            for (name, operation) in document.operations.iter() {
                labels.insert(
                    name.map(|n| n.to_string()),
                    label_of(&operation.node.selection_set.node, &document),
                );
            }
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some(slot) = ctx.data_opt::<RootFields>() {
            let _ = slot.0.validated.set(());
        }
        Ok(result)
    }
}
