//! What the public widget key reaches, enumerated from the served schema: every field under
//! every visitor operation is selected, with an account full of internal data (topic tags,
//! rule recipients, forward addresses, agents, an SMTP error, a draft that was never
//! published), and none of it may appear in the answers. And the shape that guarantees it:
//! the types reachable from the visitor operations lead nowhere else.

use std::collections::BTreeSet;
use std::time::Duration;

use async_graphql::parser::types::TypeKind;
use integration_tests::{Engine, Fault, OPS_TOKEN, TestApp, TestSmtp, error_code, on_both_engines};
use serde_json::{Value, json};

use crate::isolation::{Schema, VISITOR_OPERATIONS, needs_arguments, send, type_name};
use crate::ops::*;

on_both_engines!(the_widget_key_reaches_only_what_a_visitor_may_see);
on_both_engines!(operators_read_no_visitor_content);

/// Deep enough for every visitor type: their graph has no cycle, so the selection ends.
const FULL_DEPTH: usize = 10;

/// The object types reachable from `roots` (fields of the root types named), following every
/// field.
fn reachable(schema: &Schema, roots: &[Root]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots
        .iter()
        .filter_map(|(root, field)| {
            let TypeKind::Object(object) = &schema.types[*root] else {
                return None;
            };
            object
                .fields
                .iter()
                .find(|f| f.node.name.node == field.as_str())
                .map(|f| type_name(&f.node.ty.node).to_owned())
        })
        .collect();
    while let Some(name) = todo.pop() {
        let fields = match schema.types.get(&name) {
            Some(TypeKind::Object(o)) => &o.fields,
            Some(TypeKind::Interface(i)) => &i.fields,
            _ => continue,
        };
        if !seen.insert(name) {
            continue;
        }
        todo.extend(fields.iter().map(|f| type_name(&f.node.ty.node).to_owned()));
    }
    seen
}

/// Whether every field of the object type is a scalar or an enum.
fn is_leaf_only(schema: &Schema, name: &str) -> bool {
    let Some(TypeKind::Object(object)) = schema.types.get(name) else {
        return false;
    };
    object.fields.iter().all(|f| {
        !matches!(
            schema.types.get(type_name(&f.node.ty.node)),
            Some(TypeKind::Object(_) | TypeKind::Interface(_) | TypeKind::Union(_))
        )
    })
}

/// A root field: (`Query`, `Mutation` or `Subscription`, its name).
type Root = (&'static str, String);

/// Every root field of the schema, split into the visitor operations and the rest.
fn roots(schema: &Schema) -> (Vec<Root>, Vec<Root>) {
    let mut visitor = Vec::new();
    let mut other = Vec::new();
    for root in ["Query", "Mutation", "Subscription"] {
        let Some(TypeKind::Object(object)) = schema.types.get(root) else {
            continue;
        };
        for field in &object.fields {
            let name = field.node.name.node.to_string();
            if root != "Subscription" && VISITOR_OPERATIONS.contains(&name.as_str()) {
                visitor.push((root, name));
            } else {
                other.push((root, name));
            }
        }
    }
    (visitor, other)
}

async fn the_widget_key_reaches_only_what_a_visitor_may_see(engine: Engine) {
    // The shape: a type the visitor operations reach is theirs alone, unless it holds
    // nothing but scalars (a transcript line, say), so no field of theirs leads into the
    // account's internals, today or after the next field someone adds.
    let schema = Schema::served();
    let (visitor_roots, other_roots) = roots(&schema);
    assert_eq!(
        visitor_roots.len(),
        VISITOR_OPERATIONS.len(),
        "a visitor operation is missing from the schema: {visitor_roots:?}"
    );
    let theirs = reachable(&schema, &visitor_roots);
    let internal = reachable(&schema, &other_roots);
    assert!(theirs.len() >= 4, "visitor types: {theirs:?}");
    for shared in theirs.intersection(&internal) {
        assert!(
            is_leaf_only(&schema, shared),
            "`{shared}` is reachable from the visitor operations and from the admin or \
             operator ones, and it leads to other objects: give the visitor their own type"
        );
    }

    // The data: an account holding one of every internal thing, with distinctive text.
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let secrets = [
        "Q7 internal flow name",
        "q7_secret_topic",
        "fwd-q7@example.com",
        "rule-q7@example.com",
        "fail-q7@example.com",
        "agent-q7@example.com",
        "Q7 draft text never published",
        "Q7 another visitor's message",
        "other-visitor-q7@example.net",
    ];
    let flow = app.admin(CREATE_FLOW, json!({ "name": secrets[0] })).await["createFlow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = |step: Value| crate::conversation::add(&app, &flow, step);
    let greeting = add(json!({ "message": { "text": "Merhaba" } })).await;
    let menu =
        add(json!({ "choice": { "text": "Ne yapalım?", "options": [{ "label": "x" }] } })).await;
    let question = add(json!({ "question": { "text": "E-posta?", "field": "email" } })).await;
    let ticket_step = add(
        json!({ "ticket": { "topic": secrets[1], "confirmationMessage": "Talep alındı",
        "forwardEmails": [secrets[2]] } }),
    )
    .await;
    app.admin(
        UPDATE_STEP,
        json!({ "id": menu, "step": { "choice": { "text": "Ne yapalım?", "options": [
            { "label": "Talep", "next": ticket_step }, { "label": "Soru", "next": question }] } } }),
    )
    .await;
    app.admin(PUBLISH_FLOW, json!({ "id": flow })).await;
    // A draft edit after publishing: visitors keep seeing the published version.
    app.admin(
        UPDATE_STEP,
        json!({ "id": greeting, "step": { "message": { "text": secrets[6] } } }),
    )
    .await;
    for (tag, email) in [(secrets[1], secrets[3]), ("*", secrets[4])] {
        app.admin(CREATE_RULE, json!({ "tag": tag, "emails": [email] }))
            .await;
    }
    smtp.fail_rcpt(secrets[4], Fault::Permanent, 1000);
    app.admin(
        CREATE_AGENT,
        json!({ "name": "Q7 agent", "email": secrets[5] }),
    )
    .await;
    let other = app
        .gql(
            Some(&app.widget_key),
            OPEN_TICKET,
            json!({ "input": { "stepId": ticket_step, "message": secrets[7],
                "visitor": { "email": secrets[8] } } }),
        )
        .await;
    assert!(other.get("errors").is_none(), "{other:#}");

    // Every visitor operation, selecting everything its type offers, with the widget key.
    let widget = |field: &'static str, params: &'static str, variables: Value| {
        let app = &app;
        let schema = &schema;
        async move {
            let Some(TypeKind::Object(root)) = schema.types.get(if field == "conversation" {
                "Query"
            } else {
                "Mutation"
            }) else {
                unreachable!()
            };
            let returns = root
                .fields
                .iter()
                .find(|f| f.node.name.node == field)
                .map(|f| type_name(&f.node.ty.node).to_owned())
                .unwrap();
            let keyword = if field == "conversation" {
                "query"
            } else {
                "mutation"
            };
            let selection = schema.selection(&returns, FULL_DEPTH);
            let query = format!(
                "{keyword}{params} {{ {field}({}) {selection} }}",
                args_of(params)
            );
            let body = app.gql(Some(&app.widget_key), &query, variables).await;
            assert!(body.get("errors").is_none(), "{query}: {body:#}");
            (field, body)
        }
    };
    let mut answers = Vec::new();
    let start = widget(
        "startConversation",
        "($input: StartConversationInput!)",
        json!({ "input": { "flowId": flow } }),
    )
    .await;
    let turn = &start.1["data"]["startConversation"];
    let conversation = turn["conversation"]["id"].clone();
    let option = |label: &str| {
        turn["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["label"] == label)
            .unwrap()["id"]
            .clone()
    };
    let (ask, open) = (option("Soru"), option("Talep"));
    answers.push(start.clone());
    answers.push(
        widget(
            "chooseOption",
            "($input: ChooseOptionInput!)",
            json!({ "input": { "conversationId": conversation, "optionId": ask } }),
        )
        .await,
    );
    let reached = widget(
        "sendVisitorMessage",
        "($input: VisitorMessageInput!)",
        json!({ "input": { "conversationId": conversation, "text": "me@example.org" } }),
    )
    .await;
    assert!(
        reached.1["data"]["sendVisitorMessage"]["ticket"]["number"].is_number(),
        "the conversation opened its ticket: {:#}",
        reached.1
    );
    answers.push(reached);
    // The other path of the menu, from a second conversation.
    let second = widget(
        "startConversation",
        "($input: StartConversationInput!)",
        json!({ "input": { "flowId": flow } }),
    )
    .await;
    let second_id = second.1["data"]["startConversation"]["conversation"]["id"].clone();
    answers.push(
        widget(
            "chooseOption",
            "($input: ChooseOptionInput!)",
            json!({ "input": { "conversationId": second_id, "optionId": open } }),
        )
        .await,
    );
    answers.push(
        widget(
            "openTicket",
            "($input: OpenTicketInput!)",
            json!({ "input": { "stepId": ticket_step, "message": "Siparişim gelmedi",
                "visitor": { "email": "me@example.org" } } }),
        )
        .await,
    );

    // Wait until every ticket is routed, one delivery has failed with the server's error,
    // and the rest were sent: then read the conversation again, as late as a visitor could.
    let data = app
        .wait_for(
            Duration::from_secs(20),
            "{ tickets { edges { node { deliveries { status lastError } } } } }",
            json!({}),
            |d| {
                let edges = d["tickets"]["edges"].as_array().unwrap();
                edges.len() == 4
                    && edges.iter().all(|e| {
                        let ds = e["node"]["deliveries"].as_array().unwrap();
                        !ds.is_empty()
                            && ds.iter().all(|x| {
                                ["SENT", "FAILED"].contains(&x["status"].as_str().unwrap())
                            })
                    })
            },
        )
        .await;
    let errors: BTreeSet<String> = data["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["node"]["deliveries"].as_array().unwrap().clone())
        .filter_map(|d| d["lastError"].as_str().map(str::to_owned))
        .collect();
    assert!(!errors.is_empty(), "no SMTP error was recorded");
    for id in [&conversation, &second_id] {
        answers.push(widget("conversation", "($id: ID!)", json!({ "id": id })).await);
    }

    let called: BTreeSet<&str> = answers.iter().map(|(field, _)| *field).collect();
    assert_eq!(
        called,
        VISITOR_OPERATIONS.into_iter().collect(),
        "every visitor operation is called"
    );
    for (field, body) in &answers {
        let text = body.to_string();
        for secret in secrets
            .iter()
            .map(|s| s.to_string())
            .chain(errors.iter().cloned())
        {
            assert!(
                !text.contains(secret.as_str()),
                "{field} shows `{secret}` to the widget key: {body:#}"
            );
        }
    }
    // And they did show what a visitor needs.
    let last = answers.last().unwrap().1["data"]["conversation"].clone();
    assert_eq!(last["ticket"]["number"].as_i64().map(|n| n > 0), Some(true));
    assert!(
        last["transcript"].to_string().contains("Talep alındı"),
        "{last:#}"
    );
    assert!(start.1.to_string().contains("Merhaba"));

    // The widget key cannot take the admin's way round to the same data.
    let body = app
        .gql(
            Some(&app.widget_key),
            "query($id: ID!) { ticket(id: $id) { topic } }",
            json!({ "id": last["ticket"]["id"] }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    app.stop().await;
}

/// `($a: A!, $b: B)` -> `a: $a, b: $b`.
fn args_of(params: &str) -> String {
    params
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter_map(|p| p.split(':').next())
        .map(|v| {
            let v = v.trim();
            format!("{}: {v}", v.trim_start_matches('$'))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The operator token reads the machinery of every account (queue counts, deliveries with
/// their errors, workers) and no visitor's message, contact data or transcript: every field
/// it can select is enumerated from the schema and called.
async fn operators_read_no_visitor_content(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, step_id) = {
        let flow =
            app.admin(CREATE_FLOW, json!({ "name": "Destek" })).await["createFlow"]["id"].clone();
        let step = app
            .admin(
                ADD_STEP,
                json!({ "flowId": flow, "step": { "ticket": { "topic": "orders", "confirmationMessage": "ok" } } }),
            )
            .await["addStep"]["id"]
            .clone();
        (flow, step)
    };
    let _ = flow_id;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;
    let private = [
        "Q8 my order never came",
        "Q8 Visitor Name",
        "q8-visitor@example.net",
        "+90 555 000 88 88",
    ];
    let opened = app
        .gql(
            Some(&app.widget_key),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": private[0],
                "visitor": { "name": private[1], "email": private[2], "phone": private[3] } } }),
        )
        .await;
    assert!(opened.get("errors").is_none(), "{opened:#}");
    app.wait_for(
        Duration::from_secs(15),
        "{ queueStats { deliveries { sent } } }",
        json!({}),
        |d| d["queueStats"]["deliveries"]["sent"] == 1,
    )
    .await;

    let schema = Schema::served();
    let Some(TypeKind::Object(query)) = schema.types.get("Query") else {
        unreachable!()
    };
    let client = reqwest::Client::new();
    let mut answered = 0;
    for field in query.fields.iter().map(|f| &f.node) {
        if needs_arguments(field) {
            continue;
        }
        // As deep as the cost budget allows.
        let queries: Vec<String> = (1..=FULL_DEPTH)
            .rev()
            .map(|depth| {
                let selection = schema.selection(type_name(&field.ty.node), depth);
                format!("{{ {} {selection} }}", field.name.node)
            })
            .collect();
        let body = send(&client, &app.url, OPS_TOKEN, &queries, &json!({})).await;
        if body.get("errors").is_none() {
            answered += 1;
        }
        let text = body.to_string();
        for secret in private {
            assert!(
                !text.contains(secret),
                "{} shows the visitor's `{secret}` to the operator token: {body:#}",
                field.name.node
            );
        }
    }
    assert!(
        answered >= 3,
        "the operator token read too little: {answered} fields"
    );
    app.stop().await;
}
