//! What operators (and admins, for their own account) can do to the machinery: pause and
//! resume sending, put a failed webhook delivery back, cancel a waiting delivery; each action
//! recorded with who, when and why. Real workers, SMTP server and webhook receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use integration_tests::{
    Engine, Fault, OPS_TOKEN, TestApp, TestSmtp, error_code, error_field, on_both_engines,
};
use serde_json::{Value, json};

use crate::fairness::ticket_step_of;
use crate::ticket_path::open_ticket;
use crate::webhooks::CREATE_WEBHOOK;

on_both_engines!(
    paused_sending_waits_through_restarts_until_resumed,
    failed_webhook_deliveries_are_listed_and_retried_without_their_payloads,
    a_waiting_delivery_is_cancelled_with_a_reason,
    ops_forms_refuse_forged_requests,
    an_operator_pauses_retries_and_resumes_from_the_ops_page_in_a_browser
);

const PAUSE: &str = "mutation($account: ID, $reason: String!) {
  pauseSending(accountId: $account, reason: $reason) { changed pause { accountId pausedAt pausedBy reason } } }";
const RESUME: &str =
    "mutation($account: ID) { resumeSending(accountId: $account) { changed jobsResumed } }";
const PAUSES: &str = "{ sendingPauses { accountId pausedBy reason } }";
const ACTIONS: &str =
    "{ operatorActions(first: 50) { edges { node { actor action accountId subjectId reason } } } }";
const PARKED: &str = "{ queueStats { jobs { parked } } }";

async fn ok(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    let body = app.gql(Some(key), query, variables).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"].clone()
}

/// The actions a key sees, oldest first, as (action, account or "everyone", reason).
async fn actions(app: &TestApp, key: &str) -> Vec<(String, String, String)> {
    let data = ok(app, key, ACTIONS, json!({})).await;
    let mut out: Vec<_> = data["operatorActions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["action"].as_str().unwrap().to_owned(),
                n["accountId"].as_str().unwrap_or("everyone").to_owned(),
                n["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// Sending paused for one account holds its tickets (routing and mail) while another
/// account's go out; a worker restarted meanwhile keeps holding them; resuming sends each
/// mail once. The pause of everyone holds every account, and an account's admin can neither
/// lift it nor touch another account's pause. Each action is recorded; an account is paused
/// at most 10 times an hour.
async fn paused_sending_waits_through_restarts_until_resumed(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    let account = app.account_id.clone();
    let step = ticket_step_of(&app, &app.admin_key, "orders", "held@example.com").await;
    let (other_admin, other_widget) = app.other_account().await;
    let other_step = ticket_step_of(&app, &other_admin, "orders", "free@example.com").await;

    // Bad input writes nothing.
    let blank = app
        .gql(
            Some(OPS_TOKEN),
            PAUSE,
            json!({ "account": account, "reason": "  " }),
        )
        .await;
    assert_eq!(
        (error_code(&blank), error_field(&blank)),
        ("BAD_USER_INPUT".into(), "reason".into())
    );
    let unknown = app
        .gql(
            Some(OPS_TOKEN),
            PAUSE,
            json!({ "account": uuid::Uuid::now_v7(), "reason": "x" }),
        )
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    assert_eq!(
        ok(&app, OPS_TOKEN, PAUSES, json!({})).await["sendingPauses"],
        json!([])
    );
    // The public key reaches none of it; an admin reaches its own account only.
    for (query, variables) in [
        (PAUSE, json!({ "reason": "x" })),
        (RESUME, json!({})),
        (PAUSES, json!({})),
        (ACTIONS, json!({})),
    ] {
        let body = app.gql(Some(&app.widget_key), query, variables).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}");
    }
    let foreign = app
        .gql(
            Some(&other_admin),
            PAUSE,
            json!({ "account": account, "reason": "not mine" }),
        )
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");

    let paused = ok(
        &app,
        OPS_TOKEN,
        PAUSE,
        json!({ "account": account, "reason": "relay misconfigured" }),
    )
    .await;
    assert_eq!(paused["pauseSending"]["changed"], true);
    // The account's admin cannot lift the operator's pause.
    let lifted = app.gql(Some(&app.admin_key), RESUME, json!({})).await;
    assert_eq!(
        (error_code(&lifted), error_field(&lifted)),
        ("BAD_USER_INPUT".into(), "accountId".into())
    );
    assert_eq!(paused["pauseSending"]["pause"]["pausedBy"], "operator");
    let again = ok(
        &app,
        OPS_TOKEN,
        PAUSE,
        json!({ "account": account, "reason": "second reason" }),
    )
    .await;
    assert_eq!(again["pauseSending"]["changed"], false);
    assert_eq!(
        again["pauseSending"]["pause"]["reason"], "relay misconfigured",
        "the first reason stays"
    );

    let workers = app.start_workers(1).await;
    open_ticket(&app, &app.widget_key, &step, "held back").await;
    open_ticket(&app, &other_widget, &other_step, "goes out").await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .any(|m| m.to.iter().any(|t| t == "free@example.com")))
            .await,
        "the other account's mail waited"
    );
    app.wait_for_as(OPS_TOKEN, Duration::from_secs(20), PARKED, json!({}), |d| {
        d["queueStats"]["jobs"]["parked"] == 1
    })
    .await;
    // A worker started during the pause holds the job too (the pause is in the database).
    workers.stop().await;
    let workers = app.start_workers(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.received_by("held@example.com").is_empty());
    // The admin sees its pause, the other account nothing of it.
    let seen = ok(&app, &app.admin_key, PAUSES, json!({})).await;
    assert_eq!(
        seen["sendingPauses"],
        json!([{ "accountId": account, "pausedBy": "operator", "reason": "relay misconfigured" }])
    );
    assert_eq!(
        ok(&app, &other_admin, PAUSES, json!({})).await["sendingPauses"],
        json!([])
    );

    let resumed = ok(&app, OPS_TOKEN, RESUME, json!({ "account": account })).await;
    assert_eq!(
        resumed["resumeSending"],
        json!({ "changed": true, "jobsResumed": 1 })
    );
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .any(|m| m.to.iter().any(|t| t == "held@example.com")))
            .await,
        "the held mail never went out after the resume"
    );

    // Everyone paused: the other account waits too, and its admin cannot lift it.
    ok(&app, OPS_TOKEN, PAUSE, json!({ "reason": "spam wave" })).await;
    tokio::time::sleep(domain::pauses::REFRESH * 2).await;
    open_ticket(&app, &other_widget, &other_step, "waits for everyone").await;
    let seen = ok(&app, &other_admin, PAUSES, json!({})).await;
    assert_eq!(
        seen["sendingPauses"],
        json!([{ "accountId": null, "pausedBy": "operator", "reason": "spam wave" }])
    );
    let own = ok(&app, &other_admin, RESUME, json!({})).await;
    assert_eq!(own["resumeSending"]["changed"], false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.received_by("free@example.com").len(), 1);
    ok(&app, OPS_TOKEN, RESUME, json!({})).await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .filter(|m| m.to.iter().any(|t| t == "free@example.com"))
            .count()
            == 2)
            .await
    );
    workers.stop().await;
    // Each mail once.
    assert_eq!(smtp.received_by("held@example.com").len(), 1);
    assert_eq!(smtp.received_by("free@example.com").len(), 2);

    // The record: the operator sees everything, an admin its own account's lines.
    let everything = actions(&app, OPS_TOKEN).await;
    assert_eq!(
        everything,
        vec![
            (
                "PAUSE_SENDING".into(),
                account.clone(),
                "relay misconfigured".into()
            ),
            ("RESUME_SENDING".into(), account.clone(), String::new()),
            (
                "PAUSE_SENDING".into(),
                "everyone".into(),
                "spam wave".into()
            ),
            ("RESUME_SENDING".into(), "everyone".into(), String::new()),
        ]
    );
    assert_eq!(
        actions(&app, &app.admin_key).await,
        everything[..2].to_vec()
    );
    assert!(actions(&app, &other_admin).await.is_empty());

    // An admin pauses its own account; the eleventh pause within the hour is refused.
    for n in 2..=10 {
        let body = ok(
            &app,
            &app.admin_key,
            PAUSE,
            json!({ "reason": format!("drill {n}") }),
        )
        .await;
        assert_eq!(body["pauseSending"]["changed"], true);
        assert!(
            body["pauseSending"]["pause"]["pausedBy"]
                .as_str()
                .unwrap()
                .starts_with("admin key tk_admin_"),
            "{body}"
        );
        ok(&app, &app.admin_key, RESUME, json!({})).await;
    }
    let limited = app
        .gql(Some(&app.admin_key), PAUSE, json!({ "reason": "one more" }))
        .await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
    assert_eq!(
        ok(&app, &app.admin_key, PAUSES, json!({})).await["sendingPauses"],
        json!([])
    );
    // The operator is not held to the limit.
    let operator = ok(
        &app,
        OPS_TOKEN,
        PAUSE,
        json!({ "account": account, "reason": "abuse" }),
    )
    .await;
    assert_eq!(operator["pauseSending"]["changed"], true);
    ok(&app, OPS_TOKEN, RESUME, json!({ "account": account })).await;

    // The operator takes over an account's own pause: its admin can no longer lift it.
    let other_account = ok(&app, &other_admin, "{ accountSettings { id } }", json!({})).await
        ["accountSettings"]["id"]
        .clone();
    ok(&app, &other_admin, PAUSE, json!({ "reason": "our relay" })).await;
    let taken = ok(
        &app,
        OPS_TOKEN,
        PAUSE,
        json!({ "account": other_account, "reason": "spam from this account" }),
    )
    .await;
    assert_eq!(taken["pauseSending"]["changed"], true);
    assert_eq!(taken["pauseSending"]["pause"]["pausedBy"], "operator");
    let lifted = app.gql(Some(&other_admin), RESUME, json!({})).await;
    assert_eq!(error_field(&lifted), "accountId");
    let resumed = ok(&app, OPS_TOKEN, RESUME, json!({ "account": other_account })).await;
    assert_eq!(resumed["resumeSending"]["changed"], true);
    app.stop().await;
}

/// A receiver that fails (400) every request until `healed` is set, then answers 200.
async fn refusing_receiver(healed: Arc<AtomicUsize>) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (healed, counted) = (healed.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                if healed.load(Ordering::SeqCst) == 0 {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, requests)
}

const WEBHOOK_DELIVERIES: &str = "query($status: WebhookDeliveryStatus!) {
  webhookDeliveries(status: $status) { edges { node { id accountId event status attempts lastError } } } }";
const RETRY_WEBHOOK: &str =
    "mutation($id: ID!) { retryWebhookDelivery(id: $id) { id status attempts } }";

/// A webhook delivery the receiver refused is listed for the operator with its error (the
/// type has no payload field at all), put back by the operator and delivered; another
/// account's admin neither sees nor retries it, and a delivered one is not sent again.
async fn failed_webhook_deliveries_are_listed_and_retried_without_their_payloads(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let healed = Arc::new(AtomicUsize::new(0));
    let (url, requests) = refusing_receiver(healed.clone()).await;
    ok(
        &app,
        &app.admin_key,
        CREATE_WEBHOOK,
        json!({ "url": url, "events": ["TICKET_OPENED"] }),
    )
    .await;
    let step = ticket_step_of(&app, &app.admin_key, "orders", "agent@example.com").await;
    open_ticket(
        &app,
        &app.widget_key,
        &step,
        "a secret the operator must not read",
    )
    .await;
    let listed = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(30),
            WEBHOOK_DELIVERIES,
            json!({ "status": "FAILED" }),
            |d| d["webhookDeliveries"]["edges"].as_array().unwrap().len() == 1,
        )
        .await;
    let node = &listed["webhookDeliveries"]["edges"][0]["node"];
    assert_eq!(node["accountId"], app.account_id.as_str());
    assert_eq!(node["event"], "TICKET_OPENED");
    assert_eq!(node["attempts"], 1);
    assert!(
        node["lastError"].as_str().unwrap().contains("400"),
        "{node}"
    );
    let id = node["id"].as_str().unwrap().to_owned();
    // Nothing of the payload is reachable from this type.
    let fields = ok(
        &app,
        OPS_TOKEN,
        "{ __type(name: \"WebhookDeliverySummary\") { fields { name } } }",
        json!({}),
    )
    .await;
    let names: Vec<&str> = fields["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"payload"), "{names:?}");
    assert!(!listed.to_string().contains("secret the operator"));

    // Another account: nothing listed, the id is NOT_FOUND; a widget key is FORBIDDEN.
    let (other_admin, _) = app.other_account().await;
    let theirs = ok(
        &app,
        &other_admin,
        WEBHOOK_DELIVERIES,
        json!({ "status": "FAILED" }),
    )
    .await;
    assert_eq!(theirs["webhookDeliveries"]["edges"], json!([]));
    let foreign = app
        .gql(Some(&other_admin), RETRY_WEBHOOK, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
    let public = app
        .gql(Some(&app.widget_key), RETRY_WEBHOOK, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&public), "FORBIDDEN");

    healed.store(1, Ordering::SeqCst);
    let retried = ok(&app, OPS_TOKEN, RETRY_WEBHOOK, json!({ "id": id })).await;
    assert_eq!(retried["retryWebhookDelivery"]["status"], "PENDING");
    app.wait_for_as(
        OPS_TOKEN,
        Duration::from_secs(30),
        WEBHOOK_DELIVERIES,
        json!({ "status": "SUCCEEDED" }),
        |d| d["webhookDeliveries"]["edges"].as_array().unwrap().len() == 1,
    )
    .await;
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let again = app
        .gql(Some(OPS_TOKEN), RETRY_WEBHOOK, json!({ "id": id }))
        .await;
    assert_eq!(
        (error_code(&again), error_field(&again)),
        ("BAD_USER_INPUT".into(), "id".into())
    );
    assert_eq!(
        actions(&app, &app.admin_key).await,
        vec![(
            "RETRY_WEBHOOK_DELIVERY".into(),
            app.account_id.clone(),
            String::new()
        )]
    );
    app.stop().await;
}

const TICKET: &str = "query($id: ID!) { ticket(id: $id) {
  deliveries { id recipient status lastError } timeline { kind message } } }";
const CANCEL: &str = "mutation($id: ID!, $reason: String!) {
  cancelDelivery(id: $id, reason: $reason) { id status lastError } }";

/// A delivery waiting for its retry is cancelled by its admin with a reason: final, its
/// timeline says who and why, its retry sends nothing. Cancelling again, a sent delivery,
/// another account's, or without a reason is refused and changes nothing.
async fn a_waiting_delivery_is_cancelled_with_a_reason(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("flaky@example.com", Fault::Transient, 1);
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.delivery.retry_base = Duration::from_secs(6);
        c.delivery.retry_max = Duration::from_secs(6);
    })
    .await
    else {
        return;
    };
    let step = ticket_step_of(&app, &app.admin_key, "orders", "flaky@example.com").await;
    ok(
        &app,
        &app.admin_key,
        crate::ops::CREATE_RULE,
        json!({ "tag": "*", "emails": ["steady@example.com"] }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket = opened["ticket"]["id"].as_str().unwrap().to_owned();
    let data = app
        .wait_for(
            Duration::from_secs(30),
            TICKET,
            json!({ "id": ticket }),
            |d| {
                let ds = d["ticket"]["deliveries"].as_array().unwrap();
                ds.len() == 2
                    && ds.iter().any(|d| d["status"] == "RETRYING")
                    && ds.iter().any(|d| d["status"] == "SENT")
            },
        )
        .await;
    let delivery = |status: &str| {
        data["ticket"]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == status)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (waiting, sent) = (delivery("RETRYING"), delivery("SENT"));

    let blank = app
        .gql(
            Some(&app.admin_key),
            CANCEL,
            json!({ "id": waiting, "reason": "" }),
        )
        .await;
    assert_eq!(error_field(&blank), "reason");
    let (other_admin, _) = app.other_account().await;
    let foreign = app
        .gql(
            Some(&other_admin),
            CANCEL,
            json!({ "id": waiting, "reason": "x" }),
        )
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
    let final_one = app
        .gql(
            Some(&app.admin_key),
            CANCEL,
            json!({ "id": sent, "reason": "x" }),
        )
        .await;
    assert_eq!(error_code(&final_one), "BAD_USER_INPUT");

    let cancelled = ok(
        &app,
        &app.admin_key,
        CANCEL,
        json!({ "id": waiting, "reason": "the agent left the company" }),
    )
    .await;
    assert_eq!(cancelled["cancelDelivery"]["status"], "CANCELLED");
    let why = cancelled["cancelDelivery"]["lastError"].as_str().unwrap();
    assert!(
        why.starts_with("cancelled by admin key tk_admin_")
            && why.ends_with(": the agent left the company"),
        "{why}"
    );
    let twice = app
        .gql(
            Some(&app.admin_key),
            CANCEL,
            json!({ "id": waiting, "reason": "x" }),
        )
        .await;
    assert_eq!(error_code(&twice), "BAD_USER_INPUT");

    // Its retry was due 3-6 s after the failure: nothing goes out.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(smtp.received_by("flaky@example.com").is_empty());
    let data = ok(&app, &app.admin_key, TICKET, json!({ "id": ticket })).await;
    let line = data["ticket"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "DELIVERY_CANCELLED")
        .unwrap_or_else(|| panic!("no cancellation line: {data:#}"))
        .clone();
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("flaky@example.com cancelled by admin key"),
        "{line}"
    );
    let counts = ok(
        &app,
        OPS_TOKEN,
        "{ queueStats { deliveries { sent cancelled } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        counts["queueStats"]["deliveries"],
        json!({ "sent": 1, "cancelled": 1 })
    );
    let record = actions(&app, OPS_TOKEN).await;
    assert_eq!(
        record,
        vec![(
            "CANCEL_DELIVERY".into(),
            app.account_id.clone(),
            "the agent left the company".into()
        )]
    );
    app.stop().await;
}

/// `/ops/actions` takes a form only with the page's token and from the page's own origin: a
/// page elsewhere cannot make the operator's browser pause sending.
async fn ops_forms_refuse_forged_requests(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let token = domain::keys::ops_form_token(OPS_TOKEN);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |csrf: &str, headers: &[(&'static str, &'static str)], bearer: Option<&str>| {
        let mut request = client
            .post(format!("{}/ops/actions", app.base_url()))
            .form(&[("csrf", csrf), ("action", "pause"), ("reason", "forged")]);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    for (csrf, headers, bearer, status) in [
        (token.as_str(), &[][..], None, 401),
        (token.as_str(), &[][..], Some(app.admin_key.as_str()), 401),
        ("guess", &[][..], Some(OPS_TOKEN), 403),
        ("", &[][..], Some(OPS_TOKEN), 403),
        (
            token.as_str(),
            &[("sec-fetch-site", "cross-site")][..],
            Some(OPS_TOKEN),
            403,
        ),
        (
            token.as_str(),
            &[("origin", "https://evil.example")][..],
            Some(OPS_TOKEN),
            403,
        ),
    ] {
        let response = post(csrf, headers, bearer).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{csrf} {headers:?} {bearer:?}"
        );
    }
    assert_eq!(
        ok(&app, OPS_TOKEN, PAUSES, json!({})).await["sendingPauses"],
        json!([])
    );
    let response = post(
        &token,
        &[("sec-fetch-site", "same-origin")],
        Some(OPS_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/ops?done=paused");
    // Neither the page nor its answers may be framed by another site (clickjacking).
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let page = client
        .get(format!("{}/ops", app.base_url()))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let pauses = ok(&app, OPS_TOKEN, PAUSES, json!({})).await;
    assert_eq!(
        pauses["sendingPauses"],
        json!([{ "accountId": null, "pausedBy": "operator (/ops page)", "reason": "forged" }])
    );
    app.stop().await;
}

/// An operator in a real browser (headless Chromium through chromedriver) pauses sending for
/// everyone on `/ops`, puts a failed delivery back, and resumes: nothing goes out while paused,
/// both mails go out after, and the page shows the pause and the record of each click.
async fn an_operator_pauses_retries_and_resumes_from_the_ops_page_in_a_browser(engine: Engine) {
    if !crate::webdriver::installed() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and chromium or chromium-driver is not installed"
        );
        println!("SKIPPED (did not run): needs Debian's chromium and chromium-driver packages");
        return;
    }
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("bounce@example.com", Fault::Permanent, 1);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let bounce = ticket_step_of(&app, &app.admin_key, "orders", "bounce@example.com").await;
    open_ticket(&app, &app.widget_key, &bounce, "first").await;
    let failed = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(30),
            "{ deliveries(status: FAILED) { edges { node { id } } } }",
            json!({}),
            |d| d["deliveries"]["edges"].as_array().unwrap().len() == 1,
        )
        .await;
    let failed_id = failed["deliveries"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = crate::webdriver::Browser::start().await;
    let page = app
        .base_url()
        .replace("http://", &format!("http://ops:{OPS_TOKEN}@"))
        + "/ops";
    browser.open(&page).await;
    browser.wait_for("Sending goes on for every account.").await;
    browser
        .type_into("#pause-reason", "relay misconfigured")
        .await;
    browser.click("#pause").await;
    let html = browser.wait_for("Sending is paused.").await;
    assert!(
        html.contains("Sending is paused for everyone") && html.contains("relay misconfigured"),
        "{html}"
    );
    tokio::time::sleep(domain::pauses::REFRESH * 2).await;

    // Paused: the put-back delivery and a new ticket wait.
    browser.click(&format!("#retry-{failed_id}")).await;
    browser.wait_for("The delivery is back on the queue.").await;
    let fresh = ticket_step_of(&app, &app.admin_key, "billing", "fresh@example.com").await;
    open_ticket(&app, &app.widget_key, &fresh, "second").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.received_by("bounce@example.com").is_empty());
    assert!(smtp.received_by("fresh@example.com").is_empty());

    browser.click("#resume-everyone").await;
    let html = browser.wait_for("Sending is resumed").await;
    assert!(
        html.contains("Sending goes on for every account."),
        "{html}"
    );
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| {
            let to = |a: &str| m.iter().any(|m| m.to.iter().any(|t| t == a));
            to("bounce@example.com") && to("fresh@example.com")
        })
        .await,
        "the mails did not go out after the resume"
    );

    // The record, as the page lists it (newest first).
    browser.open(&page).await;
    let html = browser.html().await;
    let actions = html.split("id=\"actions\"").nth(1).unwrap();
    let resumed = actions.find("RESUME_SENDING").unwrap();
    let retried = actions.find("RETRY_DELIVERY").unwrap();
    let paused = actions.find("PAUSE_SENDING").unwrap();
    assert!(resumed < retried && retried < paused, "{actions}");
    assert_eq!(
        actions.matches("operator (/ops page)").count(),
        3,
        "{actions}"
    );
    browser.stop();
    app.stop().await;
}
