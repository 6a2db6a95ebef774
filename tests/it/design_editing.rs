//! Editing a flow's design: renaming it, moving a step, copying the flow. Each keeps links
//! between steps, refuses bad input with the field, and finds nothing of another account.

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

    // Deleting a flow (README known limits): its published versions go, and a conversation
    // running on one ends for the visitor; tickets keep their copies.
    let (bot, turn) = crate::conversation::published_bot(&app).await;
    app.admin(DELETE_FLOW, json!({ "id": bot })).await;
    let body = app
        .gql(
            Some(&app.widget_key),
            &choose_option(),
            json!({ "input": { "conversationId": turn["conversation"]["id"],
                "optionId": turn["options"][0]["id"] } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
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
