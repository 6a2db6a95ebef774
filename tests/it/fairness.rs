//! Fair pickup across accounts: a quiet account's ticket is not queued behind another
//! account's backlog (`domain::infra::queue::ROUND_JOBS`); and each account's backlog as
//! operators see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::infra::queue::ROUND_JOBS;
use integration_tests::{Engine, Fault, OPS_TOKEN, TestApp, TestSmtp, error_code, on_both_engines};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{open_ticket, open_tickets_directly, step_routed_to_all};

on_both_engines!(
    a_quiet_accounts_ticket_is_not_queued_behind_a_backlog,
    retries_take_their_accounts_turn,
    the_backlog_shows_the_accounts_with_the_most_work_waiting,
    rounds_move_down_together_before_priorities_run_out,
    an_accounts_slow_jobs_leave_the_other_accounts_room
);

const BACKLOG: usize = 400;

/// As the admin `key`: a flow with one ticket step of `topic` and a `*` rule to `email`.
/// Returns the step's id.
pub(crate) async fn ticket_step_of(app: &TestApp, key: &str, topic: &str, email: &str) -> String {
    let flow = app
        .admin_as(key, CREATE_FLOW, json!({ "name": "Shop" }))
        .await["createFlow"]["id"]
        .clone();
    let step = app
        .admin_as(
            key,
            ADD_STEP,
            json!({ "flowId": flow, "step": { "ticket": { "topic": topic, "confirmationMessage": "Talep alındı" } } }),
        )
        .await["addStep"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.admin_as(key, CREATE_RULE, json!({ "tag": "*", "emails": [email] }))
        .await;
    step
}

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
    let step = ticket_step_of(&app, &quiet_admin, "quiet", "quiet@example.com").await;
    open_ticket(&app, &quiet_widget, &step, "one ticket").await;

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

/// A retry is queued in its account's turn, not behind the backlog: the quiet account's
/// e-mail and webhook fail once while another account's backlog waits; their retry jobs
/// (due later, so they stay queued) have at most one round of the backlog ahead of them.
async fn retries_take_their_accounts_turn(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("quiet@example.com", Fault::Transient, 1);
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.embedded_worker = false;
        // Long enough that the retries are still queued when the worker is stopped.
        c.delivery.retry_base = Duration::from_secs(60);
        c.delivery.retry_max = Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    let noisy_step = step_routed_to_all(&app, &[]).await;
    open_tickets_directly(&app, &noisy_step, BACKLOG).await;

    let (quiet_admin, quiet_widget) = app.other_account().await;
    let (hook_url, _) = crate::webhooks::receiver("ticket.opened").await;
    app.admin_as(
        &quiet_admin,
        "mutation($url: String!) { createWebhook(input: { url: $url, events: [TICKET_OPENED] }) { secret } }",
        json!({ "url": hook_url }),
    )
    .await;
    let step = ticket_step_of(&app, &quiet_admin, "quiet", "quiet@example.com").await;
    open_ticket(&app, &quiet_widget, &step, "one ticket").await;

    // One worker takes the quiet account's jobs after a round of the backlog; both fail once.
    let workers = app.start_workers(1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (delivery, hook_delivery) = loop {
        let quiet = entity::account::Entity::find()
            .filter(entity::account::Column::Name.eq("Other"))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .id;
        let delivery = entity::delivery::Entity::find()
            .filter(entity::delivery::Column::AccountId.eq(quiet))
            .filter(entity::delivery::Column::Status.eq("RETRYING"))
            .one(&app.db)
            .await
            .unwrap();
        let hook_delivery = entity::webhook_delivery::Entity::find()
            .filter(entity::webhook_delivery::Column::AccountId.eq(quiet))
            .filter(entity::webhook_delivery::Column::Status.eq("RETRYING"))
            .one(&app.db)
            .await
            .unwrap();
        if let (Some(d), Some(h)) = (delivery, hook_delivery) {
            break (d.id, h.id);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quiet account's attempts never failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workers.stop().await;

    let backend = app.db.get_database_backend();
    let jobs = domain::infra::queue::jobs_table(backend);
    let pending_priorities = app
        .db
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT idempotency_key, priority FROM {jobs} WHERE status = 'Pending'"),
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let key: String = row.try_get("", "idempotency_key").unwrap();
            let priority: i64 = row
                .try_get::<i32>("", "priority")
                .map(i64::from)
                .or_else(|_| row.try_get::<i64>("", "priority"))
                .unwrap();
            (key, priority)
        })
        .collect::<Vec<_>>();
    let backlog_left = pending_priorities.len() - 2;
    assert!(
        backlog_left >= 3 * ROUND_JOBS as usize,
        "only {backlog_left} of the backlog still queued: the check below would prove nothing"
    );
    for retry_key in [
        domain::deliveries::attempt_key(delivery, 2),
        domain::webhooks::attempt_key(hook_delivery, 2),
    ] {
        let (_, priority) = pending_priorities
            .iter()
            .find(|(key, _)| *key == retry_key)
            .unwrap_or_else(|| panic!("no queued job {retry_key}: {pending_priorities:?}"));
        // apalis takes the highest priority first, then the earliest due.
        let ahead = pending_priorities
            .iter()
            .filter(|(key, p)| p >= priority && *key != retry_key)
            .count();
        println!("{retry_key}: {ahead} of {backlog_left} queued jobs go first");
        assert!(
            ahead <= ROUND_JOBS as usize + 1,
            "{ahead} of {backlog_left} queued jobs go before the retry {retry_key}"
        );
    }
    app.stop().await;
}

const BACKLOG_STATS: &str = "{ queueStats { backlog { accounts ticketsWaiting deliveriesWaiting \
    top { accountId accountName ticketsWaiting deliveriesWaiting oldestTicketWaitingSeconds } } } }";

/// Twelve accounts with 1 to 12 tickets waiting: the operator sees the ten largest, largest
/// first, with totals over all twelve, in GraphQL, on `/ops` and (as aggregates) in
/// `/metrics`; an account's admin sees its own line only; the public key sees nothing. Once a
/// worker has done the work, the backlog is empty.
async fn the_backlog_shows_the_accounts_with_the_most_work_waiting(engine: Engine) {
    const ACCOUNTS: usize = 12;
    let smtp = TestSmtp::start();
    // Shop 7's mails fail once and wait for their retry meanwhile.
    smtp.fail_rcpt("shop7@example.com", Fault::Transient, 7);
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.embedded_worker = false;
        // Due 15-30 s after the failure (with jitter): long enough to look at them waiting.
        c.delivery.retry_base = Duration::from_secs(30);
        c.delivery.retry_max = Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let started = std::time::Instant::now();
    let mut admins = Vec::new();
    for n in 1..=ACCOUNTS {
        let account = domain::keys::create_account(&app.db, &format!("<b>Shop {n}</b>"))
            .await
            .unwrap();
        let step = ticket_step_of(
            &app,
            &account.admin_key,
            "order",
            &format!("shop{n}@example.com"),
        )
        .await
        .parse()
        .unwrap();
        for i in 0..n {
            let input = domain::tickets::OpenTicket {
                step_id: step,
                message: format!("ticket {i}"),
                visitor: domain::tickets::VisitorInput::default(),
            };
            domain::tickets::open_ticket(&app.db, account.account_id, &input)
                .await
                .unwrap();
        }
        admins.push((account.account_id, account.admin_key, account.widget_key));
    }
    let total = ACCOUNTS * (ACCOUNTS + 1) / 2;

    let stats = app.gql(Some(OPS_TOKEN), BACKLOG_STATS, json!({})).await;
    assert!(stats.get("errors").is_none(), "{stats:#}");
    let backlog = &stats["data"]["queueStats"]["backlog"];
    assert_eq!(backlog["accounts"], ACCOUNTS, "{backlog:#}");
    assert_eq!(backlog["ticketsWaiting"], total, "{backlog:#}");
    assert_eq!(backlog["deliveriesWaiting"], 0, "{backlog:#}");
    let top = backlog["top"].as_array().unwrap();
    assert_eq!(top.len(), domain::ops::BACKLOG_TOP as usize, "{backlog:#}");
    // Shop 1 opened its tickets first and Shop 12 last: the oldest waiting tickets' ages
    // grow down the list (largest backlog first), and none is older than this test.
    let mut younger = 0.0;
    for (line, n) in top.iter().zip((1..=ACCOUNTS).rev()) {
        assert_eq!(
            line["accountId"],
            admins[n - 1].0.to_string(),
            "{backlog:#}"
        );
        assert_eq!(line["accountName"], format!("<b>Shop {n}</b>"));
        assert_eq!(line["ticketsWaiting"], n);
        let age = line["oldestTicketWaitingSeconds"].as_f64().unwrap();
        assert!(
            age >= younger && age <= started.elapsed().as_secs_f64(),
            "{backlog:#}"
        );
        younger = age;
    }

    // An admin sees its own account's line only; the widget key is refused.
    let (own_id, own_admin, own_widget) = &admins[4];
    let own = app.gql(Some(own_admin), BACKLOG_STATS, json!({})).await;
    let own = &own["data"]["queueStats"]["backlog"];
    assert_eq!(own["accounts"], 1, "{own:#}");
    assert_eq!(own["ticketsWaiting"], 5, "{own:#}");
    assert_eq!(own["top"][0]["accountId"], own_id.to_string(), "{own:#}");
    let refused = app.gql(Some(own_widget), BACKLOG_STATS, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused:#}");

    // `/ops` lists the same ten, escaped, and says how many there are in all.
    let (status, page) = app.get("/ops", Some(OPS_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("&lt;b&gt;Shop 12&lt;/b&gt;") && page.contains("&lt;b&gt;Shop 3&lt;/b&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("Shop 2&lt;") && !page.contains("<b>"),
        "{page}"
    );
    assert!(
        page.contains("The 10 largest of 12 accounts with work waiting."),
        "{page}"
    );

    // `/metrics` has aggregates, no label per account.
    let metrics = reqwest::get(&app.metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        format!("ticketing_backlog_accounts {ACCOUNTS}"),
        format!("ticketing_backlog_tickets {total}"),
        format!("ticketing_backlog_largest_account {ACCOUNTS}"),
    ] {
        assert!(
            metrics.contains(&expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }

    // Routed and sent, except Shop 7's mails, which wait for their retry: the backlog is
    // Shop 7's deliveries, seen by the operator and by Shop 7's admin, not by another admin.
    let workers = app.start_workers(1).await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= total - 7)
            .await
    );
    let retrying = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(30),
            BACKLOG_STATS,
            json!({}),
            |d| {
                let b = &d["queueStats"]["backlog"];
                b["ticketsWaiting"] == 0 && b["accounts"] == 1 && b["deliveriesWaiting"] == 7
            },
        )
        .await;
    let backlog = &retrying["queueStats"]["backlog"];
    assert_eq!(backlog["accounts"], 1, "{backlog:#}");
    assert_eq!(backlog["deliveriesWaiting"], 7, "{backlog:#}");
    assert_eq!(
        backlog["top"][0]["accountName"], "<b>Shop 7</b>",
        "{backlog:#}"
    );
    assert_eq!(backlog["top"][0]["deliveriesWaiting"], 7, "{backlog:#}");
    assert_eq!(backlog["top"][0]["oldestTicketWaitingSeconds"], json!(null));
    let shop7 = app.admin_as(&admins[6].1, BACKLOG_STATS, json!({})).await;
    assert_eq!(
        shop7["queueStats"]["backlog"]["deliveriesWaiting"], 7,
        "{shop7:#}"
    );
    let shop5 = app.admin_as(own_admin, BACKLOG_STATS, json!({})).await;
    assert_eq!(shop5["queueStats"]["backlog"]["accounts"], 0, "{shop5:#}");
    assert_eq!(
        shop5["queueStats"]["backlog"]["deliveriesWaiting"], 0,
        "{shop5:#}"
    );

    // Once the retries have gone out, nothing waits.
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= total)
            .await
    );
    let empty = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(30),
            BACKLOG_STATS,
            json!({}),
            |d| d["queueStats"]["backlog"]["accounts"] == 0,
        )
        .await;
    let backlog = &empty["queueStats"]["backlog"];
    assert_eq!(backlog["ticketsWaiting"], 0, "{backlog:#}");
    assert_eq!(backlog["deliveriesWaiting"], 0, "{backlog:#}");
    assert_eq!(backlog["top"], json!([]), "{backlog:#}");
    workers.stop().await;
    app.stop().await;
}

/// The priorities of the queued jobs with how many jobs have each, highest first.
async fn queued_priorities(app: &TestApp) -> Vec<(i64, i64)> {
    let backend = app.db.get_database_backend();
    let jobs = domain::infra::queue::jobs_table(backend);
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(priority AS BIGINT) AS p, COUNT(*) AS n FROM {jobs} \
                 WHERE status = 'Pending' GROUP BY priority ORDER BY priority DESC"
            ),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<i64>("", "p").unwrap(),
                r.try_get::<i64>("", "n").unwrap(),
            )
        })
        .collect()
}

/// Rounds only grow while work keeps coming; once the queue's head reaches `REBASE_AT` the
/// workers move every round down together: the order of queued jobs is kept, priorities stay
/// far from the 32-bit limit, an idle account joins at the new head, and the work goes out.
async fn rounds_move_down_together_before_priorities_run_out(engine: Engine) {
    use domain::infra::queue::{REBASE_AT, rebase_rounds};
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    // Two accounts after half a year of work: rounds 2^30 + 5 and 2^30 + 7.
    let (late_admin, late_widget) = app.other_account().await;
    let late_step = ticket_step_of(&app, &late_admin, "late", "late@example.com").await;
    let early_step = step_routed_to_all(&app, &[]).await;
    for (name, round) in [("Other", REBASE_AT + 7), ("Acme", REBASE_AT + 5)] {
        let set = app
            .db
            .execute_unprepared(&format!(
                "UPDATE accounts SET queue_round = {round}, queue_round_jobs = 0 WHERE name = '{name}'"
            ))
            .await
            .unwrap();
        assert_eq!(set.rows_affected(), 1, "{name}");
    }
    for i in 0..3 {
        open_ticket(&app, &app.widget_key, &early_step, &format!("early {i}")).await;
    }
    open_ticket(&app, &late_widget, &late_step, "late").await;
    // Acme's three routing jobs in its round, Other's one in its own.
    let p = |round: i64| -round;
    assert_eq!(
        queued_priorities(&app).await,
        vec![(p(REBASE_AT + 5), 3), (p(REBASE_AT + 7), 1)]
    );

    assert_eq!(rebase_rounds(&app.db).await.unwrap(), Some(REBASE_AT + 5));
    assert_eq!(queued_priorities(&app).await, vec![(0, 3), (-2, 1)]);
    // Once is enough: the head is 0 now.
    assert_eq!(rebase_rounds(&app.db).await.unwrap(), None);
    // The accounts moved with their jobs: their next jobs go in their rebased rounds.
    open_ticket(&app, &app.widget_key, &early_step, "early 3").await;
    open_ticket(&app, &late_widget, &late_step, "late 1").await;
    assert_eq!(queued_priorities(&app).await, vec![(0, 4), (-2, 2)]);

    // An account idle all along joins at the new head, ahead of Other's job.
    let idle = domain::keys::create_account(&app.db, "Idle").await.unwrap();
    let idle_step = ticket_step_of(&app, &idle.admin_key, "idle", "idle@example.com").await;
    open_ticket(&app, &idle.widget_key, &idle_step, "idle").await;
    assert_eq!(queued_priorities(&app).await, vec![(0, 5), (-2, 2)]);

    let workers = app.start_workers(1).await;
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= 7)
            .await,
        "{:?}",
        smtp.received()
    );
    workers.stop().await;
    app.stop().await;
}

/// An HTTP receiver on loopback that accepts requests and never answers: a webhook endpoint
/// that hangs until the worker's timeout. Counts the requests it holds now and at most.
async fn hanging_receiver() -> (
    String,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (holding, peak) = (now.clone(), most.clone());
    let serving = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            // Connections the worker gives up on (its pool, a timeout) stay counted: the
            // timeout here is far beyond the test.
            let n = holding.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, now, most, serving)
}

/// A worker's share per account (`WORKER_ACCOUNT_SHARE`): one account's webhook receiver
/// hangs, so each of its webhook jobs holds a slot until the timeout. The account never holds
/// more than its share of the worker's slots (2 of 4), its other jobs are put back in the
/// queue, and another account's ticket is mailed while those requests still hang. Without
/// the share, the hanging requests take every slot and the other ticket waits for the timeout.
async fn an_accounts_slow_jobs_leave_the_other_accounts_room(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.embedded_worker = false;
        c.delivery.webhook_timeout = Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    let delivery = &app.config.delivery;
    let share = worker::share::Shares::new(delivery.concurrency, delivery.account_share).cap();
    assert!(
        share < delivery.concurrency,
        "the test needs a share below the whole worker"
    );

    let (hook_url, holding, most, serving) = hanging_receiver().await;
    app.admin(
        "mutation($url: String!) { createWebhook(input: { url: $url, events: [TICKET_OPENED] }) { secret } }",
        json!({ "url": hook_url }),
    )
    .await;
    let slow_step = step_routed_to_all(&app, &[]).await;
    open_tickets_directly(&app, &slow_step, 4 * delivery.concurrency).await;

    let workers = app.start_workers(1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while holding.load(Ordering::SeqCst) < share {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook requests never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (quiet_admin, quiet_widget) = app.other_account().await;
    let step = ticket_step_of(&app, &quiet_admin, "quiet", "quiet@example.com").await;
    open_ticket(&app, &quiet_widget, &step, "one ticket").await;
    let arrived = smtp
        .wait_until(Duration::from_secs(60), |mails| {
            mails
                .iter()
                .any(|m| m.to.iter().any(|t| t == "quiet@example.com"))
        })
        .await;
    assert!(
        arrived,
        "the other account's mail waited behind the hanging requests"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        share,
        "the account held more than its share of the worker's slots"
    );
    // The slow account's other jobs went back to the queue rather than wait in a slot.
    let backend = app.db.get_database_backend();
    let last_result = match backend {
        sea_orm::DatabaseBackend::Postgres => "last_result::text",
        _ => "last_result",
    };
    let put_back = app
        .db
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT COUNT(*) AS n FROM {} WHERE status = 'Pending' AND {last_result} LIKE '%{}%'",
                domain::infra::queue::jobs_table(backend),
                domain::infra::queue::POSTPONED
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert!(put_back > 0, "no job was put back for its account's share");
    serving.abort();
    workers.stop().await;
    app.stop().await;
}
