//! A stored value the code does not know (a corrupt row, or one a newer version wrote) is an
//! error that names nothing internal, never a silent default: a delivery status of `DONE`
//! does not read as `PENDING`, a step kind of `carousel` does not read as a message step, and
//! a delivery whose ticket cannot be read ends `FAILED` with the reason.

use std::time::Duration;

use domain::vocab::DeliveryStatus;
use integration_tests::{Engine, Fault, TestApp, TestSmtp, error_code, on_both_engines};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
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

    // A ticket whose stored answers are not answers: reading it is an error, and an attempt
    // at its delivery ends FAILED with the reason instead of failing its job again and again.
    smtp.fail_rcpt("agent@example.com", Fault::Permanent, 1);
    let third = open_ticket(&app, &app.widget_key, &step, "third").await;
    let third_id = third["ticket"]["id"].clone();
    let failed = app
        .wait_for(
            Duration::from_secs(15),
            "query($id: ID!) { ticket(id: $id) { deliveries { id status } } }",
            json!({ "id": third_id }),
            |d| d["ticket"]["deliveries"][0]["status"] == "FAILED",
        )
        .await;
    let delivery_id = failed["ticket"]["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket_id = uuid::Uuid::parse_str(third_id.as_str().unwrap()).unwrap();
    entity::ticket::Entity::update_many()
        .col_expr(
            entity::ticket::Column::Answers,
            Expr::cust("'[\"not\", \"answers\"]'"),
        )
        .filter(entity::ticket::Column::Id.eq(ticket_id))
        .exec(&app.db)
        .await
        .unwrap();
    let body = app
        .gql(
            Some(&app.admin_key),
            "query($id: ID!) { ticket(id: $id) { answers } }",
            json!({ "id": third_id }),
        )
        .await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body:#}");
    app.admin(
        "mutation($id: ID!) { retryDelivery(id: $id) { id status } }",
        json!({ "id": delivery_id }),
    )
    .await;
    let id = uuid::Uuid::parse_str(&delivery_id).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let row = loop {
        let row = entity::delivery::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        if row.attempts == 2 && row.status == DeliveryStatus::Failed {
            break row;
        }
        assert!(std::time::Instant::now() < deadline, "still {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = row.last_error.unwrap_or_default();
    assert!(reason.contains("cannot be read"), "{reason}");

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
