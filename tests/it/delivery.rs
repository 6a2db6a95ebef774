//! Delivery outcomes against a real SMTP server: transient failures are retried with backoff
//! until they succeed, permanent ones fail at once, and the row records every outcome.

use std::time::Duration;

use integration_tests::{Engine, Fault, TestApp, TestSmtp, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    transient_smtp_failure_is_retried_to_success,
    permanent_smtp_failure_is_not_retried,
    delivery_fails_after_max_attempts,
    a_ticket_nobody_is_routed_to_says_so,
    each_recipient_of_a_ticket_keeps_its_own_outcome
);

async fn setup(engine: Engine, smtp: &TestSmtp, recipient: &str) -> Option<(TestApp, String)> {
    let app = TestApp::spawn(engine, smtp).await?;
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "offline_message", "emails": [recipient] }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    Some((app, opened["ticket"]["id"].as_str().unwrap().to_owned()))
}

async fn final_delivery(app: &TestApp, ticket_id: &str) -> Value {
    let data = app
        .wait_for(
            Duration::from_secs(20),
            TICKET,
            json!({ "id": ticket_id }),
            |d| {
                d["ticket"]["deliveries"][0]["status"]
                    .as_str()
                    .is_some_and(|s| s == "SENT" || s == "FAILED")
            },
        )
        .await;
    data["ticket"]["deliveries"][0].clone()
}

/// The ticket's timeline as (kind, message) pairs.
async fn timeline(app: &TestApp, ticket_id: &str) -> Vec<(String, String)> {
    let body = app.admin(TIMELINE, json!({ "id": ticket_id })).await;
    let events = body["ticket"]["timeline"].as_array().unwrap();
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by_key(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
    assert_eq!(times, sorted, "oldest first");
    events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn transient_smtp_failure_is_retried_to_success(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("flaky@example.com", Fault::Transient, 2);
    let Some((app, ticket_id)) = setup(engine, &smtp, "flaky@example.com").await else {
        return;
    };
    let delivery = final_delivery(&app, &ticket_id).await;
    assert_eq!(delivery["status"], "SENT", "{delivery:#}");
    assert_eq!(delivery["attempts"], 3);
    assert!(delivery["lastError"].is_null());
    assert_eq!(smtp.rcpt_attempts("flaky@example.com"), 3);
    // Attempts are spaced by the backoff: at least half (the jitter floor) of 300 ms, then of
    // 600 ms (RETRY_BASE_MS of the test config, doubling).
    let times = smtp.rcpt_times("flaky@example.com");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(150), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(300), "{gaps:?}");
    assert_eq!(smtp.received_by("flaky@example.com").len(), 1);
    let events = timeline(&app, &ticket_id).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["OPENED", "ROUTED", "NOTIFIED"], "{events:?}");
    assert_eq!(
        events[2].1,
        "Notified flaky@example.com via rule offline_message (3 attempts)"
    );
    app.stop().await;
}

async fn permanent_smtp_failure_is_not_retried(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, usize::MAX);
    let Some((app, ticket_id)) = setup(engine, &smtp, "gone@example.com").await else {
        return;
    };
    let delivery = final_delivery(&app, &ticket_id).await;
    assert_eq!(delivery["status"], "FAILED", "{delivery:#}");
    assert_eq!(delivery["attempts"], 1);
    assert!(
        delivery["lastError"].as_str().unwrap().contains("550"),
        "{delivery:#}"
    );
    // Longer than the whole backoff schedule of the test config: no second attempt comes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.rcpt_attempts("gone@example.com"), 1);
    app.stop().await;
}

async fn delivery_fails_after_max_attempts(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("busy@example.com", Fault::Transient, usize::MAX);
    let Some((app, ticket_id)) = setup(engine, &smtp, "busy@example.com").await else {
        return;
    };
    let delivery = final_delivery(&app, &ticket_id).await;
    assert_eq!(delivery["status"], "FAILED", "{delivery:#}");
    assert_eq!(
        delivery["attempts"], 4,
        "MAX_DELIVERY_ATTEMPTS of the test config"
    );
    assert!(
        delivery["lastError"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{delivery:#}"
    );
    assert_eq!(smtp.rcpt_attempts("busy@example.com"), 4);
    let events = timeline(&app, &ticket_id).await;
    assert_eq!(
        events[0],
        (
            "OPENED".to_owned(),
            "Opened by flow \"Destek\" with topic offline_message".to_owned()
        )
    );
    assert_eq!(
        events[1],
        (
            "ROUTED".to_owned(),
            "Routed to 1 recipient: busy@example.com".to_owned()
        )
    );
    let (kind, message) = &events[2];
    assert_eq!(kind, "DELIVERY_FAILED");
    assert!(
        message.starts_with("Delivery to busy@example.com failed after 4 attempts: ")
            && message.contains("451")
            && !message.contains("gave up"),
        "the last SMTP reply, without the worker's wording: {message}"
    );
    assert_eq!(events.len(), 3);
    app.stop().await;
}

async fn a_ticket_nobody_is_routed_to_says_so(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "nobody_listens", &[]).await;
    let opened = open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    let ticket_id = opened["ticket"]["id"].as_str().unwrap().to_owned();
    let body = app
        .wait_for(
            Duration::from_secs(20),
            TIMELINE,
            json!({ "id": ticket_id }),
            |d| {
                d["ticket"]["timeline"]
                    .as_array()
                    .is_some_and(|e| e.len() == 2)
            },
        )
        .await;
    let event = &body["ticket"]["timeline"][1];
    assert_eq!(event["kind"], "UNROUTED", "{body:#}");
    assert!(event["delivery"].is_null());
    assert!(smtp.received().is_empty());
    app.stop().await;
}

async fn each_recipient_of_a_ticket_keeps_its_own_outcome(engine: Engine) {
    // The routing job records the accepted mails of a ticket together and the others one by
    // one: every row must still end with its own result.
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("flaky@example.com", Fault::Transient, 1);
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, usize::MAX);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let accepted = ["a@example.com", "b@example.com", "c@example.com"];
    let mut emails = accepted.to_vec();
    emails.extend(["flaky@example.com", "gone@example.com"]);
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "offline_message", "emails": emails }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    let data = app
        .wait_for(
            Duration::from_secs(20),
            TICKET,
            json!({ "id": opened["ticket"]["id"] }),
            |d| {
                d["ticket"]["deliveries"].as_array().is_some_and(|all| {
                    all.len() == 5
                        && all
                            .iter()
                            .all(|d| d["status"] == "SENT" || d["status"] == "FAILED")
                })
            },
        )
        .await;
    let deliveries = data["ticket"]["deliveries"].as_array().unwrap();
    let by = |address: &str| {
        deliveries
            .iter()
            .find(|d| d["recipient"] == address)
            .unwrap_or_else(|| panic!("no delivery to {address}"))
    };
    for address in accepted {
        let d = by(address);
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&json!("SENT"), &json!(1)),
            "{d:#}"
        );
        assert!(d["sentAt"].is_string() && d["lastError"].is_null(), "{d:#}");
        assert_eq!(smtp.received_by(address).len(), 1);
    }
    let flaky = by("flaky@example.com");
    assert_eq!(
        (&flaky["status"], &flaky["attempts"]),
        (&json!("SENT"), &json!(2)),
        "{flaky:#}"
    );
    let gone = by("gone@example.com");
    assert_eq!(
        (&gone["status"], &gone["attempts"]),
        (&json!("FAILED"), &json!(1)),
        "{gone:#}"
    );
    assert!(gone["sentAt"].is_null(), "{gone:#}");
    app.stop().await;
}
