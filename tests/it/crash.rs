//! A worker process killed with SIGKILL while hundreds of deliveries are in flight: another
//! worker process finishes every delivery, and the SMTP server sees at most as many
//! duplicates as there were sends in flight at the kill.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use domain::tickets::{OpenTicket, VisitorInput};
use integration_tests::{Engine, TestApp, TestSmtp, worker_binary};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::flow_with_ticket_step;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(app: &TestApp, smtp: &TestSmtp) -> Process {
    let child = Command::new(worker_binary())
        .env("DATABASE_URL", app.config.database.url.expose())
        .env("SMTP_URL", smtp.url())
        .env("WORKER_LISTEN_ADDR", "127.0.0.1:0")
        .env("WORKER_CONCURRENCY", "40")
        .env("SMTP_TIMEOUT_MS", "3000")
        .env("RETRY_BASE_MS", "200")
        .env("POLL_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the worker binary");
    Process(child)
}

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
    let Some(app) =
        TestApp::spawn_with(Engine::Postgres, &smtp, |c| c.embedded_worker = false).await
    else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "*", "emails": ["all@example.com"] }),
    )
    .await;
    let account: uuid::Uuid = app.account_id.parse().unwrap();
    let step: uuid::Uuid = step.parse().unwrap();
    for i in 0..TICKETS {
        let input = OpenTicket {
            step_id: step,
            message: format!("ticket {i}"),
            visitor: VisitorInput::default(),
        };
        domain::tickets::open_ticket(&app.db, account, &input)
            .await
            .unwrap();
    }

    let mut first = start_worker(&app, &smtp);
    assert!(
        smtp.wait_until(Duration::from_secs(60), |m| m.len() >= 40)
            .await,
        "the first worker sent nothing"
    );
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

    let mut second = start_worker(&app, &smtp);
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

    // SIGTERM: the idle worker stops taking jobs and exits cleanly.
    let pid = second.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = second.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(40),
            "the worker did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    app.stop().await;
}
