//! A worker process killed with SIGKILL while hundreds of deliveries are in flight: another
//! worker process finishes every delivery, and the SMTP server sees at most as many
//! duplicates as there were sends in flight at the kill.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integration_tests::{OPS_TOKEN, TestSmtp};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::ticket_path::queued_tickets_on_postgres;

mod a_killed_worker_loses_no_delivery {
    /// Separate worker processes are the PostgreSQL setup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_killed_worker_loses_no_delivery().await
    }
}

async fn a_killed_worker_loses_no_delivery() {
    const TICKETS: usize = 300;
    let smtp = TestSmtp::start();
    smtp.set_accept_delay(Duration::from_millis(150));
    let Some(app) = queued_tickets_on_postgres(&smtp, TICKETS).await else {
        return;
    };

    let mut first = app.start_worker_process(&smtp, 40);
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= 40)
            .await,
        "the first worker sent nothing"
    );
    let killed_pid = first.0.id();
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().unwrap();
    let killed_at = Instant::now();
    let sending = entity::delivery::Entity::find()
        .filter(entity::delivery::Column::Status.eq("SENDING"))
        .count(&app.db)
        .await
        .unwrap() as usize;
    let received_at_kill = smtp.received().len();
    println!("killed with {received_at_kill} mails received and {sending} deliveries in flight");

    let second = app.start_worker_process(&smtp, 40);
    let done = smtp
        .wait_until(Duration::from_secs(120), |m| m.len() >= TICKETS)
        .await;
    assert!(
        done,
        "only {} of {TICKETS} mails arrived after the restart",
        smtp.received().len()
    );
    let data = app
        .wait_for(
            Duration::from_secs(60),
            "{ queueStats { deliveries { sent } } }",
            json!({}),
            |d| d["queueStats"]["deliveries"]["sent"] == TICKETS,
        )
        .await;
    let recovered_in = killed_at.elapsed();
    assert_eq!(data["queueStats"]["deliveries"]["sent"], TICKETS);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut per_ticket: HashMap<String, usize> = HashMap::new();
    for mail in smtp.received() {
        let subject = mail
            .data
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap_or_default()
            .to_owned();
        *per_ticket.entry(subject).or_default() += 1;
    }
    assert_eq!(per_ticket.len(), TICKETS, "every ticket was delivered");
    let duplicates: usize = per_ticket.values().map(|n| n - 1).sum();
    println!(
        "all {TICKETS} sent {recovered_in:?} after the kill; {duplicates} duplicates (bound: {sending} in flight)"
    );
    assert!(
        duplicates <= sending,
        "{duplicates} duplicates but only {sending} sends were in flight"
    );
    assert!(
        recovered_in < Duration::from_secs(90),
        "took {recovered_in:?}"
    );

    // Operators see the killed worker as gone once its heartbeats have stopped.
    let gone = app
        .wait_for_as(
            OPS_TOKEN,
            Duration::from_secs(40),
            "{ workers { pid status } }",
            json!({}),
            |d| {
                d["workers"].as_array().is_some_and(|ws| {
                    ws.iter()
                        .any(|w| w["pid"] == killed_pid && w["status"] == "GONE")
                })
            },
        )
        .await;
    assert!(
        gone["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["status"] == "ALIVE"),
        "{gone:#}"
    );

    // SIGTERM: the idle worker stops taking jobs and exits cleanly.
    let status = second.terminate(Duration::from_secs(40)).await;
    assert!(status.success(), "exit status {status}");
    app.stop().await;
}

mod sigterm_lets_sends_in_flight_finish {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::sigterm_lets_sends_in_flight_finish().await
    }
}

/// SIGTERM while mail is being sent: the sends in flight finish, no new job is taken, the
/// process exits 0, and what it left is done by the next worker without a duplicate.
async fn sigterm_lets_sends_in_flight_finish() {
    const TICKETS: usize = 40;
    let smtp = TestSmtp::start();
    smtp.set_accept_delay(Duration::from_millis(700));
    let Some(app) = queued_tickets_on_postgres(&smtp, TICKETS).await else {
        return;
    };
    let sending = || async {
        entity::delivery::Entity::find()
            .filter(entity::delivery::Column::Status.eq("SENDING"))
            .count(&app.db)
            .await
            .unwrap() as usize
    };
    let first = app.start_worker_process(&smtp, 4);
    let start = Instant::now();
    while sending().await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing was being sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = first.terminate(Duration::from_secs(40)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        sending().await,
        0,
        "every send in flight finished before the exit"
    );
    let sent_by_first = smtp.received().len();
    assert!(
        sent_by_first < TICKETS,
        "the stopping worker kept taking jobs"
    );
    println!("the stopping worker finished its sends: {sent_by_first} sent, exit 0");

    let second = app.start_worker_process(&smtp, 8);
    assert!(
        smtp.wait_until(Duration::from_secs(120), |m| m.len() >= TICKETS)
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        smtp.received().len(),
        TICKETS,
        "no duplicates after a graceful stop"
    );
    assert!(second.terminate(Duration::from_secs(40)).await.success());
    app.stop().await;
}
