//! Bad input gets `BAD_USER_INPUT` with the offending field, and nothing is written.

use integration_tests::{Engine, TestApp, TestSmtp, error_code, error_field, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::flow_with_ticket_step;

on_both_engines!(invalid_input_is_refused_with_its_field_and_writes_nothing);

async fn expect_invalid(app: &TestApp, query: &str, variables: Value, field: &str) {
    let body = app
        .gql(Some(&app.admin_key), query, variables.clone())
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body:#}");
    assert_eq!(error_field(&body), field, "{variables}: {body:#}");
    assert!(body["data"].is_null(), "{body:#}");
}

async fn invalid_input_is_refused_with_its_field_and_writes_nothing(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;

    // Flows and steps.
    expect_invalid(&app, CREATE_FLOW, json!({ "name": "   " }), "name").await;
    expect_invalid(
        &app,
        CREATE_FLOW,
        json!({ "name": "x".repeat(201) }),
        "name",
    )
    .await;
    expect_invalid(&app, CREATE_FLOW, json!({ "name": "two\nlines" }), "name").await;
    let ticket = |topic: &str, confirmation: &str, forward: Value| json!({ "flowId": flow_id, "step": { "ticket": { "topic": topic, "confirmationMessage": confirmation, "forwardEmails": forward } } });
    expect_invalid(
        &app,
        ADD_STEP,
        ticket("*", "Talep alındı", json!([])),
        "step.ticket.topic",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        ticket("has space", "Talep alındı", json!([])),
        "step.ticket.topic",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        ticket(&"t".repeat(65), "Talep alındı", json!([])),
        "step.ticket.topic",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        ticket("ok", "  ", json!([])),
        "step.ticket.confirmationMessage",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        ticket(
            "ok",
            "Talep alındı",
            json!(["a@example.com", "Name <b@example.com>"]),
        ),
        "step.ticket.forwardEmails[1]",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        ticket(
            "ok",
            "Talep alındı",
            json!(["a@example.com\r\nBcc: x@example.com"]),
        ),
        "step.ticket.forwardEmails[0]",
    )
    .await;
    expect_invalid(
        &app,
        ADD_STEP,
        json!({ "flowId": flow_id, "step": { "message": { "text": "" } } }),
        "step.message.text",
    )
    .await;
    expect_invalid(
        &app,
        UPDATE_STEP,
        json!({ "id": step_id, "step": { "ticket": { "topic": "", "confirmationMessage": "x" } } }),
        "step.ticket.topic",
    )
    .await;

    // Agents.
    expect_invalid(
        &app,
        CREATE_AGENT,
        json!({ "name": "Ayşe", "email": "not-an-address" }),
        "email",
    )
    .await;
    expect_invalid(
        &app,
        CREATE_AGENT,
        json!({ "name": "", "email": "a@example.com" }),
        "name",
    )
    .await;
    app.admin(
        CREATE_AGENT,
        json!({ "name": "Ayşe", "email": "ayse@example.com" }),
    )
    .await;
    expect_invalid(
        &app,
        CREATE_AGENT,
        json!({ "name": "Ayşe 2", "email": "AYSE@example.com" }),
        "email",
    )
    .await;

    // Rules.
    expect_invalid(
        &app,
        CREATE_RULE,
        json!({ "tag": "offline_message", "emails": [] }),
        "emails",
    )
    .await;
    expect_invalid(
        &app,
        CREATE_RULE,
        json!({ "tag": "", "emails": ["a@example.com"] }),
        "tag",
    )
    .await;
    expect_invalid(
        &app,
        CREATE_RULE,
        json!({ "tag": "a*", "emails": ["a@example.com"] }),
        "tag",
    )
    .await;
    expect_invalid(
        &app,
        CREATE_RULE,
        json!({ "tag": "ok", "emails": ["a@example.com", "nope"] }),
        "emails[1]",
    )
    .await;
    let rule = app.admin(CREATE_RULE, json!({ "tag": "Offline_Message", "emails": ["a@example.com", "A@EXAMPLE.com", "b@example.com"] })).await;
    assert_eq!(
        rule["createRoutingRule"]["emails"],
        json!(["a@example.com", "b@example.com"]),
        "de-duplicated ignoring case"
    );
    assert_eq!(
        rule["createRoutingRule"]["tagKnown"], true,
        "tags match ignoring case"
    );
    let rule_id = rule["createRoutingRule"]["id"].as_str().unwrap();
    expect_invalid(
        &app,
        UPDATE_RULE,
        json!({ "id": rule_id, "tag": "*", "emails": [] }),
        "emails",
    )
    .await;

    // Tickets.
    let open = |message: &str, visitor: Value| json!({ "input": { "stepId": step_id, "message": message, "visitor": visitor } });
    expect_invalid(&app, OPEN_TICKET, open("   ", json!(null)), "message").await;
    expect_invalid(
        &app,
        OPEN_TICKET,
        open(&"m".repeat(10_001), json!(null)),
        "message",
    )
    .await;
    expect_invalid(
        &app,
        OPEN_TICKET,
        open("hi", json!({ "email": "x\r\nBcc: y@example.com" })),
        "visitor.email",
    )
    .await;
    expect_invalid(
        &app,
        OPEN_TICKET,
        open("hi", json!({ "name": "a\r\nb" })),
        "visitor.name",
    )
    .await;
    expect_invalid(
        &app,
        OPEN_TICKET,
        open("hi", json!({ "phone": "call me" })),
        "visitor.phone",
    )
    .await;
    let greeting = app.admin(FLOWS, json!({})).await["flows"][0]["steps"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_invalid(
        &app,
        OPEN_TICKET,
        json!({ "input": { "stepId": greeting, "message": "hi" } }),
        "stepId",
    )
    .await;
    expect_invalid(&app, TICKETS, json!({ "first": 0 }), "first").await;
    expect_invalid(&app, TICKETS, json!({ "after": "garbage" }), "after").await;

    // Nothing above was written.
    let flows = app.admin(FLOWS, json!({})).await;
    assert_eq!(flows["flows"].as_array().unwrap().len(), 1);
    assert_eq!(flows["flows"][0]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(
        flows["flows"][0]["steps"][1]["topic"], "offline_message",
        "the failed update changed nothing"
    );
    assert_eq!(
        app.admin(AGENTS, json!({})).await["agents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let rules = app.admin(RULES, json!({})).await;
    assert_eq!(rules["routingRules"].as_array().unwrap().len(), 1);
    assert_eq!(rules["routingRules"][0]["tag"], "Offline_Message");
    assert_eq!(
        app.admin(TICKETS, json!({})).await["tickets"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    app.stop().await;
}
