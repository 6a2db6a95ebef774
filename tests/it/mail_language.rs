//! The language of notification e-mails (account default, a rule's own) and a rule's test
//! e-mail, against a real SMTP server.

use std::time::Duration;

use integration_tests::{Engine, Fault, TestApp, TestSmtp, error_code, on_both_engines};
use serde_json::json;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    mail_is_written_in_the_rules_language_else_the_accounts,
    a_rules_test_email_goes_out_at_once_and_reports_each_address
);

const CREATE_RULE: &str = "mutation($tag: String!, $emails: [String!]!, $locale: Locale) {
  createRoutingRule(input: { tag: $tag, emails: $emails, locale: $locale }) { id locale }
}";
const SET_DEFAULT: &str =
    "mutation($l: Locale!) { setDefaultLocale(locale: $l) { name defaultLocale } }";
const SEND_TEST: &str =
    "mutation($id: ID!) { sendTestEmail(ruleId: $id) { recipient accepted reply locale } }";

fn subject(mail: &integration_tests::ReceivedMail) -> String {
    mail.data
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_owned()
}

async fn mail_is_written_in_the_rules_language_else_the_accounts(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    let turkish = app
        .admin(
            CREATE_RULE,
            json!({ "tag": "offline_message", "emails": ["tr@example.com"], "locale": "TR" }),
        )
        .await;
    assert_eq!(turkish["createRoutingRule"]["locale"], "TR");
    let default = app
        .admin(
            CREATE_RULE,
            json!({ "tag": "*", "emails": ["en@example.com"] }),
        )
        .await;
    assert!(default["createRoutingRule"]["locale"].is_null());
    let settings = app
        .admin("{ accountSettings { defaultLocale } }", json!({}))
        .await;
    assert_eq!(settings["accountSettings"]["defaultLocale"], "EN");

    open_ticket(&app, &app.widget_key, &step, "one").await;
    assert!(
        smtp.wait_until(Duration::from_secs(20), |m| m.len() == 2)
            .await
    );
    assert_eq!(
        subject(&smtp.received_by("tr@example.com")[0]),
        "[Talep #1] offline_message"
    );
    assert_eq!(
        subject(&smtp.received_by("en@example.com")[0]),
        "[Ticket #1] offline_message"
    );

    let set = app.admin(SET_DEFAULT, json!({ "l": "TR" })).await;
    assert_eq!(set["setDefaultLocale"]["defaultLocale"], "TR");
    open_ticket(&app, &app.widget_key, &step, "two").await;
    assert!(
        smtp.wait_until(Duration::from_secs(20), |m| m.len() == 4)
            .await
    );
    assert_eq!(
        subject(&smtp.received_by("en@example.com")[1]),
        "[Talep #2] offline_message",
        "the account's new default applies to rules without a language"
    );
    app.stop().await;
}

async fn a_rules_test_email_goes_out_at_once_and_reports_each_address(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, usize::MAX);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let rule = app
        .admin(
            CREATE_RULE,
            json!({ "tag": "TICKET_TOPIC_FOO_BAR", "emails": ["ok@example.com", "gone@example.com"], "locale": "TR" }),
        )
        .await;
    let rule_id = rule["createRoutingRule"]["id"].clone();
    let sent = app.admin(SEND_TEST, json!({ "id": rule_id })).await;
    let results = sent["sendTestEmail"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{sent:#}");
    assert_eq!(results[0]["recipient"], "ok@example.com");
    assert_eq!(results[0]["accepted"], true);
    assert!(
        results[0]["reply"].as_str().unwrap().starts_with("250"),
        "{sent:#}"
    );
    assert_eq!(results[0]["locale"], "TR");
    assert_eq!(results[1]["recipient"], "gone@example.com");
    assert_eq!(results[1]["accepted"], false);
    assert!(
        results[1]["reply"].as_str().unwrap().contains("550"),
        "{sent:#}"
    );

    // Already there when the mutation answered: it sent, it did not queue.
    let mail = smtp.received_by("ok@example.com");
    assert_eq!(mail.len(), 1);
    assert_eq!(
        subject(&mail[0]),
        "[Deneme] [Talep #0] TICKET_TOPIC_FOO_BAR"
    );

    // A sample, not a ticket: nothing was stored.
    let tickets = app
        .admin("{ tickets { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(tickets["tickets"]["edges"], json!([]));

    let (other_admin, _) = app.other_account().await;
    let foreign = app
        .gql(Some(&other_admin), SEND_TEST, json!({ "id": rule_id }))
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
    let widget = app
        .gql(Some(&app.widget_key), SEND_TEST, json!({ "id": rule_id }))
        .await;
    assert_eq!(error_code(&widget), "FORBIDDEN");
    assert_eq!(smtp.received().len(), 1, "refused calls send nothing");
    app.stop().await;
}
