//! What on-call operators see and do over GraphQL: queue counts, workers, deliveries with
//! their errors, and retries of failed deliveries (never of sent ones).

use std::time::Duration;

use integration_tests::{Engine, Fault, OPS_TOKEN, TestApp, TestSmtp, error_code, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(operators_see_the_queue_and_put_failed_deliveries_back);
on_both_engines!(counts_stay_exact_while_changes_are_folded_concurrently);

const QUEUE_STATS: &str = "{ queueStats { deliveries { pending sending retrying sent failed } jobs { pending running done failed killed } oldestPendingAgeSeconds perMinute { minute sent failed } } }";
const WORKERS: &str = "{ workers { id host pid startedAt lastSeenAt jobsInFlight status } }";
const DELIVERIES: &str = "query($status: DeliveryStatus) { deliveries(status: $status) {
  edges { cursor node { id recipient status attempts lastError ticketNumber topic } } pageInfo { hasNextPage } } }";
const RETRY: &str = "mutation($id: ID!) { retryDelivery(id: $id) { id status } }";
const RETRY_FAILED: &str = "mutation($since: DateTime!) { retryFailedDeliveries(since: $since) }";

async fn as_operator(app: &TestApp, query: &str, variables: Value) -> Value {
    let body = app.gql(Some(OPS_TOKEN), query, variables).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"].clone()
}

async fn operators_see_the_queue_and_put_failed_deliveries_back(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, usize::MAX);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["ok@example.com", "gone@example.com"] }),
    )
    .await;
    for i in 0..2 {
        open_ticket(&app, &app.widget_key, &step, &format!("ticket {i}")).await;
    }
    let settled = |d: &Value| {
        let c = &d["queueStats"]["deliveries"];
        c["sent"] == 2 && c["failed"] == 2
    };
    let stats = app
        .wait_for(Duration::from_secs(20), QUEUE_STATS, json!({}), settled)
        .await;
    assert!(
        stats["queueStats"]["jobs"].is_null(),
        "jobs are the operator's: {stats:#}"
    );

    // One routing job per ticket, which also makes each first attempt; apalis records finished
    // jobs when the worker next polls, so they trail the deliveries.
    let ops = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(10),
            QUEUE_STATS,
            json!({}),
            |d| d["queueStats"]["jobs"]["done"].as_i64() == Some(2),
        )
        .await["queueStats"]
        .clone();
    assert_eq!(
        ops["deliveries"],
        json!({ "pending": 0, "sending": 0, "retrying": 0, "sent": 2, "failed": 2 })
    );
    assert_eq!(ops["jobs"]["done"], 2, "{ops:#}");
    assert!(ops["oldestPendingAgeSeconds"].is_null());
    let minutes = ops["perMinute"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let total = |k: &str| minutes.iter().map(|m| m[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!((total("sent"), total("failed")), (2, 2));

    // Another account sees nothing of ours.
    let (other_admin, other_widget) = app.other_account().await;
    let theirs = app.gql(Some(&other_admin), QUEUE_STATS, json!({})).await;
    assert_eq!(
        theirs["data"]["queueStats"]["deliveries"]["failed"], 0,
        "{theirs:#}"
    );

    let workers = as_operator(&app, WORKERS, json!({})).await["workers"].clone();
    let alive: Vec<&Value> = workers
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["status"] == "ALIVE")
        .collect();
    assert!(
        !alive.is_empty(),
        "the embedded worker is listed: {workers:#}"
    );
    assert!(alive[0]["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(alive[0]["pid"], json!(std::process::id()));
    assert!(alive[0]["startedAt"].is_string());
    for key in [app.admin_key.as_str(), app.widget_key.as_str()] {
        assert_eq!(
            error_code(&app.gql(Some(key), WORKERS, json!({})).await),
            "FORBIDDEN"
        );
    }
    assert_eq!(
        error_code(&app.gql(Some(&other_widget), QUEUE_STATS, json!({})).await),
        "FORBIDDEN"
    );
    // The operator token is for operations only.
    assert_eq!(
        error_code(&app.gql(Some(OPS_TOKEN), FLOWS, json!({})).await),
        "FORBIDDEN"
    );

    let failed =
        app.admin(DELIVERIES, json!({ "status": "FAILED" })).await["deliveries"]["edges"].clone();
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 2);
    for edge in failed {
        assert_eq!(edge["node"]["recipient"], "gone@example.com");
        assert_eq!(edge["node"]["attempts"], 1);
        assert!(
            edge["node"]["lastError"].as_str().unwrap().contains("550"),
            "{edge:#}"
        );
        assert_eq!(edge["node"]["topic"], "offline_message");
    }
    let sent =
        app.admin(DELIVERIES, json!({ "status": "SENT" })).await["deliveries"]["edges"][0]["node"]
            ["id"]
            .clone();
    let refused = app
        .gql(Some(&app.admin_key), RETRY, json!({ "id": sent }))
        .await;
    assert_eq!(
        error_code(&refused),
        "BAD_USER_INPUT",
        "a sent delivery is never sent again"
    );
    let foreign = app
        .gql(
            Some(&other_admin),
            RETRY,
            json!({ "id": failed[0]["node"]["id"] }),
        )
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");

    // The mailbox is fixed; the operator puts the failures back.
    smtp.fail_rcpt("gone@example.com", Fault::Permanent, 0);
    let one = app
        .gql(
            Some(OPS_TOKEN),
            RETRY,
            json!({ "id": failed[0]["node"]["id"] }),
        )
        .await;
    assert_eq!(one["data"]["retryDelivery"]["status"], "PENDING", "{one:#}");
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let rest = as_operator(&app, RETRY_FAILED, json!({ "since": since })).await;
    assert_eq!(rest["retryFailedDeliveries"], 1);
    app.wait_for(Duration::from_secs(20), QUEUE_STATS, json!({}), |d| {
        d["queueStats"]["deliveries"]["sent"] == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received_by("gone@example.com").len(), 2);
    assert_eq!(
        smtp.received_by("ok@example.com").len(),
        2,
        "sent deliveries were not sent again"
    );
    let retried =
        app.admin(DELIVERIES, json!({ "status": "SENT" })).await["deliveries"]["edges"].clone();
    let attempts: Vec<i64> = retried
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts.iter().filter(|&&a| a == 2).count(),
        2,
        "{retried:#}"
    );
    crate::operations::counts_match_rows(&app).await;
    app.stop().await;
}

/// The counts `queueStats` reads from the tallies the database keeps (triggers, folded by the
/// workers on PostgreSQL) agree with counting the delivery rows themselves: for the account,
/// and for the operator across accounts.
pub async fn counts_match_rows(app: &TestApp) {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let backend = app.db.get_database_backend();
    let counted = |account: Option<uuid::Uuid>| async move {
        let mark = if backend == DatabaseBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        let (filter, values) = match account {
            None => (String::new(), vec![]),
            Some(id) => (format!(" WHERE account_id = {mark}"), vec![id.into()]),
        };
        let rows = app
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT status, COUNT(*) AS n FROM deliveries{filter} GROUP BY status"),
                values,
            ))
            .await
            .unwrap();
        let mut out = json!({ "pending": 0, "sending": 0, "retrying": 0, "sent": 0, "failed": 0 });
        for row in rows {
            let status: String = row.try_get("", "status").unwrap();
            let n: i64 = row.try_get("", "n").unwrap();
            out[status.to_lowercase()] = json!(n);
        }
        out
    };
    let account = app.account_id.parse().unwrap();
    let as_admin = app.admin(QUEUE_STATS, json!({})).await["queueStats"]["deliveries"].clone();
    assert_eq!(
        as_admin,
        counted(Some(account)).await,
        "the account's counts"
    );
    let as_operator =
        as_operator(app, QUEUE_STATS, json!({})).await["queueStats"]["deliveries"].clone();
    assert_eq!(
        as_operator,
        counted(None).await,
        "the counts of every account"
    );
}

/// Deliveries change state while three folds run at once with the workers' own: every change
/// is counted once, and after a last fold the tallies alone hold the counts (PostgreSQL; on
/// SQLite the triggers write the tallies directly and a fold has nothing to do).
async fn counts_stay_exact_while_changes_are_folded_concurrently(engine: Engine) {
    use sea_orm::{ConnectionTrait, Statement};
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    let emails: Vec<String> = (0..20).map(|i| format!("agent{i}@example.com")).collect();
    app.admin(CREATE_RULE, json!({ "tag": "*", "emails": emails }))
        .await;
    for i in 0..5 {
        open_ticket(&app, &app.widget_key, &step, &format!("ticket {i}")).await;
    }
    app.wait_for(Duration::from_secs(30), QUEUE_STATS, json!({}), |d| {
        d["queueStats"]["deliveries"]["sent"] == 100
    })
    .await;

    let backend = app.db.get_database_backend();
    let flips = async {
        // Final states only, so the workers leave these rows alone.
        for round in 0..40 {
            let (from, to) = if round % 2 == 0 {
                ("SENT", "FAILED")
            } else {
                ("FAILED", "SENT")
            };
            let sql = format!(
                "UPDATE deliveries SET status = '{to}' WHERE status = '{from}' \
                 AND recipient_key IN (SELECT recipient_key FROM deliveries \
                 WHERE status = '{from}' ORDER BY recipient_key LIMIT {})",
                10 + round
            );
            app.db
                .execute_raw(Statement::from_string(backend, sql))
                .await
                .unwrap();
        }
    };
    let fold = || async {
        for _ in 0..40 {
            domain::ops::fold_tallies(&app.db).await.unwrap();
        }
    };
    tokio::join!(flips, fold(), fold(), fold());
    counts_match_rows(&app).await;
    domain::ops::fold_tallies(&app.db).await.unwrap();
    let left: i64 = app
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM delivery_tally_changes",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(left, 0, "a fold leaves no change behind");
    counts_match_rows(&app).await;
    app.stop().await;
}
