//! The product's core, end to end: the seed's scenario from flow design to mailboxes.

use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;

on_both_engines!(
    seed_scenario_reaches_exactly_the_routed_mailboxes,
    tickets_page_newest_first_and_filter_by_topic,
    tags_show_their_first_spelling_with_or_without_steps
);

/// Creates a flow with a greeting and a ticket step; returns (flow id, ticket step id).
pub async fn flow_with_ticket_step(
    app: &TestApp,
    name: &str,
    topic: &str,
    forward: &[&str],
) -> (String, String) {
    let flow = app.admin(CREATE_FLOW, json!({ "name": name })).await;
    let flow_id = flow["createFlow"]["id"].as_str().unwrap().to_owned();
    app.admin(ADD_STEP, json!({ "flowId": flow_id, "step": { "message": { "text": "Merhaba! Size nasıl yardımcı olabiliriz?" } } }))
        .await;
    let step = app
        .admin(
            ADD_STEP,
            json!({ "flowId": flow_id, "step": { "ticket": {
                "topic": topic, "confirmationMessage": "Talep alındı", "forwardEmails": forward } } }),
        )
        .await;
    (flow_id, step["addStep"]["id"].as_str().unwrap().to_owned())
}

/// A ticket step (forwarding to `forward`) and a `*` rule to all@example.com: every ticket
/// opened there is mailed to all@example.com and each forward address. Returns the step id.
pub async fn step_routed_to_all(app: &TestApp, forward: &[&str]) -> String {
    let (_, step) = flow_with_ticket_step(app, "Destek", "offline_message", forward).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["all@example.com"] }),
    )
    .await;
    step
}

/// The set-up of the worker-process tests: an app on PostgreSQL with no embedded worker, a
/// ticket step, a `*` rule to all@example.com, and `count` tickets waiting in the queue.
/// `None` where PostgreSQL is not available (see the harness).
pub async fn queued_tickets_on_postgres(smtp: &TestSmtp, count: usize) -> Option<TestApp> {
    let app = TestApp::spawn_with(Engine::Postgres, smtp, |c| c.embedded_worker = false).await?;
    let step = step_routed_to_all(&app, &[]).await;
    open_tickets_directly(&app, &step, count).await;
    Some(app)
}

/// Opens `count` tickets at a ticket step through the domain (as `openTicket` does, without
/// HTTP), ten at a time: the bulk set-up of the fault tests.
pub async fn open_tickets_directly(app: &TestApp, step_id: &str, count: usize) {
    let account: uuid::Uuid = app.account_id.parse().unwrap();
    let step: uuid::Uuid = step_id.parse().unwrap();
    let mut opening = tokio::task::JoinSet::new();
    for batch in 0..10 {
        let db = app.db.clone();
        let share = count / 10 + usize::from(batch < count % 10);
        opening.spawn(async move {
            for i in 0..share {
                let input = domain::tickets::OpenTicket {
                    step_id: step,
                    message: format!("ticket {batch}-{i}"),
                    visitor: domain::tickets::VisitorInput::default(),
                };
                domain::tickets::open_ticket(&db, account, &input)
                    .await
                    .unwrap();
            }
        });
    }
    opening.join_all().await;
}

pub async fn open_ticket(app: &TestApp, key: &str, step_id: &str, message: &str) -> Value {
    let body = app
        .gql(
            Some(key),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": message,
                "visitor": { "name": "Ayşe Yılmaz", "email": "ayse.visitor@example.net", "phone": "+90 212 555 01 02" } } }),
        )
        .await;
    assert!(body.get("errors").is_none(), "openTicket failed: {body:#}");
    body["data"]["openTicket"].clone()
}

fn recipients_by_status(ticket: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ticket["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["recipient"].as_str().unwrap().to_lowercase(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn seed_scenario_reaches_exactly_the_routed_mailboxes(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };

    // Design: two chatbots with ticket steps, as in the seed.
    let (_, foo_step) = flow_with_ticket_step(
        &app,
        "Destek",
        "TICKET_TOPIC_FOO_BAR",
        &["forward@example.com"],
    )
    .await;
    let (_, offline_step) = flow_with_ticket_step(&app, "Mesai dışı", "offline_message", &[]).await;

    let tags = app.admin(TOPIC_TAGS, json!({})).await;
    let names: Vec<&str> = tags["topicTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["offline_message", "TICKET_TOPIC_FOO_BAR"]);
    assert_eq!(tags["topicTags"][1]["steps"][0]["flow"]["name"], "Destek");

    // Routing: an agent, a typed address, `*`, and a tag no flow defines.
    app.admin(
        CREATE_AGENT,
        json!({ "name": "Ayşe", "email": "agent.ayse@example.com" }),
    )
    .await;
    let foo_rule = app
        .admin(CREATE_RULE, json!({ "tag": "TICKET_TOPIC_FOO_BAR", "emails": ["agent.ayse@example.com", "team@example.com"] }))
        .await;
    assert_eq!(foo_rule["createRoutingRule"]["tagKnown"], true);
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["boss@example.com", "AGENT.AYSE@example.com"] }),
    )
    .await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "offline_message", "emails": ["night@example.com"] }),
    )
    .await;
    let ghost = app
        .admin(
            CREATE_RULE,
            json!({ "tag": "no_such_topic", "emails": ["ghost@example.com"] }),
        )
        .await;
    assert_eq!(
        ghost["createRoutingRule"]["tagKnown"], false,
        "a tag no flow defines is flagged"
    );

    // The chatbot (widget key) opens a ticket.
    let opened = open_ticket(
        &app,
        &app.widget_key,
        &foo_step,
        "Siparişim gelmedi <b>acil</b>",
    )
    .await;
    assert_eq!(opened["confirmationMessage"], "Talep alındı");
    assert_eq!(opened["ticket"]["number"], 1);
    let ticket_id = opened["ticket"]["id"].as_str().unwrap().to_owned();
    // The widget learns the number only; the admin key reads what was opened.
    let content = app.admin(TICKET_CONTENT, json!({ "id": ticket_id })).await["ticket"].clone();
    assert_eq!(content["topic"], "TICKET_TOPIC_FOO_BAR");
    assert_eq!(content["status"], "OPEN");
    assert_eq!(content["flow"]["name"], "Destek");
    assert_eq!(content["visitor"]["email"], "ayse.visitor@example.net");

    let expected = [
        "agent.ayse@example.com",
        "boss@example.com",
        "forward@example.com",
        "team@example.com",
    ];
    assert!(
        smtp.wait_until(Duration::from_secs(15), |m| m.len() >= expected.len())
            .await,
        "mail did not arrive: {:?}",
        smtp.received()
    );
    let data = app
        .wait_for(
            Duration::from_secs(10),
            TICKET,
            json!({ "id": ticket_id }),
            |d| {
                d["ticket"]["deliveries"]
                    .as_array()
                    .is_some_and(|ds| ds.len() == 4 && ds.iter().all(|x| x["status"] == "SENT"))
            },
        )
        .await;
    let got = recipients_by_status(&data["ticket"]);
    assert_eq!(
        got,
        expected
            .iter()
            .map(|r| (r.to_string(), "SENT".to_owned()))
            .collect::<Vec<_>>()
    );

    // Exactly one mail per mailbox, none to the unmatched rules.
    for rcpt in expected {
        assert_eq!(
            smtp.received_by(rcpt).len(),
            1,
            "{rcpt} should get exactly one mail"
        );
    }
    assert!(smtp.received_by("night@example.com").is_empty());
    assert!(smtp.received_by("ghost@example.com").is_empty());

    // Each delivery says what put its recipient there.
    let ayse = data["ticket"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["recipient"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("agent.ayse@example.com")
        })
        .unwrap()
        .clone();
    let kinds: Vec<&str> = ayse["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["RULE", "WILDCARD_RULE"]);
    assert_eq!(ayse["attempts"], 1);
    assert!(ayse["sentAt"].is_string());
    assert!(ayse["lastError"].is_null());

    // The mail itself.
    let mail = &smtp.received_by("team@example.com")[0].data;
    assert!(
        mail.contains("Subject: [Ticket #1] TICKET_TOPIC_FOO_BAR"),
        "{mail}"
    );
    assert!(
        mail.contains("Reply-To:") && mail.contains("ayse.visitor@example.net"),
        "{mail}"
    );
    assert!(mail.contains("Message-ID: <ticket-"), "{mail}");
    // Written by a program (RFC 3834): auto-responders leave it alone.
    assert!(
        mail.contains("\r\nAuto-Submitted: auto-generated\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
    // Visitor text is escaped in the HTML part (undo quoted-printable soft breaks first).
    let html = mail.replace("=\r\n", "").replace("=3D", "=");
    let html = html
        .split("Content-Type: text/html")
        .nth(1)
        .expect("an HTML part");
    assert!(
        html.contains("&lt;b&gt;acil&lt;/b&gt;") && !html.contains("<b>acil</b>"),
        "{html}"
    );

    // The offline topic reaches its own rule and the `*` rule's two addresses, nobody else.
    let offline = open_ticket(
        &app,
        &app.widget_key,
        &offline_step,
        "Mesai dışında yazıyorum",
    )
    .await;
    assert_eq!(offline["ticket"]["number"], 2);
    assert!(
        smtp.wait_until(Duration::from_secs(15), |m| m.len() >= 7)
            .await,
        "{:?}",
        smtp.received()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received_by("night@example.com").len(), 1);
    assert_eq!(smtp.received_by("boss@example.com").len(), 2);
    assert_eq!(smtp.received_by("agent.ayse@example.com").len(), 2);
    assert_eq!(smtp.received_by("team@example.com").len(), 1);
    assert_eq!(smtp.received_by("forward@example.com").len(), 1);
    assert_eq!(smtp.received().len(), 7, "no mail beyond the routed ones");

    app.stop().await;
}

async fn tickets_page_newest_first_and_filter_by_topic(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, a) = flow_with_ticket_step(&app, "A", "billing", &[]).await;
    let (_, b) = flow_with_ticket_step(&app, "B", "Offline_Message", &[]).await;
    for (i, step) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        open_ticket(&app, &app.admin_key, step, &format!("message {i}")).await;
    }
    let page1 = app.admin(TICKETS, json!({ "first": 2 })).await;
    let numbers = |d: &Value| -> Vec<i64> {
        d["tickets"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["number"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&page1), [5, 4]);
    assert_eq!(page1["tickets"]["pageInfo"]["hasNextPage"], true);
    let after = page1["tickets"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .admin(TICKETS, json!({ "first": 2, "after": after }))
        .await;
    assert_eq!(numbers(&page2), [3, 2]);
    let page3 = app
        .admin(
            TICKETS,
            json!({ "first": 2, "after": page2["tickets"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(numbers(&page3), [1]);
    assert_eq!(page3["tickets"]["pageInfo"]["hasNextPage"], false);

    // Topic matching ignores case.
    let offline = app
        .admin(TICKETS, json!({ "topic": "offline_message" }))
        .await;
    assert_eq!(numbers(&offline), [4, 2]);
    app.stop().await;
}

/// The routing form's cheap query (`topicTags { tag }`, no steps) and the full one agree: one
/// entry per tag ignoring case, in the spelling of the first step that used it.
async fn tags_show_their_first_spelling_with_or_without_steps(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    for (flow, topic) in [
        ("A", "offline_message"),
        ("B", "Offline_Message"),
        ("C", "ZED"),
        ("D", "alpha"),
        ("E", "zed"),
    ] {
        flow_with_ticket_step(&app, flow, topic, &[]).await;
    }
    let tags = |body: &Value| -> Vec<String> {
        body["topicTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].as_str().unwrap().to_owned())
            .collect()
    };
    let bare = app.admin("{ topicTags { tag } }", json!({})).await;
    let full = app.admin(TOPIC_TAGS, json!({})).await;
    assert_eq!(tags(&bare), ["alpha", "offline_message", "ZED"]);
    assert_eq!(tags(&bare), tags(&full));
    assert_eq!(full["topicTags"][1]["steps"].as_array().unwrap().len(), 2);

    for (tag, known) in [("OFFLINE_MESSAGE", true), ("Zed", true), ("nope", false)] {
        let rule = app
            .admin(
                CREATE_RULE,
                json!({ "tag": tag, "emails": ["a@example.com"] }),
            )
            .await;
        assert_eq!(rule["createRoutingRule"]["tagKnown"], known, "{tag}");
    }
    app.stop().await;
}
