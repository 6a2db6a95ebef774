//! Tickets people work: close with a note, reopen, assign and unassign; each change once,
//! as one timeline line naming who made it, a `ticketUpdated` event and a `ticket.updated`
//! webhook; lists filtered by status and assignee; two people making the same change at once
//! make it once.

use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, error_code, error_field, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(tickets_are_worked_closed_and_reopened);

const CLOSE: &str = "mutation($id: ID!, $note: String) {
  closeTicket(id: $id, note: $note) { changed ticket { id status closingNote closedAt } }
}";
const REOPEN: &str = "mutation($id: ID!) {
  reopenTicket(id: $id) { changed ticket { id status closingNote closedAt } }
}";
const ASSIGN: &str = "mutation($id: ID!, $agentId: ID) {
  assignTicket(id: $id, agentId: $agentId) { changed ticket { id assignee { id name } } }
}";
const WORKED: &str = "query($id: ID!) {
  ticket(id: $id) { status closingNote assignee { name } timeline { kind message actor } }
}";
const LIST: &str = "query($status: TicketStatus, $assigneeId: ID, $first: Int, $after: String) {
  tickets(status: $status, assigneeId: $assigneeId, first: $first, after: $after) {
    edges { node { number status } } pageInfo { endCursor hasNextPage }
  }
}";

/// The numbers of a `tickets` page.
fn numbers(page: &Value) -> Vec<i64> {
    page["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["number"].as_i64().unwrap())
        .collect()
}

/// The timeline lines made by people: (kind, actor).
fn changes(ticket: &Value) -> Vec<(String, String)> {
    ticket["ticket"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["actor"].is_null())
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn tickets_are_worked_closed_and_reopened(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (hook_url, received) = crate::webhooks::receiver("none").await;
    let hook = app
        .admin(
            crate::webhooks::CREATE_WEBHOOK,
            json!({ "url": hook_url, "events": ["TICKET_UPDATED"] }),
        )
        .await["createWebhook"]["webhook"]["id"]
        .clone();
    let mut socket = crate::live::open(&app.url, &app.admin_key).await;
    crate::live::send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { ticketUpdated { number status assignee { name } } }" } }),
    )
    .await;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let opened = open_ticket(&app, &app.widget_key, &step, &format!("ticket {i}")).await;
        ids.push(opened["ticket"]["id"].as_str().unwrap().to_owned());
    }
    let ada = app
        .admin(
            CREATE_AGENT,
            json!({ "name": "Ada", "email": "ada@example.com" }),
        )
        .await["createAgent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = app.admin("{ apiKeys { kind prefix } }", json!({})).await["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "ADMIN")
        .unwrap()["prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    let actor = format!("admin key {prefix}");

    // Assigning: once; the same agent again changes nothing.
    let assigned = app
        .admin(ASSIGN, json!({ "id": ids[0], "agentId": ada }))
        .await;
    assert_eq!(assigned["assignTicket"]["changed"], true);
    assert_eq!(
        assigned["assignTicket"]["ticket"]["assignee"]["name"],
        "Ada"
    );
    let again = app
        .admin(ASSIGN, json!({ "id": ids[0], "agentId": ada }))
        .await;
    assert_eq!(again["assignTicket"]["changed"], false);
    // The subscriber hears of the change (once).
    let event = crate::live::next(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        event["payload"]["data"]["ticketUpdated"],
        json!({ "number": 1, "status": "OPEN", "assignee": { "name": "Ada" } }),
        "{event:#}"
    );

    // Closing with a note; two people closing the same ticket at once: one change.
    let closed = app
        .admin(
            CLOSE,
            json!({ "id": ids[0], "note": "  Refund sent.\nThanks!  " }),
        )
        .await;
    assert_eq!(closed["closeTicket"]["changed"], true);
    assert_eq!(closed["closeTicket"]["ticket"]["status"], "CLOSED");
    assert_eq!(
        closed["closeTicket"]["ticket"]["closingNote"],
        "Refund sent.\nThanks!"
    );
    assert!(closed["closeTicket"]["ticket"]["closedAt"].is_string());
    let (one, two) = tokio::join!(
        app.gql(Some(&app.admin_key), CLOSE, json!({ "id": ids[1] })),
        app.gql(Some(&app.admin_key), CLOSE, json!({ "id": ids[1] })),
    );
    let changed: Vec<bool> = [&one, &two]
        .iter()
        .map(|b| {
            assert!(b.get("errors").is_none(), "{b:#}");
            b["data"]["closeTicket"]["changed"].as_bool().unwrap()
        })
        .collect();
    assert_eq!(
        changed.iter().filter(|c| **c).count(),
        1,
        "exactly one of two concurrent closes changes the ticket: {one:#} {two:#}"
    );
    let worked = app.admin(WORKED, json!({ "id": ids[1] })).await;
    assert_eq!(changes(&worked), [("CLOSED".to_owned(), actor.clone())]);

    // Lists by status and assignee, newest first; a cursor taken before a change still pages.
    let open_page = app
        .admin(LIST, json!({ "status": "OPEN", "first": 2 }))
        .await;
    assert_eq!(numbers(&open_page), [5, 4]);
    let cursor = open_page["tickets"]["pageInfo"]["endCursor"].clone();
    app.admin(CLOSE, json!({ "id": ids[2] })).await;
    let rest = app
        .admin(
            LIST,
            json!({ "status": "OPEN", "first": 2, "after": cursor }),
        )
        .await;
    assert_eq!(
        numbers(&rest),
        Vec::<i64>::new(),
        "#3 closed, #1 and #2 closed before"
    );
    let closed_page = app.admin(LIST, json!({ "status": "CLOSED" })).await;
    assert_eq!(numbers(&closed_page), [3, 2, 1]);
    let adas = app
        .admin(LIST, json!({ "status": "CLOSED", "assigneeId": ada }))
        .await;
    assert_eq!(numbers(&adas), [1]);

    // Reopening puts it back; the note goes from the ticket, the timeline keeps every line.
    let reopened = app.admin(REOPEN, json!({ "id": ids[0] })).await;
    assert_eq!(reopened["reopenTicket"]["changed"], true);
    assert_eq!(
        reopened["reopenTicket"]["ticket"],
        json!({ "id": ids[0], "status": "OPEN", "closingNote": null, "closedAt": null })
    );
    let again = app.admin(REOPEN, json!({ "id": ids[0] })).await;
    assert_eq!(again["reopenTicket"]["changed"], false);
    let unassigned = app.admin(ASSIGN, json!({ "id": ids[0] })).await;
    assert_eq!(
        unassigned["assignTicket"]["ticket"]["assignee"],
        Value::Null
    );
    app.admin(ASSIGN, json!({ "id": ids[0], "agentId": ada }))
        .await;
    // A deleted agent leaves the tickets they had; their name stays in the timeline.
    app.admin(
        "mutation($id: ID!) { deleteAgent(id: $id) }",
        json!({ "id": ada }),
    )
    .await;
    let worked = app.admin(WORKED, json!({ "id": ids[0] })).await;
    assert_eq!(worked["ticket"]["assignee"], Value::Null);
    let kinds: Vec<String> = changes(&worked).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        ["ASSIGNED", "CLOSED", "REOPENED", "UNASSIGNED", "ASSIGNED"]
    );
    let lines: Vec<&str> = worked["ticket"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        lines.contains(&format!("Closed by {actor}: Refund sent.\nThanks!").as_str()),
        "{lines:#?}"
    );
    assert!(lines.contains(&format!("Assigned to Ada by {actor}").as_str()));

    // Errors name the field or say not found; nothing changes.
    let long = "x".repeat(2_001);
    let body = app
        .gql(
            Some(&app.admin_key),
            CLOSE,
            json!({ "id": ids[3], "note": long }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(error_field(&body), "note");
    let (other_admin, _) = app.other_account().await;
    let theirs = app
        .admin_as(
            &other_admin,
            CREATE_AGENT,
            json!({ "name": "Eve", "email": "eve@example.com" }),
        )
        .await["createAgent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, query, variables) in [
        (
            &app.admin_key,
            ASSIGN,
            json!({ "id": ids[3], "agentId": theirs }),
        ),
        (
            &app.admin_key,
            ASSIGN,
            json!({ "id": ids[3], "agentId": ada }),
        ),
        (&app.admin_key, LIST, json!({ "assigneeId": theirs })),
        (&other_admin, CLOSE, json!({ "id": ids[3] })),
        (&other_admin, REOPEN, json!({ "id": ids[0] })),
    ] {
        let body = app.gql(Some(key), query, variables.clone()).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{variables}: {body:#}");
    }
    let untouched = app.admin(WORKED, json!({ "id": ids[3] })).await;
    assert_eq!(untouched["ticket"]["status"], "OPEN");
    assert_eq!(changes(&untouched), Vec::<(String, String)>::new());

    // Integrations got one `ticket.updated` per change: the assign and the closes of #1, #2
    // and #3, then the reopen, unassign and assign of #1: 7.
    let expected = 7;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = received.lock().unwrap().len();
        if got >= expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {expected} ticket.updated requests"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(bodies.len(), expected, "no change announced twice");
    let closing = bodies
        .iter()
        .find(|b| b["data"]["change"]["note"] == "Refund sent.\nThanks!")
        .expect("the close with its note");
    assert_eq!(closing["type"], "ticket.updated");
    assert_eq!(closing["data"]["change"]["kind"], "CLOSED");
    assert_eq!(closing["data"]["change"]["actor"], actor.as_str());
    assert_eq!(closing["data"]["ticket"]["number"], 1);

    // Erasing the visitor's data redacts the stored `ticket.updated` payloads too.
    let stored = "query($id: ID!) { webhook(id: $id) { deliveries(first: 20) { edges { node { payload } } } } }";
    let before = app.admin(stored, json!({ "id": hook })).await;
    assert!(before.to_string().contains("ayse.visitor@example.net"));
    app.admin(
        crate::erasure::ERASE,
        json!({ "input": { "email": "ayse.visitor@example.net" } }),
    )
    .await;
    let after = app.admin(stored, json!({ "id": hook })).await;
    assert!(
        !after.to_string().contains("ayse.visitor@example.net"),
        "{after:#}"
    );
    app.stop().await;
}
