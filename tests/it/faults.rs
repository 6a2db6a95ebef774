//! Faults the delivery path must survive: several workers competing for one queue, and an
//! SMTP server that is down for a while.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use sea_orm::EntityTrait;
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{queued_tickets_on_postgres, step_routed_to_all};

on_both_engines!(an_smtp_outage_delays_mail_but_loses_none);

const QUEUE_STATS: &str = "{ queueStats { deliveries { pending sending retrying sent failed } } }";

mod three_workers_send_a_thousand_tickets_exactly_once {
    /// The issue asks this of PostgreSQL, the engine for several worker processes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::three_workers_send_a_thousand_tickets_exactly_once().await
    }
}

/// Three `worker` processes on one PostgreSQL database.
async fn three_workers_send_a_thousand_tickets_exactly_once() {
    const TICKETS: usize = 1_000;
    let smtp = TestSmtp::start();
    let Some(app) = queued_tickets_on_postgres(&smtp, TICKETS).await else {
        return;
    };

    let started = Instant::now();
    let workers: Vec<_> = (0..3).map(|_| app.start_worker_process(&smtp, 8)).collect();
    let all_arrived = smtp
        .wait_until(Duration::from_secs(180), |m| m.len() >= TICKETS)
        .await;
    let elapsed = started.elapsed();
    assert!(
        all_arrived,
        "only {} of {TICKETS} mails arrived",
        smtp.received().len()
    );
    println!(
        "3 workers delivered {TICKETS} tickets in {elapsed:?} ({:.0} mails/s)",
        TICKETS as f64 / elapsed.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = smtp.received_by("all@example.com");
    assert_eq!(mails.len(), TICKETS, "no duplicates");
    let subjects: HashSet<String> = mails
        .iter()
        .filter_map(|m| {
            m.data
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(subjects.len(), TICKETS, "every ticket exactly once");
    let stats = app.admin(QUEUE_STATS, json!({})).await;
    assert_eq!(stats["queueStats"]["deliveries"]["sent"], TICKETS);
    for worker in workers {
        assert!(worker.terminate(Duration::from_secs(40)).await.success());
    }
    app.stop().await;
}

async fn an_smtp_outage_delays_mail_but_loses_none(engine: Engine) {
    // Point the app at a port where no SMTP server listens yet: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let placeholder = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &placeholder, |c| {
        c.mail.smtp_url = Some(domain::infra::config::Secret::new(format!("smtp://{addr}")));
        c.delivery.max_attempts = 12;
        c.delivery.retry_base = Duration::from_millis(200);
        c.delivery.retry_max = Duration::from_millis(1000);
    })
    .await
    else {
        return;
    };
    let step = step_routed_to_all(&app, &["fwd@example.com"]).await;
    for i in 0..5 {
        crate::ticket_path::open_ticket(&app, &app.widget_key, &step, &format!("ticket {i}")).await;
    }
    // Every delivery fails and is scheduled again while the server is down.
    app.wait_for(Duration::from_secs(20), QUEUE_STATS, json!({}), |d| {
        d["queueStats"]["deliveries"]["retrying"] == 10
    })
    .await;
    let retrying = app.admin(TICKETS, json!({})).await;
    assert_eq!(retrying["tickets"]["edges"].as_array().unwrap().len(), 5);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let smtp = TestSmtp::start_at(addr);
    let back = Instant::now();
    let data = app
        .wait_for(Duration::from_secs(30), QUEUE_STATS, json!({}), |d| {
            d["queueStats"]["deliveries"]["sent"] == 10
        })
        .await;
    assert_eq!(data["queueStats"]["deliveries"]["failed"], 0);
    println!(
        "all 10 deliveries sent {:?} after the SMTP server came back",
        back.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received_by("all@example.com").len(), 5);
    assert_eq!(smtp.received_by("fwd@example.com").len(), 5);
    assert_eq!(smtp.received().len(), 10, "nothing sent twice");

    // Each delivery went through several refused attempts before the one that worked.
    let rows = entity::delivery::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 10);
    for d in rows {
        assert_eq!(d.status, domain::vocab::DeliveryStatus::Sent);
        assert!(
            d.attempts >= 2,
            "delivery {} was sent at attempt {}",
            d.id,
            d.attempts
        );
    }
    app.stop().await;
}
