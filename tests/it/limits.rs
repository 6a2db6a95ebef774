//! Hostile or broken requests are refused before any work, each with a clear code.

use integration_tests::{Engine, TestApp, TestSmtp, error_code};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_with_their_code() {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(Engine::Sqlite, &smtp).await else {
        return;
    };
    let key = Some(app.admin_key.as_str());

    // flows > steps > flow > ... : 14 levels.
    let deep = format!(
        "{{ flows {{ {}id{} }} }}",
        "steps { flow { ".repeat(6),
        " } }".repeat(6)
    );
    assert_eq!(
        error_code(&app.gql(key, &deep, json!({})).await),
        "QUERY_TOO_DEEP"
    );
    let shallow = format!(
        "{{ flows {{ {}id{} }} }}",
        "steps { flow { ".repeat(4),
        " } }".repeat(4)
    );
    let ok = app.gql(key, &shallow, json!({})).await;
    assert!(ok.get("errors").is_none(), "10 levels are fine: {ok:#}");

    let aliases: String = (0..31).map(|i| format!("a{i}: flows {{ id }} ")).collect();
    assert_eq!(
        error_code(&app.gql(key, &format!("{{ {aliases} }}"), json!({})).await),
        "TOO_MANY_ALIASES"
    );
    let fine: String = (0..30).map(|i| format!("a{i}: flows {{ id }} ")).collect();
    let ok = app.gql(key, &format!("{{ {fine} }}"), json!({})).await;
    assert!(ok.get("errors").is_none(), "30 aliases are fine: {ok:#}");

    let wide: String = "flows { id name createdAt } ".repeat(400);
    assert_eq!(
        error_code(&app.gql(key, &format!("{{ {wide} }}"), json!({})).await),
        "QUERY_TOO_COMPLEX"
    );

    assert_eq!(
        error_code(&app.gql(key, "{ flows { ", json!({})).await),
        "GRAPHQL_PARSE_FAILED"
    );
    assert_eq!(
        error_code(&app.gql(key, "{ noSuchField }", json!({})).await),
        "GRAPHQL_VALIDATION_FAILED"
    );

    // Bodies over MAX_BODY_BYTES are refused by the HTTP layer.
    let huge =
        json!({ "query": "{ flows { id } }", "variables": { "pad": "x".repeat(300 * 1024) } });
    let response = reqwest::Client::new()
        .post(&app.url)
        .bearer_auth(&app.admin_key)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    // One operation per request.
    let batch = json!([{ "query": "{ flows { id } }" }, { "query": "{ agents { id } }" }]);
    let response = reqwest::Client::new()
        .post(&app.url)
        .bearer_auth(&app.admin_key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BATCH_NOT_SUPPORTED");
    app.stop().await;
}
