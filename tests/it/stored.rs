//! A stored value the code does not know (a corrupt row, or one a newer version wrote) is an
//! error that names nothing internal, never a silent default: a delivery status of `DONE`
//! does not read as `PENDING`, a step kind of `carousel` does not read as a message step.

use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, error_code, on_both_engines};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(unknown_stored_values_are_errors_not_defaults);

async fn unknown_stored_values_are_errors_not_defaults(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow, step) = flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    app.admin(
        crate::ops::CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket = opened["ticket"]["id"].clone();
    let statuses = "query($id: ID!) { ticket(id: $id) { deliveries { status } } }";
    app.wait_for(
        Duration::from_secs(15),
        statuses,
        json!({ "id": ticket }),
        |d| d["ticket"]["deliveries"][0]["status"] == "SENT",
    )
    .await;

    // A rule whose addresses cannot be read: the rule list says so, and the ticket still
    // reaches everyone else.
    app.admin(
        crate::ops::CREATE_RULE,
        json!({ "tag": "orders", "emails": ["orders@example.com"] }),
    )
    .await;
    app.db
        .execute_unprepared(
            "UPDATE routing_rules SET emails = '\"orders@example.com\"' WHERE tag = 'orders'",
        )
        .await
        .unwrap();
    let rules = app
        .gql(
            Some(&app.admin_key),
            "{ routingRules { tag emails } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&rules), "INTERNAL_SERVER_ERROR", "{rules:#}");
    let second = open_ticket(&app, &app.widget_key, &step, "again").await;
    let data = app
        .wait_for(
            Duration::from_secs(15),
            "query($id: ID!) { ticket(id: $id) { deliveries { recipient status } } }",
            json!({ "id": second["ticket"]["id"] }),
            |d| d["ticket"]["deliveries"][0]["status"] == "SENT",
        )
        .await;
    assert_eq!(
        data["ticket"]["deliveries"].as_array().unwrap().len(),
        1,
        "only the readable rule's recipient: {data:#}"
    );

    app.db
        .execute_unprepared("UPDATE deliveries SET status = 'DONE'")
        .await
        .unwrap();
    let body = app
        .gql(Some(&app.admin_key), statuses, json!({ "id": ticket }))
        .await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body:#}");
    assert!(!body.to_string().contains("DONE"), "no internals: {body:#}");

    app.db
        .execute_unprepared("UPDATE steps SET kind = 'carousel'")
        .await
        .unwrap();
    let body = app
        .gql(
            Some(&app.admin_key),
            "query($id: ID!) { flow(id: $id) { steps { __typename id } } }",
            json!({ "id": flow }),
        )
        .await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body:#}");
    app.stop().await;
}
