//! Mail over TLS to a TLS-speaking SMTP server: STARTTLS with credentials (`SMTP_USERNAME`,
//! `SMTP_PASSWORD`), TLS from the first byte (`smtps://`), and a server whose certificate is
//! not trusted. The transport does not depend on the database, so these run on SQLite only.

use std::time::Duration;

use domain::infra::config::Secret;
use integration_tests::{Engine, TestApp, TestSmtp};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

/// An app sending to `url` with these credentials and CA; opens one ticket routed to
/// agent@example.com and returns the app with that ticket's id.
async fn app_sending_to(
    smtp: &TestSmtp,
    url: String,
    credentials: Option<(&str, &str)>,
    trust_test_ca: bool,
) -> (TestApp, String) {
    let app = TestApp::spawn_with(Engine::Sqlite, smtp, |c| {
        c.mail.smtp_url = Some(Secret::new(url));
        c.mail.smtp_credentials =
            credentials.map(|(u, p)| (u.to_owned(), Secret::new(p.to_owned())));
        c.mail.smtp_ca_file = trust_test_ca.then(TestSmtp::ca_file);
    })
    .await
    .expect("SQLite is always available");
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step, "over TLS").await;
    let ticket = opened["ticket"]["id"].as_str().unwrap().to_owned();
    (app, ticket)
}

async fn delivery_once(app: &TestApp, ticket: &str, done: impl Fn(&Value) -> bool) -> Value {
    let data = app
        .wait_for(
            Duration::from_secs(20),
            TICKET,
            json!({ "id": ticket }),
            |d| done(&d["ticket"]["deliveries"][0]),
        )
        .await;
    data["ticket"]["deliveries"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_credentials_from_the_environment() {
    let smtp = TestSmtp::start_tls("tickets", "s3cret pass");
    let url = format!("smtp://localhost:{}?tls=required", smtp.addr().port());

    let (app, ticket) =
        app_sending_to(&smtp, url.clone(), Some(("tickets", "s3cret pass")), true).await;
    let delivery = delivery_once(&app, &ticket, |d| d["status"] == "SENT").await;
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(smtp.received_by("agent@example.com").len(), 1);
    // mailin accepts AUTH only after STARTTLS: a login means the session was encrypted.
    assert_eq!(smtp.logins(), ["tickets"]);
    app.stop().await;

    // A wrong password is a hard refusal (535): no retry storm against the relay.
    let (app, ticket) = app_sending_to(&smtp, url.clone(), Some(("tickets", "wrong")), true).await;
    let delivery = delivery_once(&app, &ticket, |d| d["status"] == "FAILED").await;
    assert!(
        delivery["lastError"].as_str().unwrap().contains("535"),
        "{delivery:#}"
    );
    app.stop().await;

    // Without SMTP_CA_FILE the test CA is unknown: the certificate is refused, nothing is
    // sent in clear instead, and the delivery waits for a retry.
    let (app, ticket) = app_sending_to(&smtp, url, Some(("tickets", "s3cret pass")), false).await;
    let delivery = delivery_once(&app, &ticket, |d| d["status"] == "RETRYING").await;
    assert!(
        delivery["lastError"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{delivery:#}"
    );
    assert_eq!(smtp.received().len(), 1, "only the first app's mail");
    assert_eq!(smtp.logins(), ["tickets"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtps_speaks_tls_from_the_first_byte() {
    let (smtp, front) = TestSmtp::start_implicit_tls().await;
    let url = format!("smtps://localhost:{}", front.port());
    let (app, ticket) = app_sending_to(&smtp, url, None, true).await;
    delivery_once(&app, &ticket, |d| d["status"] == "SENT").await;
    let mail = smtp.received_by("agent@example.com");
    assert_eq!(mail.len(), 1);
    assert!(mail[0].data.contains("over TLS"));
    app.stop().await;
}
