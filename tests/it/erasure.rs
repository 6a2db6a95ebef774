//! Erasing a visitor's data on request (KVKK, GDPR): by e-mail address or by conversation,
//! in one account only. Tickets stay as redacted records whose timeline says so, the
//! conversation's lines go, stored webhook payloads lose the visitor's details, and erasing
//! again changes nothing and says so.

use entity::webhook_delivery;
use integration_tests::{Engine, TestApp, TestSmtp, error_code, on_both_engines};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::conversation::published_bot;
use crate::ops::OPEN_TICKET;
use crate::ticket_path::flow_with_ticket_step;

pub(crate) const ERASE: &str =
    "mutation($input: EraseVisitorInput!) { eraseVisitorData(input: $input) {
  tickets conversations conversationLines webhookPayloads nothingLeft } }";
const TICKET: &str = "query($id: ID!) { ticket(id: $id) { number topic message erasedAt
  visitor { name email phone } transcript { text } answers timeline { kind } deliveries { status } } }";
const CONVERSATION: &str = "query($id: ID!) { conversation(id: $id) { transcript { text } } }";

on_both_engines!(a_visitors_data_is_erased_in_one_account_only);
on_both_engines!(addresses_match_ignoring_unicode_case);

async fn a_visitors_data_is_erased_in_one_account_only(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    // A webhook, so the ticket's event payload is stored (its receiver need not answer).
    app.admin(
        "mutation($url: String!) { createWebhook(input: { url: $url, events: [TICKET_OPENED, TICKET_UNROUTED] }) { secret } }",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    let open = |key: String, name: &'static str, email: &'static str| {
        let step = step.clone();
        let app = &app;
        async move {
            app.gql(
                Some(&key),
                OPEN_TICKET,
                json!({ "input": { "stepId": step, "message": "Siparişim gelmedi",
                    "visitor": { "name": name, "email": email, "phone": "+90 555 000 00 00" } } }),
            )
            .await["data"]["openTicket"]["ticket"]["id"]
                .clone()
        }
    };
    let hers = open(app.widget_key.clone(), "Ayşe Yılmaz", "ayse@example.com").await;
    let someone_else = open(app.widget_key.clone(), "Ali Veli", "ali@example.com").await;
    // The payload of her ticket's event is stored with her details.
    let stored = || async {
        webhook_delivery::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.payload)
            .collect::<Vec<String>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored().await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no webhook payloads stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stored()
            .await
            .iter()
            .any(|p| p.contains("ayse@example.com"))
    );

    let erased = app
        .admin(ERASE, json!({ "input": { "email": "AYSE@example.com" } }))
        .await["eraseVisitorData"]
        .clone();
    assert_eq!(
        erased,
        json!({ "tickets": 1, "conversations": 0, "conversationLines": 0,
                "webhookPayloads": 1, "nothingLeft": false })
    );
    let ticket = app.admin(TICKET, json!({ "id": hers })).await["ticket"].clone();
    assert_eq!(ticket["message"], "");
    assert!(ticket["visitor"].is_null(), "{ticket:#}");
    assert!(ticket["erasedAt"].is_string(), "{ticket:#}");
    assert_eq!(ticket["topic"], "orders", "the record stays");
    let kinds: Vec<&Value> = ticket["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert!(kinds.contains(&&json!("ERASED")), "{kinds:?}");
    let payloads = stored().await;
    assert!(
        !payloads
            .iter()
            .any(|p| p.contains("ayse@example.com") || p.contains("Ayşe")),
        "{payloads:?}"
    );
    assert!(
        payloads.iter().any(|p| p.contains("ali@example.com")),
        "others untouched"
    );
    let other = app.admin(TICKET, json!({ "id": someone_else })).await["ticket"].clone();
    assert_eq!(other["visitor"]["email"], "ali@example.com");

    // Again: nothing is left, and the answer says so.
    let again = app
        .admin(ERASE, json!({ "input": { "email": "ayse@example.com" } }))
        .await["eraseVisitorData"]
        .clone();
    assert_eq!(again["nothingLeft"], true, "{again:#}");
    assert_eq!(again["tickets"], 0);

    // By conversation: its answers and lines go.
    let (_, turn) = published_bot(&app).await;
    let conversation = turn["conversation"]["id"].clone();
    let erased = app
        .admin(
            ERASE,
            json!({ "input": { "conversationId": conversation } }),
        )
        .await["eraseVisitorData"]
        .clone();
    assert_eq!(erased["conversations"], 1, "{erased:#}");
    assert!(
        erased["conversationLines"].as_i64().unwrap() > 0,
        "{erased:#}"
    );
    let c = app.admin(CONVERSATION, json!({ "id": conversation })).await["conversation"].clone();
    assert_eq!(c["transcript"], json!([]), "{c:#}");
    let row = entity::conversation::Entity::find_by_id(
        uuid::Uuid::parse_str(conversation.as_str().unwrap()).unwrap(),
    )
    .one(&app.db)
    .await
    .unwrap()
    .unwrap();
    assert!(
        row.answers.0.is_empty() && row.visitor_email.is_none(),
        "{row:?}"
    );
    assert!(row.erased_at.is_some());
    let again = app
        .admin(
            ERASE,
            json!({ "input": { "conversationId": conversation } }),
        )
        .await["eraseVisitorData"]
        .clone();
    assert_eq!(again["nothingLeft"], true, "{again:#}");
    // An erased conversation is over: the visitor cannot add to it.
    let more = app
        .gql(
            Some(&app.widget_key),
            &crate::ops::send_visitor_message(),
            json!({ "input": { "conversationId": conversation, "text": "hello again" } }),
        )
        .await;
    assert_eq!(error_code(&more), "CONVERSATION_EXPIRED", "{more:#}");

    // Another account can neither find nor erase any of it.
    let (other_admin, _) = app.other_account().await;
    let theirs = app
        .gql(
            Some(&other_admin),
            ERASE,
            json!({ "input": { "conversationId": conversation } }),
        )
        .await;
    assert_eq!(error_code(&theirs), "NOT_FOUND", "{theirs:#}");
    let theirs = app
        .gql(
            Some(&other_admin),
            ERASE,
            json!({ "input": { "email": "ali@example.com" } }),
        )
        .await;
    assert_eq!(
        theirs["data"]["eraseVisitorData"]["nothingLeft"], true,
        "{theirs:#}"
    );
    let other = app.admin(TICKET, json!({ "id": someone_else })).await["ticket"].clone();
    assert_eq!(other["visitor"]["email"], "ali@example.com");
    // A widget key cannot erase.
    let widget = app
        .gql(
            Some(&app.widget_key),
            ERASE,
            json!({ "input": { "email": "ali@example.com" } }),
        )
        .await;
    assert_eq!(error_code(&widget), "FORBIDDEN", "{widget:#}");
    app.stop().await;
}

/// An address with letters outside ASCII is found whatever their case (SQLite's `lower` knows
/// only ASCII letters, PostgreSQL's depends on the database's locale); a look-alike ASCII
/// address is another visitor.
async fn addresses_match_ignoring_unicode_case(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    let mut ids = Vec::new();
    for email in ["Şükrü.Öz@Örnek.com.tr", "sukru.oz@ornek.com.tr"] {
        let body = app
            .gql(
                Some(&app.widget_key),
                OPEN_TICKET,
                json!({ "input": { "stepId": step, "message": "Merhaba",
                    "visitor": { "name": "Şükrü", "email": email } } }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body:#}");
        ids.push(body["data"]["openTicket"]["ticket"]["id"].clone());
    }
    let erased = app
        .admin(
            ERASE,
            json!({ "input": { "email": "ŞÜKRÜ.ÖZ@örnek.COM.TR" } }),
        )
        .await["eraseVisitorData"]
        .clone();
    assert_eq!(erased["tickets"], 1, "{erased:#}");
    let ticket = |id: Value| {
        let app = &app;
        async move { app.admin(TICKET, json!({ "id": id })).await["ticket"].clone() }
    };
    assert!(ticket(ids[0].clone()).await["visitor"]["email"].is_null());
    assert_eq!(
        ticket(ids[1].clone()).await["visitor"]["email"],
        "sukru.oz@ornek.com.tr",
        "the ASCII look-alike is someone else"
    );
    app.stop().await;
}
