//! GraphQL over HTTP as clients meet it: media types by `Accept`, status codes for requests
//! that fail before execution, GET for queries only, and GraphiQL's example tabs. The full
//! `graphql-http` audit runs in CI (`clients/audit`); these pin the behaviour in the suite.

use integration_tests::{Engine, TestApp, TestSmtp, error_code};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

async fn app() -> Option<(TestSmtp, TestApp)> {
    let smtp = TestSmtp::start();
    let app = TestApp::spawn(Engine::Sqlite, &smtp).await?;
    Some((smtp, app))
}

fn media(response: &reqwest::Response) -> String {
    response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_follows_accept_and_request_errors_are_400_for_the_spec_type() {
    let Some((_smtp, app)) = app().await else {
        return;
    };
    let client = reqwest::Client::new();
    let post = |accept: Option<&'static str>, query: &'static str| {
        let mut request = client
            .post(&app.url)
            .bearer_auth(&app.admin_key)
            .json(&json!({ "query": query }));
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        request.send()
    };

    for (accept, expected) in [
        (None, "application/json; charset=utf-8"),
        (Some("application/json"), "application/json; charset=utf-8"),
        (Some("*/*"), "application/json; charset=utf-8"),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            "application/graphql-response+json; charset=utf-8",
        ),
    ] {
        let ok = post(accept, "{ flows { id } }").await.unwrap();
        assert_eq!(
            (ok.status().as_u16(), media(&ok)),
            (200, expected.to_owned())
        );
        let body: Value = ok.json().await.unwrap();
        assert_eq!(body["data"]["flows"], json!([]));
    }

    for query in ["{ flows { ", "{ noSuchField }"] {
        let spec = post(Some("application/graphql-response+json"), query)
            .await
            .unwrap();
        assert_eq!(spec.status().as_u16(), 400, "{query}");
        let body: Value = spec.json().await.unwrap();
        assert!(body.get("data").is_none(), "no data entry: {body}");
        let legacy = post(Some("application/json"), query).await.unwrap();
        assert_eq!(legacy.status().as_u16(), 200, "{query}");
        let body: Value = legacy.json().await.unwrap();
        assert!(body.get("data").is_none(), "no data entry: {body}");
        assert!(!error_code(&body).is_empty());
    }

    // An execution error is a GraphQL result like any other: 200 with both types.
    let unauthenticated = client
        .post(&app.url)
        .header(ACCEPT, "application/graphql-response+json")
        .json(&json!({ "query": "{ flows { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 200);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    let refused = post(Some("text/html"), "{ flows { id } }").await.unwrap();
    assert_eq!(refused.status().as_u16(), 406);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_before_graphql() {
    let Some((_smtp, app)) = app().await else {
        return;
    };
    let client = reqwest::Client::new();
    let send = |content_type: &'static str, body: &'static str| {
        client
            .post(&app.url)
            .bearer_auth(&app.admin_key)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    for (content_type, body, status, code) in [
        (
            "text/plain",
            r#"{"query":"{ flows { id } }"}"#,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/json; charset=latin1",
            r#"{"query":"{ flows { id } }"}"#,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/json",
            r#"{"qeury":"{ flows { id } }"}"#,
            400,
            "BAD_REQUEST",
        ),
        (
            "application/json",
            r#"{"query":"{ flows { id } }","variables":"{}"}"#,
            400,
            "BAD_REQUEST",
        ),
        (
            "application/json",
            r#"{"query":"{ flows { id } }","operationName":7}"#,
            400,
            "BAD_REQUEST",
        ),
        ("application/json", "{", 400, "GRAPHQL_PARSE_FAILED"),
    ] {
        let response = send(content_type, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{content_type} {body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(error_code(&json), code, "{content_type} {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_runs_queries_but_never_mutations() {
    let Some((_smtp, app)) = app().await else {
        return;
    };
    let client = reqwest::Client::new();
    let get = |params: Vec<(&'static str, &'static str)>| {
        client
            .get(&app.url)
            .bearer_auth(&app.admin_key)
            .header(ACCEPT, "application/json")
            .query(&params)
            .send()
    };
    let ok = get(vec![
        (
            "query",
            "query Q($n: Int) { tickets(first: $n) { edges { cursor } } }",
        ),
        ("variables", r#"{"n": 5}"#),
        ("operationName", "Q"),
    ])
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["data"]["tickets"]["edges"], json!([]), "{body}");

    let mutation = get(vec![(
        "query",
        r#"mutation { createFlow(input: {name: "x"}) { id } }"#,
    )])
    .await
    .unwrap();
    assert_eq!(mutation.status().as_u16(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let flows = app.admin("{ flows { id } }", json!({})).await;
    assert_eq!(flows["flows"], json!([]), "nothing was created");

    let missing = get(vec![]).await.unwrap();
    assert_eq!(missing.status().as_u16(), 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_opens_with_the_documented_operations() {
    let Some((_smtp, app)) = app().await else {
        return;
    };
    let page = reqwest::Client::new()
        .get(&app.url)
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let policy = page
        .headers()
        .get("content-security-policy")
        .expect("a Content-Security-Policy")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"tabs\""), "{html}");
    // Nothing comes from another host; every vendored file is served here, compressed, with
    // its integrity hash on the tag (the browser test checks the hashes hold).
    assert!(
        !html.contains("//cdn") && !html.contains("https://"),
        "{html}"
    );
    let client = reqwest::Client::new();
    let base = app.base_url();
    let sources: Vec<String> = html
        .split("src=\"")
        .chain(html.split("href=\"").skip(1))
        .skip(1)
        .filter_map(|rest| {
            let (path, rest) = rest.split_once('"')?;
            let integrity = rest.split_once("integrity=\"")?.1.split_once('"')?.0;
            integrity.starts_with("sha384-").then(|| path.to_owned())
        })
        .collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    for path in sources {
        let file = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(file.status().as_u16(), 200, "{path}");
        assert_eq!(file.headers()["content-encoding"], "gzip", "{path}");
    }
    let missing = client
        .get(format!("{base}/graphiql/Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    for operation in [
        "mutation OpenTicket",
        "query Ticket",
        "mutation SendTestEmail",
    ] {
        assert!(html.contains(operation), "{operation} missing");
    }
    app.stop().await;
}

/// GraphiQL in a real browser that can reach no other host: it loads every file from the API,
/// their integrity hashes hold (a file that did not match would not run), and GraphiQL starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_in_a_browser_without_internet() {
    let Some(browser) = crate::monitoring::chromium() else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and Chromium is not installed"
        );
        println!(
            "SKIPPED (did not run): the GraphiQL browser test needs Debian's chromium package"
        );
        return;
    };
    let Some((_smtp, app)) = app().await else {
        return;
    };
    let output = crate::monitoring::dump_dom(
        browser,
        &app.url,
        &[
            // No other host resolves: a file from a CDN could not load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
        ],
    )
    .await;
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("graphiql-container") && !dom.contains("Loading GraphiQL..."),
        "GraphiQL did not start: {dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}
