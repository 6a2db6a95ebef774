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
    // 10 levels of objects (no lists multiplying them) are fine.
    let shallow = format!(
        "{{ tickets(first: 1) {{ edges {{ node {{ {}id{} }} }} }} }}",
        "conversation { ticket { ".repeat(3),
        " } }".repeat(3)
    );
    let ok = app.gql(key, &shallow, json!({})).await;
    assert!(ok.get("errors").is_none(), "10 levels are fine: {ok:#}");

    let aliases: String = (0..31).map(|i| format!("a{i}: agents {{ id }} ")).collect();
    assert_eq!(
        error_code(&app.gql(key, &format!("{{ {aliases} }}"), json!({})).await),
        "TOO_MANY_ALIASES"
    );
    let fine: String = (0..30).map(|i| format!("a{i}: agents {{ id }} ")).collect();
    let ok = app.gql(key, &format!("{{ {fine} }}"), json!({})).await;
    assert!(ok.get("errors").is_none(), "30 aliases are fine: {ok:#}");

    // Lists multiply what is under them: a flow's steps lead back to the flow, so nesting
    // them asks for 200^4 objects per alias, whatever the flow holds today.
    let cycle = format!(
        "query($id: ID!) {{ {} }}",
        (0..8)
            .map(|i| format!(
                "a{i}: flow(id: $id) {{ steps {{ flow {{ steps {{ flow {{ steps {{ flow {{ steps {{ id }} }} }} }} }} }} }} }} "
            ))
            .collect::<String>()
    );
    let refused = app
        .gql(
            key,
            &cycle,
            json!({ "id": "00000000-0000-7000-8000-000000000000" }),
        )
        .await;
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX", "{refused:#}");
    let extensions = &refused["errors"][0]["extensions"];
    assert_eq!(extensions["budget"], 250_000);
    assert!(
        extensions["cost"].as_u64().unwrap() > 8 * 200u64.pow(4),
        "{extensions:#}"
    );
    // `first` is what a paged list counts.
    let paged = |first: i64| {
        format!(
            "{{ tickets(first: {first}) {{ edges {{ node {{ deliveries(first: 200) {{ id recipient status attempts lastError sentAt }} timeline(first: 200) {{ at kind message }} }} }} }} }}"
        )
    };
    let ok = app.gql(key, &paged(50), json!({})).await;
    assert!(
        ok.get("errors").is_none(),
        "50 tickets with their details fit: {ok:#}"
    );
    assert_eq!(
        error_code(&app.gql(key, &paged(200), json!({})).await),
        "QUERY_TOO_COMPLEX"
    );
    let wide: String = "agents { id name email } ".repeat(100);
    assert_eq!(
        error_code(&app.gql(key, &format!("{{ {wide} }}"), json!({})).await),
        "QUERY_TOO_COMPLEX"
    );

    // A value that does not fit its type, written in the query or passed as a variable, is
    // refused before anything runs, with a code.
    for (query, variables) in [
        (
            "{ tickets(first: 78789425892731328) { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ tickets(first: \"ten\") { edges { cursor } } }",
            json!({}),
        ),
        (
            "query($n: Int) { tickets(first: $n) { edges { cursor } } }",
            json!({ "n": 78789425892731328u64 }),
        ),
        (
            "query($n: Int) { flows(first: $n) { id } }",
            json!({ "n": -1 }),
        ),
    ] {
        let body = app.gql(key, query, variables).await;
        assert!(
            ["BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"].contains(&error_code(&body).as_str()),
            "{body:#}"
        );
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_requests_are_rate_limited_per_key_and_per_address() {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(Engine::Sqlite, &smtp, |c| {
        c.widget_rate_per_minute = 5;
        c.client_rate_per_minute = 0;
    })
    .await
    else {
        return;
    };
    let (_, step) =
        crate::ticket_path::flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    for i in 0..5 {
        crate::ticket_path::open_ticket(&app, &app.widget_key, &step, &format!("m{i}")).await;
    }
    let response = reqwest::Client::new()
        .post(&app.url)
        .bearer_auth(&app.widget_key)
        .json(&json!({ "query": crate::ops::OPEN_TICKET, "variables": { "input": { "stepId": step, "message": "one too many" } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=13).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "RATE_LIMITED");
    assert_eq!(
        body["errors"][0]["extensions"]["retryAfterSeconds"],
        retry_after
    );
    // Admin work is not limited, and nothing was written for the refused request.
    let tickets = app.admin(crate::ops::TICKETS, json!({})).await;
    assert_eq!(tickets["tickets"]["edges"].as_array().unwrap().len(), 5);
    app.stop().await;

    let Some(app) = TestApp::spawn_with(Engine::Sqlite, &smtp, |c| {
        c.widget_rate_per_minute = 0;
        c.client_rate_per_minute = 3;
    })
    .await
    else {
        return;
    };
    let (_, other_widget) = app.other_account().await;
    let query = "{ conversation(id: \"00000000-0000-7000-8000-000000000000\") { id } }";
    for key in [&app.widget_key, &other_widget, &app.widget_key] {
        assert!(
            app.gql(Some(key), query, json!({}))
                .await
                .get("errors")
                .is_none()
        );
    }
    let limited = app.gql(Some(&other_widget), query, json!({})).await;
    assert_eq!(
        error_code(&limited),
        "RATE_LIMITED",
        "one address, whatever the key"
    );
    app.stop().await;
}
