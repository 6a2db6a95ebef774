//! Webhooks against a real HTTP receiver on loopback: signed requests (Standard Webhooks),
//! retried through the queue with backoff after a 5xx, every attempt visible over GraphQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{KeyInit, Mac};
use integration_tests::{
    Engine as DbEngine, Fault, TestApp, TestSmtp, error_code, on_both_engines,
};
use serde_json::{Value, json};

use crate::ops::CREATE_RULE;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(integrations_get_signed_retried_events);

/// What the receiver got: (headers, body).
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An HTTP receiver on a loopback port that answers the first request of event type
/// `fail_once` with 503 and everything else with 200.
pub(crate) async fn receiver(fail_once: &'static str) -> (String, Received) {
    let received: Received = Arc::default();
    let failed = Arc::new(Mutex::new(false));
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let failed = failed.clone();
            async move {
                let first_of_kind = body.contains(&format!("\"type\":\"{fail_once}\""))
                    && !std::mem::replace(&mut *failed.lock().unwrap(), true);
                log.lock().unwrap().push((headers, body));
                if first_of_kind {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Verifies a request the way a receiver would, independently of the server's code.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            header("webhook-id"),
            header("webhook-timestamp"),
            body
        )
        .as_bytes(),
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature") == expected
}

pub(crate) const CREATE_WEBHOOK: &str = "mutation($url: String!, $events: [WebhookEvent!]!) {
  createWebhook(input: { url: $url, events: $events }) { secret webhook { id url events } }
}";
const WEBHOOK: &str = "query($id: ID!) {
  webhook(id: $id) { deliveries(first: 10) { edges { node { id event status payload attempts { attempt statusCode error } } } pageInfo { hasNextPage } } }
}";

async fn integrations_get_signed_retried_events(engine: DbEngine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, usize::MAX);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (url, received) = receiver("ticket.opened").await;

    let bad = app
        .gql(
            Some(&app.admin_key),
            CREATE_WEBHOOK,
            json!({ "url": "ftp://example.com/x", "events": ["TICKET_OPENED"] }),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");

    let created = app
        .admin(
            CREATE_WEBHOOK,
            json!({ "url": url, "events": ["TICKET_OPENED", "DELIVERY_FAILED"] }),
        )
        .await;
    let secret = created["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let hook_id = created["createWebhook"]["webhook"]["id"].clone();

    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "offline_message", "emails": ["gone@example.com"] }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket_id = opened["ticket"]["id"].as_str().unwrap().to_owned();

    // ticket.opened: 503, then retried (backoff of the test config) and accepted;
    // delivery.failed: accepted at once.
    let data = app
        .wait_for(
            Duration::from_secs(30),
            WEBHOOK,
            json!({ "id": hook_id }),
            |d| {
                let edges = d["webhook"]["deliveries"]["edges"].as_array().unwrap();
                edges.len() == 2 && edges.iter().all(|e| e["node"]["status"] == "SUCCEEDED")
            },
        )
        .await;
    let edges = data["webhook"]["deliveries"]["edges"].as_array().unwrap();
    let by_event = |event: &str| {
        edges
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["event"] == event)
            .unwrap()
            .clone()
    };
    let opened_event = by_event("TICKET_OPENED");
    assert_eq!(
        opened_event["attempts"],
        json!([
            { "attempt": 1, "statusCode": 503, "error": "HTTP 503" },
            { "attempt": 2, "statusCode": 200, "error": null },
        ])
    );
    let failed_event = by_event("DELIVERY_FAILED");
    assert_eq!(failed_event["attempts"][0]["statusCode"], 200);

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "503 + retry + delivery.failed");
    for (headers, body) in &requests {
        assert!(verify(&secret, headers, body), "bad signature on {body}");
        assert_eq!(headers["content-type"], "application/json");
        let sent: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((chrono::Utc::now().timestamp() - sent).abs() < 300);
    }
    // A retry is the same message: same id, same body.
    let opened_requests: Vec<&(HeaderMap, String)> = requests
        .iter()
        .filter(|(_, b)| b.contains("\"ticket.opened\""))
        .collect();
    assert_eq!(opened_requests.len(), 2);
    assert_eq!(
        opened_requests[0].0["webhook-id"],
        opened_requests[1].0["webhook-id"]
    );
    assert_eq!(opened_requests[0].1, opened_requests[1].1);
    assert_eq!(
        opened_requests[0].0["webhook-id"].to_str().unwrap(),
        opened_event["id"].as_str().unwrap()
    );
    let body: Value = serde_json::from_str(&opened_requests[0].1).unwrap();
    assert_eq!(body["type"], "ticket.opened");
    assert_eq!(body["data"]["ticket"]["id"], ticket_id.as_str());
    assert_eq!(body["data"]["ticket"]["topic"], "offline_message");
    assert_eq!(body["data"]["recipients"], 1);
    let failed: Value = serde_json::from_str(failed_event["payload"].as_str().unwrap()).unwrap();
    assert_eq!(failed["type"], "delivery.failed");
    assert_eq!(failed["data"]["delivery"]["recipient"], "gone@example.com");
    assert!(
        failed["data"]["delivery"]["lastError"]
            .as_str()
            .unwrap()
            .contains("550")
    );

    // Ten webhooks per account: the eleventh is refused, and nothing is written.
    for i in 1..10 {
        app.admin(
            CREATE_WEBHOOK,
            json!({ "url": format!("{url}/{i}"), "events": ["TICKET_UNROUTED"] }),
        )
        .await;
    }
    let eleventh = app
        .gql(
            Some(&app.admin_key),
            CREATE_WEBHOOK,
            json!({ "url": url, "events": ["TICKET_UNROUTED"] }),
        )
        .await;
    assert_eq!(error_code(&eleventh), "LIMIT_REACHED", "{eleventh:#}");
    assert_eq!(eleventh["errors"][0]["extensions"]["max"], 10);
    let listed = app.admin("{ webhooks { id } }", json!({})).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 10);

    // Another account sees neither the webhook nor its deliveries.
    let (other_admin, _) = app.other_account().await;
    let foreign = app
        .gql(Some(&other_admin), WEBHOOK, json!({ "id": hook_id }))
        .await;
    assert!(foreign["data"]["webhook"].is_null(), "{foreign:#}");
    let delete = app
        .gql(
            Some(&other_admin),
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": hook_id }),
        )
        .await;
    assert_eq!(error_code(&delete), "NOT_FOUND");
    app.stop().await;
}

/// A TCP listener that counts the connections made to it (a proxy nobody should use).
async fn counting_listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, hits)
}

/// A worker process started with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in its
/// environment sends webhook requests straight to their URL: through a proxy, the
/// private-network guard would judge the proxy's address, not the target's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_ignore_proxies_in_the_environment() {
    let smtp = TestSmtp::start();
    let Some(app) =
        TestApp::spawn_with(DbEngine::Sqlite, &smtp, |c| c.embedded_worker = false).await
    else {
        return;
    };
    let (proxy, via_proxy) = counting_listener().await;
    let _worker = app.start_worker_process_with(
        &smtp,
        2,
        "127.0.0.1:0",
        &[
            ("HTTP_PROXY", &proxy),
            ("http_proxy", &proxy),
            ("HTTPS_PROXY", &proxy),
            ("ALL_PROXY", &proxy),
            ("NO_PROXY", ""),
            // The receiver is on loopback.
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let (url, received) = receiver("none").await;
    app.admin(
        CREATE_WEBHOOK,
        json!({ "url": url, "events": ["TICKET_OPENED"] }),
    )
    .await;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;
    open_ticket(&app, &app.widget_key, &step, "hi").await;
    for _ in 0..150 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "the receiver got the event"
    );
    assert_eq!(
        via_proxy.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the worker went through the proxy"
    );
    app.stop().await;
}
