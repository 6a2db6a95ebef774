//! The visitor's own confirmation: a ticket step can mail the visitor their ticket number,
//! through the deliveries (recorded, retried, in the timeline), in the account's language,
//! at most a few times per address per account per hour, and never the words of whoever
//! typed the address.

use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::open_ticket;

on_both_engines!(visitors_get_a_bounded_confirmation);

const VISITOR: &str = "ayse.visitor@example.net";

/// A flow whose ticket step mails the visitor (`confirm`), and a `*` rule to an agent; the
/// step's id.
async fn confirming_step(app: &TestApp, admin: &str, topic: &str, confirm: bool) -> String {
    let flow = app
        .admin_as(admin, CREATE_FLOW, json!({ "name": "Destek" }))
        .await["createFlow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let step = app
        .admin_as(
            admin,
            "mutation($flowId: ID!, $step: StepInput!) { addStep(flowId: $flowId, step: $step) {
               id ... on TicketStep { confirmVisitor } } }",
            json!({ "flowId": flow, "step": { "ticket": { "topic": topic,
                "confirmationMessage": "Talep alındı", "confirmVisitor": confirm } } }),
        )
        .await;
    assert_eq!(step["addStep"]["confirmVisitor"], confirm);
    step["addStep"]["id"].as_str().unwrap().to_owned()
}

/// The ticket once the worker has sent its deliveries. Generous: under the whole suite on two
/// cores this test once failed after 24 s, most likely at one of these waits (then 20 s); how
/// fast is the benchmarks' business.
async fn routed(app: &TestApp, key: &str, id: &Value, deliveries: usize) -> Value {
    app.wait_for_as(
        key,
        Duration::from_secs(60),
        "query($id: ID!) { ticket(id: $id) { number
           deliveries { recipient status sources { kind } }
           timeline { kind message } } }",
        json!({ "id": id }),
        |d| {
            d["ticket"]["deliveries"]
                .as_array()
                .is_some_and(|l| l.len() >= deliveries && l.iter().all(|d| d["status"] == "SENT"))
        },
    )
    .await
}

fn kinds(ticket: &Value) -> Vec<String> {
    ticket["ticket"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn visitors_get_a_bounded_confirmation(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let admin = app.admin_key.clone();
    let step = confirming_step(&app, &admin, "secret_topic_x", true).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;

    // Four tickets from one address within the hour: three confirmations, then none.
    let mut tickets = Vec::new();
    for i in 0..4 {
        let opened = open_ticket(
            &app,
            &app.widget_key,
            &step,
            &format!("buy cheap pills {i}"),
        )
        .await;
        tickets.push(opened["ticket"]["id"].clone());
    }
    for (i, id) in tickets.iter().enumerate() {
        let confirmed = i < 3;
        let ticket = routed(&app, &admin, id, 1 + usize::from(confirmed)).await;
        let deliveries = ticket["ticket"]["deliveries"].as_array().unwrap();
        let to_visitor: Vec<&Value> = deliveries
            .iter()
            .filter(|d| d["sources"][0]["kind"] == "VISITOR_CONFIRMATION")
            .collect();
        assert_eq!(
            to_visitor.len(),
            usize::from(confirmed),
            "ticket {i}: {ticket:#}"
        );
        let kinds = kinds(&ticket);
        assert_eq!(
            kinds.contains(&"VISITOR_CONFIRMED".to_owned()),
            confirmed,
            "{kinds:?}"
        );
        assert_eq!(
            kinds.contains(&"CONFIRMATION_SKIPPED".to_owned()),
            !confirmed,
            "{kinds:?}"
        );
        // The staff's routing line names the agent only.
        let routed_line = ticket["ticket"]["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "ROUTED")
            .unwrap()["message"]
            .clone();
        assert_eq!(routed_line, "Routed to 1 recipient: agent@example.com");
    }
    // Another spelling of the same mailbox shares the limit.
    let tagged = app
        .gql(
            Some(&app.widget_key),
            OPEN_TICKET,
            json!({ "input": { "stepId": step, "message": "again",
                "visitor": { "email": "Ayse.Visitor+promo@example.net" } } }),
        )
        .await;
    let tagged = routed(
        &app,
        &admin,
        &tagged["data"]["openTicket"]["ticket"]["id"],
        1,
    )
    .await;
    assert!(
        kinds(&tagged).contains(&"CONFIRMATION_SKIPPED".to_owned()),
        "{tagged:#}"
    );
    // What the visitor got: the number in a fixed text, marked auto-generated; nothing of
    // the topic (internal) or of what was typed.
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .filter(|m| m.to == [VISITOR])
            .count()
            == 3)
            .await
    );
    let mails = smtp.received_by(VISITOR);
    assert_eq!(mails.len(), 3, "exactly three confirmations");
    let first = mails
        .iter()
        .find(|m| {
            m.data
                .contains("Subject: [Ticket #1] We received your message")
        })
        .unwrap_or_else(|| panic!("{:#?}", mails[0].data));
    assert!(first.data.contains("Auto-Submitted: auto-generated"));
    for mail in &mails {
        assert!(!mail.data.contains("secret_topic_x"), "{}", mail.data);
        assert!(!mail.data.contains("pills"), "{}", mail.data);
    }

    // Per account: another account's step mails the same address, in its own language; a
    // step that does not ask mails nobody but the staff.
    let (other_admin, other_widget) = app.other_account().await;
    app.admin_as(
        &other_admin,
        "mutation { setDefaultLocale(locale: TR) { defaultLocale } }",
        json!({}),
    )
    .await;
    let theirs = confirming_step(&app, &other_admin, "destek", true).await;
    app.admin_as(
        &other_admin,
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["temsilci@example.com"] }),
    )
    .await;
    let opened = open_ticket(&app, &other_widget, &theirs, "merhaba").await;
    routed(&app, &other_admin, &opened["ticket"]["id"], 2).await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .filter(|m| m.to == [VISITOR])
            .count()
            == 4)
            .await
    );
    let turkish = smtp.received_by(VISITOR);
    assert!(
        turkish
            .iter()
            .any(|m| m.data.contains("Subject: [Talep #1]")),
        "the other account's first ticket, in Turkish: {turkish:#?}"
    );
    // Erasing the visitor's data takes their address from the confirmations too.
    app.admin(
        crate::erasure::ERASE,
        json!({ "input": { "email": VISITOR } }),
    )
    .await;
    let erased = routed(&app, &admin, &tickets[0], 2).await;
    let recipients: Vec<&str> = erased["ticket"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, ["agent@example.com", "(erased)"], "{erased:#}");
    assert!(!erased.to_string().contains(VISITOR), "{erased:#}");
    let silent = confirming_step(&app, &admin, "quiet", false).await;
    let opened = open_ticket(&app, &app.widget_key, &silent, "no confirmation").await;
    let quiet = routed(&app, &admin, &opened["ticket"]["id"], 1).await;
    assert_eq!(quiet["ticket"]["deliveries"].as_array().unwrap().len(), 1);
    assert!(!kinds(&quiet).contains(&"CONFIRMATION_SKIPPED".to_owned()));

    // A chatbot conversation runs the published step's setting, with the address it asked.
    let flow = app.admin(CREATE_FLOW, json!({ "name": "Sohbet" })).await["createFlow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for step in [
        json!({ "question": { "text": "E-posta adresiniz?", "field": "email" } }),
        json!({ "ticket": { "topic": "chat", "confirmationMessage": "Talep alındı",
            "confirmVisitor": true } }),
    ] {
        crate::conversation::add(&app, &flow, step).await;
    }
    app.admin(PUBLISH_FLOW, json!({ "id": flow })).await;
    let turn =
        crate::conversation::widget(&app, &start_conversation(), json!({ "flowId": flow })).await;
    let last = crate::conversation::widget(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": turn["conversation"]["id"], "text": "Sohbet@Example.net" }),
    )
    .await;
    routed(&app, &admin, &last["ticket"]["id"], 2).await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m
            .iter()
            .any(|m| m.to == ["Sohbet@Example.net"]))
            .await
    );
    app.stop().await;
}
