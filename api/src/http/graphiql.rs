//! GraphiQL for browsers that open `/graphql`, with the documented operations as tabs.

use async_graphql::http::GraphiQLSource;
use axum::response::Html;

/// The documented operations (`clients/operations/`, which CI also type-checks against the
/// schema), one GraphiQL tab each, so a new user has working examples to run.
const EXAMPLES: [&str; 6] = [
    include_str!("../../../clients/operations/flows.graphql"),
    include_str!("../../../clients/operations/routing.graphql"),
    include_str!("../../../clients/operations/tickets.graphql"),
    include_str!("../../../clients/operations/conversation.graphql"),
    include_str!("../../../clients/operations/operations.graphql"),
    include_str!("../../../clients/operations/webhooks.graphql"),
];

/// The page.
pub(super) fn page() -> Html<String> {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .title("Ticketing API")
        .finish();
    let tabs: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|query| {
            serde_json::json!({
                "query": query,
                "headers": "{\n  \"Authorization\": \"Bearer tk_admin_...\"\n}",
            })
        })
        .collect();
    // async-graphql's page has no option for GraphiQL's `defaultTabs`; they go next to the
    // one option it sets. JSON is valid JavaScript, and `</` is escaped so no example can end
    // the script element.
    let tabs = serde_json::Value::from(tabs)
        .to_string()
        .replace("</", "<\\/");
    Html(page.replacen(
        "defaultEditorToolsVisibility: true,",
        &format!("defaultEditorToolsVisibility: true,\n          defaultTabs: {tabs},"),
        1,
    ))
}
