//! Editing a flow's design: renaming it, moving a step, copying and deleting the flow. Each
//! keeps links between steps, refuses bad input with the field, and finds nothing of another
//! account; a deleted flow's running conversations finish on its published version.

use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, error_code, error_field, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::open_ticket;

on_both_engines!(flows_are_renamed_reordered_and_copied);

const RENAME: &str =
    "mutation($id: ID!, $name: String!) { renameFlow(id: $id, name: $name) { id name } }";
const MOVE: &str = "mutation($id: ID!, $position: Int!) { moveStep(id: $id, position: $position) { id position } }";
const COPY: &str =
    "mutation($id: ID!, $name: String!) { copyFlow(id: $id, name: $name) { id name } }";
const STEPS: &str = "query($id: ID!) { flow(id: $id) { name steps { id position
  ... on MessageStep { text next } ... on TicketStep { topic forwardEmails } } } }";

/// The flow's steps as (text or topic, position, index of the `next` step among them).
fn layout(flow: &Value) -> Vec<(String, i64, Option<usize>)> {
    let steps = flow["flow"]["steps"].as_array().unwrap();
    steps
        .iter()
        .map(|s| {
            let label = s["text"]
                .as_str()
                .or(s["topic"].as_str())
                .unwrap()
                .to_owned();
            let next = s["next"]
                .as_str()
                .map(|n| steps.iter().position(|t| t["id"] == n).unwrap());
            (label, s["position"].as_i64().unwrap(), next)
        })
        .collect()
}

async fn flows_are_renamed_reordered_and_copied(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let flow = app.admin(CREATE_FLOW, json!({ "name": "Destek" })).await["createFlow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = |step: Value| crate::conversation::add(&app, &flow, step);
    let ticket = add(
        json!({ "ticket": { "topic": "billing", "confirmationMessage": "Talep alındı",
        "forwardEmails": ["fwd@example.com"] } }),
    )
    .await;
    let greeting = add(json!({ "message": { "text": "Merhaba", "next": ticket } })).await;
    let _bye = add(json!({ "message": { "text": "Hoşça kalın" } })).await;

    // Rename: the flow's name changes; a ticket opened before keeps the old one.
    let opened = open_ticket(&app, &app.widget_key, &ticket, "hi").await;
    let renamed = app
        .admin(RENAME, json!({ "id": flow, "name": "Support" }))
        .await;
    assert_eq!(renamed["renameFlow"]["name"], "Support");
    let old = app
        .admin(
            "query($id: ID!) { ticket(id: $id) { flowName } }",
            json!({ "id": opened["ticket"]["id"] }),
        )
        .await;
    assert_eq!(old["ticket"]["flowName"], "Destek");

    // Move the greeting first: the others shift down, its link still names the ticket step.
    let moved = app
        .admin(MOVE, json!({ "id": greeting, "position": 0 }))
        .await;
    assert_eq!(moved["moveStep"]["position"], 0);
    let before_copy = app.admin(STEPS, json!({ "id": flow })).await;
    assert_eq!(
        layout(&before_copy),
        [
            ("Merhaba".to_owned(), 0, Some(1)),
            ("billing".to_owned(), 1, None),
            ("Hoşça kalın".to_owned(), 2, None),
        ]
    );
    // And to the end, and back where it is (nothing changes).
    app.admin(MOVE, json!({ "id": greeting, "position": 2 }))
        .await;
    app.admin(MOVE, json!({ "id": greeting, "position": 2 }))
        .await;
    let at_end = app.admin(STEPS, json!({ "id": flow })).await;
    assert_eq!(
        layout(&at_end),
        [
            ("billing".to_owned(), 0, None),
            ("Hoşça kalın".to_owned(), 1, None),
            ("Merhaba".to_owned(), 2, Some(0)),
        ]
    );

    // Copy: a new flow with new steps in the same order, linked among themselves.
    let copy = app
        .admin(COPY, json!({ "id": flow, "name": "Support (copy)" }))
        .await;
    let copy_id = copy["copyFlow"]["id"].as_str().unwrap().to_owned();
    assert_ne!(copy_id, flow);
    let copied = app.admin(STEPS, json!({ "id": copy_id })).await;
    assert_eq!(copied["flow"]["name"], "Support (copy)");
    assert_eq!(layout(&copied), layout(&at_end));
    let ids = |f: &Value| -> Vec<String> {
        f["flow"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        ids(&copied).iter().all(|id| !ids(&at_end).contains(id)),
        "the copy has steps of its own"
    );
    assert_eq!(
        copied["flow"]["steps"][0]["forwardEmails"],
        json!(["fwd@example.com"])
    );
    assert_eq!(
        app.admin(STEPS, json!({ "id": flow })).await,
        at_end,
        "the original is unchanged"
    );

    // Bad input names its field and writes nothing.
    for (query, variables, field) in [
        (RENAME, json!({ "id": flow, "name": " " }), "name"),
        (RENAME, json!({ "id": flow, "name": "two\nlines" }), "name"),
        (COPY, json!({ "id": flow, "name": "" }), "name"),
        (MOVE, json!({ "id": greeting, "position": 3 }), "position"),
        (MOVE, json!({ "id": greeting, "position": -1 }), "position"),
    ] {
        let body = app.gql(Some(&app.admin_key), query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body:#}");
        assert_eq!(error_field(&body), field, "{body:#}");
    }
    assert_eq!(app.admin(STEPS, json!({ "id": flow })).await, at_end);

    // Another account's admin finds none of it; the public key may not try.
    let (other_admin, _) = app.other_account().await;
    for (query, variables) in [
        (RENAME, json!({ "id": flow, "name": "Mine" })),
        (COPY, json!({ "id": flow, "name": "Mine" })),
        (MOVE, json!({ "id": greeting, "position": 0 })),
    ] {
        let body = app.gql(Some(&other_admin), query, variables.clone()).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{query}: {body:#}");
        let body = app.gql(Some(&app.widget_key), query, variables).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body:#}");
    }
    assert_eq!(app.admin(STEPS, json!({ "id": flow })).await, at_end);

    // Deleting a flow: it is listed nowhere and no conversation starts on it, but one already
    // running on its published version finishes and opens its ticket; its topic counts in
    // topicTags while that conversation runs.
    let (bot, turn) = crate::conversation::published_bot(&app).await;
    app.admin(DELETE_FLOW, json!({ "id": bot })).await;
    let listed = app.admin(FLOWS, json!({})).await;
    assert!(
        !listed["flows"].to_string().contains(&bot),
        "a deleted flow is listed: {listed:#}"
    );
    let flow_gone = app
        .gql(Some(&app.admin_key), FLOW, json!({ "id": bot }))
        .await;
    assert!(
        flow_gone["data"]["flow"].is_null() || error_code(&flow_gone) == "NOT_FOUND",
        "{flow_gone:#}"
    );
    let restart = app
        .gql(
            Some(&app.widget_key),
            &start_conversation(),
            json!({ "input": { "flowId": bot } }),
        )
        .await;
    assert_eq!(error_code(&restart), "NOT_FOUND", "{restart:#}");
    let topics = |tags: Value| -> Vec<String> {
        tags["topicTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(topics(app.admin(TOPIC_TAGS, json!({})).await).contains(&"orders".to_owned()));
    let conversation = turn["conversation"]["id"].clone();
    let widget_turn = |query: String, input: Value| {
        let app = &app;
        async move {
            let body = app
                .gql(Some(&app.widget_key), &query, json!({ "input": input }))
                .await;
            assert!(body.get("errors").is_none(), "{body:#}");
            body
        }
    };
    widget_turn(
        choose_option(),
        json!({ "conversationId": conversation, "optionId": turn["options"][0]["id"] }),
    )
    .await;
    widget_turn(
        send_visitor_message(),
        json!({ "conversationId": conversation, "text": "ali@example.com" }),
    )
    .await;
    let last = widget_turn(
        send_visitor_message(),
        json!({ "conversationId": conversation, "text": "42" }),
    )
    .await;
    let from_deleted = last["data"]["sendVisitorMessage"]["ticket"]["id"].clone();
    assert!(from_deleted.is_string(), "{last:#}");
    let ticket = app
        .admin(
            "query($id: ID!) { ticket(id: $id) { flowName topic flow { id } } }",
            json!({ "id": from_deleted }),
        )
        .await;
    assert_eq!(
        ticket["ticket"],
        json!({ "flowName": "Destek", "topic": "orders", "flow": null })
    );
    // The conversation has ended: no chatbot can open an `orders` ticket any more.
    assert!(!topics(app.admin(TOPIC_TAGS, json!({})).await).contains(&"orders".to_owned()));
    // Retention removes the flow with its version once no conversation is left on it.
    let rows = |sql: &'static str| {
        let db = app.db.clone();
        async move {
            use sea_orm::ConnectionTrait;
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let versions = "SELECT COUNT(*) FROM flow_versions";
    let before = rows(versions).await;
    domain::retention::apply(&app.db, Duration::from_secs(3600), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        rows(versions).await,
        before - 1,
        "the deleted flow's version"
    );
    assert_eq!(
        rows("SELECT COUNT(*) FROM flows WHERE deleted_at IS NOT NULL").await,
        0
    );
    app.admin(DELETE_FLOW, json!({ "id": flow })).await;
    let kept = app
        .admin(
            "query($id: ID!) { ticket(id: $id) { flowName topic } }",
            json!({ "id": opened["ticket"]["id"] }),
        )
        .await;
    assert_eq!(
        kept["ticket"],
        json!({ "flowName": "Destek", "topic": "billing" })
    );
    app.stop().await;
}
