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

/// A client whose requests come from `127.0.0.<n>` (every 127/8 address is the loopback).
fn from_address(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    app: &TestApp,
    key: &str,
    query: &str,
) -> (u16, serde_json::Value) {
    let response = client
        .post(&app.url)
        .bearer_auth(key)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
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
    // Per key means per key: another widget key of the same account has its own allowance.
    let second = app
        .admin(
            "mutation { createApiKey(kind: WIDGET) { secret } }",
            json!({}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::ticket_path::open_ticket(&app, &second, &step, "the other key").await;
    app.stop().await;
}

/// The flood: one address sends far more widget requests than its allowance. Its
/// refusals cost the key nothing, so visitors on other addresses still get through; and
/// made-up keys are refused per address before any database lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_lock_out_the_visitors_of_an_account() {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(Engine::Sqlite, &smtp, |c| {
        c.widget_rate_per_minute = 40;
        c.client_rate_per_minute = 10;
        c.unknown_key_rate_per_minute = 10;
    })
    .await
    else {
        return;
    };
    let query = "{ conversation(id: \"00000000-0000-7000-8000-000000000000\") { id } }";
    let flood = from_address(2);
    let mut refused = 0;
    for _ in 0..300 {
        let (status, body) = post(&flood, &app, &app.widget_key, query).await;
        if status == 429 {
            assert_eq!(error_code(&body), "RATE_LIMITED");
            refused += 1;
        }
    }
    assert_eq!(refused, 290, "the address's allowance is 10");
    for n in 3..13 {
        let (status, body) = post(&from_address(n), &app, &app.widget_key, query).await;
        assert_eq!(status, 200, "visitor at 127.0.0.{n}: {body:#}");
        assert!(body.get("errors").is_none(), "{body:#}");
    }

    // Made-up keys: limited per address (each would cost a database lookup), without
    // touching the widget allowance of that address or of the key.
    let guesser = from_address(20);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (status, body) = post(&guesser, &app, &format!("tk_widget_guess_{i}"), query).await;
        statuses.push((status, error_code(&body)));
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|(s, c)| *s == 200 && c == "UNAUTHENTICATED"),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|(s, c)| *s == 429 && c == "RATE_LIMITED"),
        "{statuses:?}"
    );
    // Requests with no key at all count the same.
    let (status, _) = post(&from_address(21), &app, "", query).await;
    assert_eq!(status, 200);
    // A key this process has cached costs no lookup. On a loaded machine the test can outlast
    // the cache's TTL, and an uncached key from the guessing address would count as a guess:
    // another visitor's request caches it again first.
    let (status, _) = post(&from_address(22), &app, &app.widget_key, query).await;
    assert_eq!(status, 200);
    let (status, body) = post(&guesser, &app, &app.widget_key, query).await;
    assert_eq!(
        status, 200,
        "a known key from the guessing address: {body:#}"
    );
    // The admin key is never limited.
    for _ in 0..30 {
        let (status, _) = post(&flood, &app, &app.admin_key, "{ agents { id } }").await;
        assert_eq!(status, 200);
    }
    app.stop().await;
}
