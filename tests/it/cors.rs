//! Browsers: a key works in web pages only on the origins configured on it. Calls without an
//! `Origin` (servers, scripts) and the service's own GraphiQL page are not affected.

use integration_tests::{Engine, TestApp, TestSmtp, error_code, error_field, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::flow_with_ticket_step;

on_both_engines!(keys_work_in_browsers_only_on_their_origins);

const KEYS: &str = "{ apiKeys { id kind allowedOrigins } }";
const SET_ORIGINS: &str = "mutation($id: ID!, $origins: [String!]!) {
  setApiKeyOrigins(id: $id, origins: $origins) { id allowedOrigins }
}";
const SHOP: &str = "https://shop.example";

struct Answer {
    status: u16,
    allow_origin: Option<String>,
    body: Value,
}

async fn post(
    app: &TestApp,
    origin: Option<&str>,
    key: &str,
    query: &str,
    variables: Value,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(&app.url)
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        allow_origin: response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.json().await.unwrap(),
    }
}

/// What a browser asks before a keyed POST: (status, allowed origin, allowed headers).
async fn preflight(app: &TestApp, origin: &str) -> (u16, Option<String>, Option<String>) {
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &app.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("access-control-allow-origin"),
        header("access-control-allow-headers"),
    )
}

async fn keys_work_in_browsers_only_on_their_origins(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    let open = |stage: &str| json!({ "input": { "stepId": step_id, "message": stage } });
    let keys = app.admin(KEYS, json!({})).await;
    let widget_id = keys["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "WIDGET")
        .unwrap()["id"]
        .clone();

    // No origin configured yet: the shop's pages cannot use the key, servers can.
    let (status, allowed, _) = preflight(&app, SHOP).await;
    assert_eq!((status, allowed), (403, None));
    let answer = post(
        &app,
        Some(SHOP),
        &app.widget_key,
        OPEN_TICKET,
        open("browser"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(error_code(&answer.body), "ORIGIN_NOT_ALLOWED");
    assert_eq!(answer.allow_origin, None);
    let answer = post(&app, None, &app.widget_key, OPEN_TICKET, open("server")).await;
    assert!(answer.body.get("errors").is_none(), "{:#}", answer.body);

    // Origins are validated and stored as browsers send them.
    for bad in ["*", "https://shop.example/widget", "javascript:alert(1)"] {
        let body = app
            .gql(
                Some(&app.admin_key),
                SET_ORIGINS,
                json!({ "id": widget_id, "origins": [SHOP, bad] }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}");
        assert_eq!(error_field(&body), "origins[1]");
    }
    assert_eq!(
        app.admin(KEYS, json!({})).await["apiKeys"]
            .to_string()
            .matches("shop.example")
            .count(),
        0,
        "a refused list stores nothing"
    );
    let set = app
        .admin(
            SET_ORIGINS,
            json!({ "id": widget_id, "origins": ["https://Shop.Example:443/"] }),
        )
        .await;
    assert_eq!(set["setApiKeyOrigins"]["allowedOrigins"], json!([SHOP]));

    // Now the shop's pages may use it, and only them.
    let (status, allowed, headers) = preflight(&app, SHOP).await;
    assert_eq!((status, allowed.as_deref()), (204, Some(SHOP)));
    assert!(headers.unwrap().contains("authorization"));
    let answer = post(
        &app,
        Some(SHOP),
        &app.widget_key,
        OPEN_TICKET,
        open("browser"),
    )
    .await;
    assert!(answer.body.get("errors").is_none(), "{:#}", answer.body);
    assert_eq!(answer.allow_origin.as_deref(), Some(SHOP));
    let evil = "https://evil.example";
    assert_eq!(preflight(&app, evil).await.0, 403);
    let answer = post(&app, Some(evil), &app.widget_key, OPEN_TICKET, open("evil")).await;
    assert_eq!(error_code(&answer.body), "ORIGIN_NOT_ALLOWED");

    // The preflight passes for the shop, but another account's key is still refused there,
    // and so is the admin key, which has no origins.
    let (other_admin, other_widget) = app.other_account().await;
    for key in [&other_widget, &other_admin, &app.admin_key] {
        let answer = post(&app, Some(SHOP), key, FLOWS, json!({})).await;
        assert_eq!(error_code(&answer.body), "ORIGIN_NOT_ALLOWED");
        assert_eq!(answer.allow_origin, None);
    }

    // GraphiQL, served by the service itself, sends the service's own origin.
    let own = app.base_url();
    let answer = post(&app, Some(&own), &app.admin_key, FLOWS, json!({})).await;
    assert!(answer.body.get("errors").is_none(), "{:#}", answer.body);

    // A revoked key's origins no longer open the preflight.
    app.admin(
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": widget_id }),
    )
    .await;
    assert_eq!(preflight(&app, SHOP).await.0, 403);

    // Keys created with origins.
    let created = app
        .admin(
            "mutation { createApiKey(kind: WIDGET, allowedOrigins: [\"http://localhost:3000\"]) { secret key { allowedOrigins } } }",
            json!({}),
        )
        .await;
    let secret = created["createApiKey"]["secret"].as_str().unwrap();
    let answer = post(
        &app,
        Some("http://localhost:3000"),
        secret,
        OPEN_TICKET,
        open("dev"),
    )
    .await;
    assert!(answer.body.get("errors").is_none(), "{:#}", answer.body);
    app.stop().await;
}
