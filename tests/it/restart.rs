//! A real PostgreSQL server restarted under load: the test starts a server of its own (so the
//! machine's, shared by the other tests, keeps running), an API on it, and two `worker`
//! processes; visitors open tickets throughout while the server is stopped the way an
//! administrator restarts it, kept down for a few seconds, and started again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use integration_tests::{PostgresServer, TestApp, TestSmtp, error_code};
use sea_orm::{EntityTrait, QuerySelect};
use serde_json::json;
use tokio::task::JoinSet;

use crate::ops::*;
use crate::ticket_path::step_routed_to_all;

/// Sends each worker may have in flight: the documented bound on duplicates is one more copy
/// per delivery that was being sent when the database went away (README, "Reliability").
const CONCURRENCY: usize = 4;
const WORKERS: usize = 2;
const VISITORS: usize = 6;

/// What one `openTicket` answered, and when.
struct Answer {
    at: Instant,
    result: Result<i64, String>,
}

mod a_postgres_restart_under_load_loses_nothing {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_postgres_restart_under_load_loses_nothing().await
    }
}

async fn a_postgres_restart_under_load_loses_nothing() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_on_server(server.url("postgres"), &smtp, |c| {
        c.embedded_worker = false;
    })
    .await
    else {
        return;
    };
    let app = Arc::new(app);
    let step = step_routed_to_all(&app, &[]).await;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| app.start_worker_process(&smtp, CONCURRENCY))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut visitors = JoinSet::new();
    for v in 0..VISITORS {
        let (app, step, stop) = (app.clone(), step.clone(), stop.clone());
        visitors.spawn(async move {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = app
                    .gql(
                        Some(&app.widget_key),
                        OPEN_TICKET,
                        json!({ "input": { "stepId": step, "message": format!("visitor {v}, ticket {i}") } }),
                    )
                    .await;
                let result = match body["data"]["openTicket"]["ticket"]["number"].as_i64() {
                    Some(n) => Ok(n),
                    None => Err(error_code(&body)),
                };
                answers.push(Answer {
                    at: Instant::now(),
                    result,
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        });
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopping = Instant::now();
    let restart = tokio::task::spawn_blocking({
        let server = Arc::new(server);
        let kept = server.clone();
        move || {
            server.stop();
            let stopped = Instant::now();
            std::thread::sleep(Duration::from_secs(4));
            server.start_again();
            (stopped, Instant::now(), kept)
        }
    });
    let (stopped_at, back_at, server) = restart.await.unwrap();
    println!(
        "server stopped {:?} after the stop began, down for {:?}",
        stopped_at - stopping,
        back_at - stopped_at
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<Answer> = visitors.join_all().await.into_iter().flatten().collect();

    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for a in &answers {
        if let Err(code) = &a.result {
            *codes.entry(code.clone()).or_default() += 1;
        }
    }
    let opened: Vec<i64> = answers
        .iter()
        .filter_map(|a| a.result.clone().ok())
        .collect();
    println!(
        "{} openTicket calls: {} tickets, errors {codes:?}",
        answers.len(),
        opened.len()
    );
    assert!(
        codes.keys().all(|c| c == "SERVICE_UNAVAILABLE"),
        "only SERVICE_UNAVAILABLE while the database is away: {codes:?}"
    );
    assert!(
        codes.values().sum::<usize>() > 0,
        "the restart was felt by the callers"
    );
    let after: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at > back_at + Duration::from_secs(2))
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|a| a.result.is_ok()),
        "serving again within 2 s of the server's return"
    );

    // Every ticket the database holds is mailed - also one whose answer was an error because
    // the connection died during its COMMIT - and each at most twice.
    let stored: Vec<i64> = entity::ticket::Entity::find()
        .select_only()
        .column(entity::ticket::Column::Number)
        .into_tuple()
        .all(&app.db)
        .await
        .unwrap();
    for n in &opened {
        assert!(stored.contains(n), "ticket #{n} was answered but not kept");
    }
    let number_of = |mail: &integration_tests::ReceivedMail| {
        mail.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: [Ticket #"))
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.parse::<i64>().ok())
            .expect("a ticket number in the subject")
    };
    // Distinct tickets, not mails: a duplicate must not end the wait early.
    let all_mailed = smtp
        .wait_until(Duration::from_secs(120), |mails| {
            let numbers: std::collections::BTreeSet<i64> = mails.iter().map(number_of).collect();
            numbers.len() >= stored.len()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut copies: BTreeMap<i64, usize> = BTreeMap::new();
    for mail in smtp.received_by("all@example.com") {
        *copies.entry(number_of(&mail)).or_default() += 1;
    }
    let missing: Vec<&i64> = stored.iter().filter(|n| !copies.contains_key(n)).collect();
    assert!(
        all_mailed && missing.is_empty(),
        "tickets never mailed: {missing:?}"
    );
    let twice = copies.values().filter(|&&c| c == 2).count();
    assert!(copies.values().all(|&c| c <= 2), "{copies:?}");
    assert!(
        twice <= WORKERS * CONCURRENCY,
        "{twice} mails sent twice; at most one per send in flight ({})",
        WORKERS * CONCURRENCY
    );
    println!(
        "{} tickets stored, all mailed; {twice} sent twice",
        stored.len()
    );

    for worker in workers {
        assert!(worker.terminate(Duration::from_secs(40)).await.success());
    }
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    drop(server);
}
