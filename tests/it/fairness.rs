//! Fair pickup across accounts: a quiet account's ticket is not queued behind another
//! account's backlog (`domain::infra::queue::ROUND_JOBS`).

use std::time::Duration;

use domain::infra::queue::ROUND_JOBS;
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{open_tickets_directly, step_routed_to_all};

on_both_engines!(a_quiet_accounts_ticket_is_not_queued_behind_a_backlog);

const BACKLOG: usize = 400;

async fn a_quiet_accounts_ticket_is_not_queued_behind_a_backlog(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    // The noisy account's backlog, queued while no worker runs.
    let noisy_step = step_routed_to_all(&app, &[]).await;
    open_tickets_directly(&app, &noisy_step, BACKLOG).await;

    // Then the quiet account opens one ticket.
    let (quiet_admin, quiet_widget) = app.other_account().await;
    let as_quiet = |query: &'static str, variables: serde_json::Value| {
        let (app, key) = (&app, quiet_admin.clone());
        async move {
            let body = app.gql(Some(&key), query, variables).await;
            assert!(body.get("errors").is_none(), "{body:#}");
            body["data"].clone()
        }
    };
    let flow = as_quiet(CREATE_FLOW, json!({ "name": "Quiet" })).await["createFlow"]["id"].clone();
    let step = as_quiet(
        ADD_STEP,
        json!({ "flowId": flow, "step": { "ticket": { "topic": "quiet", "confirmationMessage": "Talep alındı" } } }),
    )
    .await["addStep"]["id"]
        .clone();
    as_quiet(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["quiet@example.com"] }),
    )
    .await;
    let opened = app
        .gql(
            Some(&quiet_widget),
            OPEN_TICKET,
            json!({ "input": { "stepId": step, "message": "one ticket" } }),
        )
        .await;
    assert!(opened.get("errors").is_none(), "{opened:#}");

    let workers = app.start_workers(1).await;
    let arrived = smtp
        .wait_until(Duration::from_secs(120), |mails| {
            mails
                .iter()
                .any(|m| m.to.iter().any(|t| t == "quiet@example.com"))
        })
        .await;
    assert!(arrived, "the quiet account's mail never arrived");
    let received = smtp.received();
    let before = received
        .iter()
        .take_while(|m| !m.to.iter().any(|t| t == "quiet@example.com"))
        .count();
    let concurrency = app.config.delivery.concurrency;
    println!(
        "the quiet account's mail arrived after {before} of the backlog's {BACKLOG} (round: {ROUND_JOBS} jobs, {concurrency} at once)"
    );
    assert!(
        before <= ROUND_JOBS as usize + 2 * concurrency,
        "{before} mails of the backlog went first; first in, first out would be {BACKLOG}"
    );
    workers.stop().await;
    app.stop().await;
}
