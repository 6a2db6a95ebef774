//! The routing preview: who a new ticket with a topic would be mailed to, and why, from the
//! same resolution the worker runs; only the account's admin key reads it.

use std::collections::BTreeSet;
use std::time::Duration;

use integration_tests::{Engine, TestApp, TestSmtp, error_code, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(the_preview_names_whom_the_worker_mails_and_why);

const PREVIEW: &str = "query($topic: String) {
  routingPreview(topic: $topic) {
    topic tagKnown
    recipients { address stepIds sources { kind ruleId tag } }
  }
}";

/// (address lower-cased, its source kinds sorted) of a preview or a ticket's deliveries.
fn reasons(list: &Value, address: &str) -> BTreeSet<(String, Vec<String>)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut kinds: Vec<String> = r["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["kind"].as_str().unwrap().to_owned())
                .collect();
            kinds.sort();
            (r[address].as_str().unwrap().to_lowercase(), kinds)
        })
        .collect()
}

async fn the_preview_names_whom_the_worker_mails_and_why(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (first_flow, first) = flow_with_ticket_step(
        &app,
        "Destek",
        "Billing",
        &["fwd-one@example.com", "Shared@example.com"],
    )
    .await;
    let (_, second) =
        flow_with_ticket_step(&app, "Sales", "billing", &["shared@example.com"]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "billing", "emails": ["team@example.com", "shared@example.com"] }),
    )
    .await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["all@example.com", "TEAM@example.com"] }),
    )
    .await;

    let preview = app.admin(PREVIEW, json!({ "topic": " BILLING " })).await;
    let preview = &preview["routingPreview"];
    assert_eq!(preview["topic"], "BILLING", "{preview:#}");
    assert_eq!(preview["tagKnown"], true);
    let by_address = |address: &str| {
        preview["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"].as_str().unwrap().eq_ignore_ascii_case(address))
            .unwrap_or_else(|| panic!("{address} missing: {preview:#}"))
            .clone()
    };
    // Each address once, ignoring case, in the worker's order, with every reason.
    let addresses: Vec<&str> = preview["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        [
            "team@example.com",
            "shared@example.com",
            "all@example.com",
            "fwd-one@example.com"
        ]
    );
    assert_eq!(
        by_address("shared@example.com")["stepIds"],
        json!([first, second])
    );
    assert_eq!(by_address("fwd-one@example.com")["stepIds"], json!([first]));
    assert_eq!(by_address("team@example.com")["stepIds"], json!([]));

    // The worker agrees: a ticket opened at the second step is mailed to exactly the
    // addresses the preview gives for it (the rules', and that step's forward addresses, so
    // not the first step's fwd-one), each for the same reasons.
    let opened = open_ticket(&app, &app.widget_key, &second, "hi").await;
    let id = opened["ticket"]["id"].as_str().unwrap().to_owned();
    let ticket = app
        .wait_for(Duration::from_secs(20), TICKET, json!({ "id": id }), |d| {
            d["ticket"]["deliveries"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
        })
        .await;
    let expected: BTreeSet<(String, Vec<String>)> = reasons(&preview["recipients"], "address")
        .into_iter()
        .filter(|(address, _)| {
            let r = by_address(address);
            r["sources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] != "FORWARD")
                || r["stepIds"].as_array().unwrap().contains(&json!(second))
        })
        .collect();
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(
        reasons(&ticket["ticket"]["deliveries"], "recipient"),
        expected
    );

    // No topic, or one no step uses: only `*` rules, and the flag.
    for topic in [Value::Null, json!("refunds")] {
        let preview = app.admin(PREVIEW, json!({ "topic": topic })).await;
        let preview = &preview["routingPreview"];
        assert_eq!(preview["tagKnown"], false, "{preview:#}");
        let kinds = reasons(&preview["recipients"], "address");
        assert_eq!(
            kinds,
            BTreeSet::from([
                (
                    "team@example.com".to_owned(),
                    vec!["WILDCARD_RULE".to_owned()]
                ),
                (
                    "all@example.com".to_owned(),
                    vec!["WILDCARD_RULE".to_owned()]
                ),
            ]),
            "{preview:#}"
        );
    }

    // A chatbot conversation uses the published version: after the first flow is published
    // and its draft's forward addresses change, both count until it is published again.
    let published = app
        .gql(
            Some(&app.admin_key),
            PUBLISH_FLOW,
            json!({ "id": first_flow }),
        )
        .await;
    assert!(published.get("errors").is_none(), "{published:#}");
    app.admin(
        UPDATE_STEP,
        json!({ "id": first, "step": { "ticket": { "topic": "Billing",
            "confirmationMessage": "Talep alındı", "forwardEmails": ["later@example.com"] } } }),
    )
    .await;
    let both = app.admin(PREVIEW, json!({ "topic": "billing" })).await;
    let forwarded: Vec<(String, Value)> = both["routingPreview"]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["stepIds"].clone(),
            )
        })
        .collect();
    for (address, steps) in [
        ("fwd-one@example.com", json!([first])),
        ("later@example.com", json!([first])),
        ("shared@example.com", json!([second, first])),
    ] {
        assert!(
            forwarded.contains(&(address.to_owned(), steps.clone())),
            "{address} {steps}: {both:#}"
        );
    }

    // Another account sees its own routing only; the public key none at all.
    let (other_admin, _) = app.other_account().await;
    let theirs = app
        .admin_as(&other_admin, PREVIEW, json!({ "topic": "billing" }))
        .await;
    assert_eq!(
        theirs["routingPreview"],
        json!({ "topic": "billing", "tagKnown": false, "recipients": [] })
    );
    let body = app
        .gql(
            Some(&app.widget_key),
            PREVIEW,
            json!({ "topic": "billing" }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    app.stop().await;
}
