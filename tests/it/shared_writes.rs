//! A worker's routing jobs share their writes ("group commit", `worker::batch`): tickets of
//! different accounts planned in one statement each get exactly their own account's
//! recipients, a ticket named twice is claimed once, and a drained queue took fewer
//! statements than jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use domain::deliveries::Planned;
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{
    flow_with_ticket_step, open_ticket, open_tickets_directly, step_routed_to_all,
};

on_both_engines!(
    tickets_planned_together_get_what_each_would_alone,
    a_worker_shares_its_writes_between_the_jobs_it_runs
);

/// A plan's recipients with what brought each in, and its rows' languages.
fn recipients(plan: &Planned) -> BTreeSet<(String, String, String)> {
    plan.claimed
        .iter()
        .map(|d| {
            (
                d.recipient.clone(),
                serde_json::to_string(&d.sources).unwrap(),
                format!("{:?}", d.locale),
            )
        })
        .collect()
}

async fn tickets_planned_together_get_what_each_would_alone(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    // Two accounts with the same topic and different rules.
    let (_, step_a) =
        flow_with_ticket_step(&app, "Destek", "billing", &["fwd-a@example.com"]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "billing", "emails": ["a-billing@example.com"] }),
    )
    .await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["a-all@example.com"] }),
    )
    .await;
    let (admin_b, widget_b) = app.other_account().await;
    let flow = app
        .admin_as(&admin_b, CREATE_FLOW, json!({ "name": "Support" }))
        .await;
    let step_b = app
        .admin_as(
            &admin_b,
            ADD_STEP,
            json!({ "flowId": flow["createFlow"]["id"], "step": { "ticket": {
                "topic": "Billing", "confirmationMessage": "Thanks", "forwardEmails": [] } } }),
        )
        .await["addStep"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.admin_as(
        &admin_b,
        CREATE_RULE,
        json!({ "tag": "billing", "emails": ["b-billing@example.com"] }),
    )
    .await;

    let open = |key: String, step: String| {
        let app = &app;
        async move {
            open_ticket(app, &key, &step, "hi").await["ticket"]["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap()
        }
    };
    let widget_a = app.widget_key.clone();
    let a = open(widget_a.clone(), step_a.clone()).await;
    let b = open(widget_b.clone(), step_b.clone()).await;
    let rerun = open(widget_a.clone(), step_a.clone()).await;
    let (alone_a, alone_b) = (
        open(widget_a.clone(), step_a.clone()).await,
        open(widget_b.clone(), step_b.clone()).await,
    );
    let missing = uuid::Uuid::now_v7();
    let lease = domain::now() + chrono::Duration::seconds(60);
    // `rerun` was planned once already, as by a worker that died before sending.
    let earlier = domain::deliveries::create(&app.db, rerun, lease)
        .await
        .unwrap()
        .unwrap();

    let plans = domain::deliveries::create_many(&app.db, &[a, b, missing, a, rerun], lease)
        .await
        .unwrap();
    let alone = [
        domain::deliveries::create(&app.db, alone_a, lease)
            .await
            .unwrap()
            .unwrap(),
        domain::deliveries::create(&app.db, alone_b, lease)
            .await
            .unwrap()
            .unwrap(),
    ];
    assert_eq!(plans.len(), 5);
    let [
        Some(plan_a),
        Some(plan_b),
        None,
        Some(again_a),
        Some(plan_rerun),
    ] = &plans[..]
    else {
        panic!("expected a plan for every ticket but the missing one: {plans:#?}");
    };
    let addresses = |p: &Planned| -> BTreeSet<String> {
        p.claimed.iter().map(|d| d.recipient.clone()).collect()
    };
    assert_eq!(
        addresses(plan_a),
        BTreeSet::from(
            [
                "a-all@example.com",
                "a-billing@example.com",
                "fwd-a@example.com"
            ]
            .map(String::from)
        ),
        "only its own account's rules"
    );
    assert_eq!(
        addresses(plan_b),
        BTreeSet::from(["b-billing@example.com".to_owned()]),
        "only its own account's rules"
    );
    assert_eq!(recipients(plan_a), recipients(&alone[0]), "as if alone");
    assert_eq!(recipients(plan_b), recipients(&alone[1]), "as if alone");
    assert!(plan_a.claimed.iter().all(|d| d.ticket_id == a));
    assert!(
        plan_b
            .claimed
            .iter()
            .all(|d| d.account_id == plan_b.ticket.account_id)
    );

    // Named twice: the second mention claims nothing and finds the first one's rows still
    // due, so only one job sends them (the others' claims wait for the lease).
    assert_eq!(again_a.recipients, 3);
    assert!(again_a.claimed.is_empty(), "claimed twice: {again_a:#?}");
    let mut first: Vec<uuid::Uuid> = plan_a.claimed.iter().map(|d| d.id).collect();
    first.sort();
    assert_eq!(again_a.due, first);
    // Planned before: nothing new, its earlier rows due.
    assert!(plan_rerun.claimed.is_empty());
    let mut before: Vec<uuid::Uuid> = earlier.claimed.iter().map(|d| d.id).collect();
    before.sort();
    assert_eq!(plan_rerun.due, before);
    app.stop().await;
}

/// The summary line `name{kind="..."} value` of the worker's `/metrics`.
fn reading(metrics: &str, name: &str, kind: &str) -> f64 {
    let prefix = format!("{name}{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{metrics}"))
        .parse()
        .unwrap()
}

async fn a_worker_shares_its_writes_between_the_jobs_it_runs(engine: Engine) {
    const TICKETS: usize = 60;
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    let step = step_routed_to_all(&app, &["fwd@example.com"]).await;
    open_tickets_directly(&app, &step, TICKETS).await;
    let addr = integration_tests::free_local_addr();
    let worker = app.start_worker_process_on(&smtp, 16, &addr);
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= 2 * TICKETS)
            .await,
        "the queue was not drained: {} mails",
        smtp.received().len()
    );
    // A job is counted after its results were recorded, a moment after the server took the
    // mails.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let done = text.lines().any(|l| {
            l == format!("ticketing_jobs_total{{kind=\"route\",outcome=\"routed\"}} {TICKETS}")
        });
        if done || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(worker);
    let planned = reading(&metrics, "ticketing_shared_write_jobs_sum", "plan");
    let plans = reading(&metrics, "ticketing_shared_write_jobs_count", "plan");
    assert_eq!(
        planned, TICKETS as f64,
        "every routing job planned once:\n{metrics}"
    );
    assert!(
        plans < planned,
        "{plans} planning statements for {planned} jobs: none shared"
    );
    let records = reading(&metrics, "ticketing_shared_write_jobs_count", "record");
    let recorded = reading(&metrics, "ticketing_shared_write_jobs_sum", "record");
    assert!(
        records < recorded,
        "{records} recording statements for {recorded} jobs' sets of mails: none shared"
    );
    assert_eq!(
        smtp.received().len(),
        2 * TICKETS,
        "a mail was sent more than once"
    );
    let mut subjects: Vec<String> = smtp
        .received()
        .iter()
        .map(|m| {
            format!(
                "{:?} {}",
                m.to,
                m.data
                    .lines()
                    .find(|l| l.starts_with("Subject:"))
                    .unwrap_or_default()
            )
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 2 * TICKETS, "every mail exactly once");
    app.stop().await;
}
