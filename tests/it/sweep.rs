//! A queue that heals itself: a delivery left unfinished with no job behind it (the job was
//! lost, or used up the queue's attempts) is found by the workers' periodic sweep. A lost job
//! gets a new one and the mail goes out; a dead job ends the delivery FAILED with the job's
//! last result, so an operator can see why and put it back. A ticket whose routing job was
//! lost or died is routed by a new one.

use std::time::Duration;

use domain::infra::queue::{self, Job};
use domain::vocab::DeliveryStatus;
use entity::delivery;
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    deliveries_without_a_live_job_are_healed,
    unrouted_tickets_without_a_live_job_are_routed,
    webhook_deliveries_without_a_live_job_are_healed,
    a_job_put_back_keeps_its_key_and_the_sweep_leaves_it_alone
);

async fn deliveries_without_a_live_job_are_healed(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some((app, step)) = sweeping_app(
        engine,
        &smtp,
        true,
        &["lost@example.com", "dead@example.com"],
    )
    .await
    else {
        return;
    };
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket_id = uuid::Uuid::parse_str(opened["ticket"]["id"].as_str().unwrap()).unwrap();
    let rows = wait_for_rows(&app, ticket_id, |rows| {
        rows.len() == 2 && rows.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    let id_of = |rcpt: &str| rows.iter().find(|d| d.recipient == rcpt).unwrap().id;
    let (lost, dead) = (id_of("lost@example.com"), id_of("dead@example.com"));

    // The job of dead@'s second attempt used up the queue's attempts...
    let key = domain::deliveries::attempt_key(dead, 2);
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    let job = Job::SendDelivery {
        delivery_id: dead,
        attempt: 2,
    };
    let account = app.account_id.parse().unwrap();
    queue::enqueue(&app.db, &job, &key, far, account)
        .await
        .unwrap();
    let backend = app.db.get_database_backend();
    app.db
        .execute_unprepared(&format!(
            "UPDATE {} SET status = 'Killed', last_result = '\"the SMTP pool exploded\"' \
             WHERE idempotency_key = '{key}'",
            queue::jobs_table(backend)
        ))
        .await
        .unwrap();
    // ...and both deliveries are left RETRYING, due an hour ago; lost@ has no job at all.
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Retrying),
        )
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::hours(1)),
        )
        .filter(delivery::Column::TicketId.eq(ticket_id))
        .exec(&app.db)
        .await
        .unwrap();

    let rows = wait_for_rows(&app, ticket_id, |rows| {
        rows.iter()
            .all(|d| matches!(d.status, DeliveryStatus::Sent | DeliveryStatus::Failed))
    })
    .await;
    let row = |id| rows.iter().find(|d| d.id == id).unwrap();
    assert_eq!(row(lost).status, DeliveryStatus::Sent, "{:?}", row(lost));
    assert_eq!(row(lost).attempts, 2, "{:?}", row(lost));
    assert_eq!(smtp.received_by("lost@example.com").len(), 2);
    assert_eq!(row(dead).status, DeliveryStatus::Failed, "{:?}", row(dead));
    let reason = row(dead).last_error.clone().unwrap_or_default();
    assert!(reason.contains("the SMTP pool exploded"), "{reason}");
    assert_eq!(
        smtp.received_by("dead@example.com").len(),
        1,
        "not sent again"
    );

    // A failed one can be put back by an operator, and goes out.
    let put_back = app
        .admin(
            "mutation($id: ID!) { retryDelivery(id: $id) { status } }",
            json!({ "id": dead.to_string() }),
        )
        .await;
    assert_eq!(put_back["retryDelivery"]["status"], "PENDING");
    wait_for_rows(&app, ticket_id, |rows| {
        rows.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    app.stop().await;
}

/// Three tickets opened while no worker runs: one's routing job is lost, one's is killed by
/// the queue, one's finished without routing it (as an older version's put-back for an
/// account's share left it). Without the sweep none would ever be routed, and all would wait in the backlog for ever.
async fn unrouted_tickets_without_a_live_job_are_routed(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some((app, step)) = sweeping_app(engine, &smtp, false, &["agent@example.com"]).await else {
        return;
    };
    let jobs = queue::jobs_table(app.db.get_database_backend());
    let mut tickets = Vec::new();
    for fate in [
        format!("DELETE FROM {jobs} WHERE idempotency_key = $KEY"),
        format!("UPDATE {jobs} SET status = 'Killed' WHERE idempotency_key = $KEY"),
        // Finished without routing it, as an older version's put-back for an account's share
        // left it.
        format!("UPDATE {jobs} SET status = 'Done' WHERE idempotency_key = $KEY"),
    ] {
        let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
        let id = uuid::Uuid::parse_str(opened["ticket"]["id"].as_str().unwrap()).unwrap();
        let key = domain::tickets::routing_key(id);
        let done = app
            .db
            .execute_unprepared(&fate.replace("$KEY", &format!("'{key}'")))
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1, "{fate}");
        tickets.push(id);
    }
    // Older than STUCK_DELIVERY_AFTER_MS when the worker's first sweep looks.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let workers = app.start_workers(1).await;
    for id in &tickets {
        let rows = wait_for_rows(&app, *id, |rows| {
            rows.len() == 1 && rows[0].status == DeliveryStatus::Sent
        })
        .await;
        assert_eq!(rows[0].recipient, "agent@example.com");
    }
    let routed = entity::ticket::Entity::find()
        .filter(entity::ticket::Column::RoutedAt.is_not_null())
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(routed.len(), 3);
    // Each mail once, however many sweep rounds passed meanwhile.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(smtp.received_by("agent@example.com").len(), 3);
    workers.stop().await;
    app.stop().await;
}

/// An app whose workers sweep every 300 ms for work stuck over a second, with a ticket step
/// (returned) routed to `emails` by a `*` rule.
async fn sweeping_app(
    engine: Engine,
    smtp: &TestSmtp,
    embedded_worker: bool,
    emails: &[&str],
) -> Option<(TestApp, String)> {
    let app = TestApp::spawn_with(engine, smtp, |c| {
        c.embedded_worker = embedded_worker;
        c.delivery.stuck_after = Duration::from_secs(1);
        c.delivery.sweep_interval = Duration::from_millis(300);
    })
    .await?;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    app.admin(
        crate::ops::CREATE_RULE,
        json!({ "tag": "*", "emails": emails }),
    )
    .await;
    Some((app, step))
}

/// The ticket's delivery rows once `done` holds (at most 15 s).
async fn wait_for_rows(
    app: &TestApp,
    ticket_id: uuid::Uuid,
    done: impl Fn(&[delivery::Model]) -> bool,
) -> Vec<delivery::Model> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = delivery::Entity::find()
            .filter(delivery::Column::TicketId.eq(ticket_id))
            .all(&app.db)
            .await
            .unwrap();
        if done(&rows) {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "still {rows:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Webhook deliveries left unfinished without a job: one whose next attempt's job was lost
/// gets a new one and is sent; one whose job died ends `FAILED` with the job's last result.
async fn webhook_deliveries_without_a_live_job_are_healed(engine: Engine) {
    use entity::webhook_delivery;
    let smtp = TestSmtp::start();
    let Some((app, step)) = sweeping_app(engine, &smtp, true, &["agent@example.com"]).await else {
        return;
    };
    let (url, received) = crate::webhooks::receiver("none").await;
    for _ in 0..2 {
        app.admin(
            crate::webhooks::CREATE_WEBHOOK,
            json!({ "url": url, "events": ["TICKET_OPENED"] }),
        )
        .await;
    }
    open_ticket(&app, &app.widget_key, &step, "hi").await;
    let rows = || async { webhook_delivery::Entity::find().all(&app.db).await.unwrap() };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while rows()
        .await
        .iter()
        .filter(|d| d.status == domain::vocab::WebhookStatus::Succeeded)
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhooks never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<uuid::Uuid> = rows().await.iter().map(|d| d.id).collect();
    let (lost, dead) = (ids[0], ids[1]);
    // The dead one's second attempt has a job that used up the queue's attempts...
    let key = domain::webhooks::attempt_key(dead, 2);
    let job = Job::SendWebhook {
        webhook_delivery_id: dead,
        attempt: 2,
    };
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    queue::enqueue(&app.db, &job, &key, far, app.account_id.parse().unwrap())
        .await
        .unwrap();
    let backend = app.db.get_database_backend();
    app.db
        .execute_unprepared(&format!(
            "UPDATE {} SET status = 'Killed', last_result = '\"the receiver pool exploded\"' \
             WHERE idempotency_key = '{key}'",
            queue::jobs_table(backend)
        ))
        .await
        .unwrap();
    // ...and both are left RETRYING, due an hour ago; the lost one has no job at all.
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(domain::vocab::WebhookStatus::Retrying),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::hours(1)),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let healed = loop {
        let now = rows().await;
        let state = |id| now.iter().find(|d| d.id == id).unwrap().clone();
        if state(lost).status == domain::vocab::WebhookStatus::Succeeded
            && state(dead).status == domain::vocab::WebhookStatus::Failed
        {
            break (state(lost), state(dead));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healed: {:?} {:?}",
            state(lost),
            state(dead)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(healed.0.attempts, 2, "{:?}", healed.0);
    assert!(
        healed
            .1
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("the receiver pool exploded"),
        "{:?}",
        healed.1
    );
    assert_eq!(
        received.lock().unwrap().len(),
        3,
        "two first attempts and the healed one"
    );
    app.stop().await;
}

/// A job a worker puts back for its account's share (`queue::postpone`) stays the same row
/// under the same key, waiting: apalis' acknowledgement no longer touches it, the sweep finds
/// it live and gives the ticket no second job, and it runs when due. Only the worker holding
/// the job can put it back.
async fn a_job_put_back_keeps_its_key_and_the_sweep_leaves_it_alone(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some((app, step)) = sweeping_app(engine, &smtp, false, &["agent@example.com"]).await else {
        return;
    };
    let backend = app.db.get_database_backend();
    let jobs = queue::jobs_table(backend);
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket_id = uuid::Uuid::parse_str(opened["ticket"]["id"].as_str().unwrap()).unwrap();
    let key = domain::tickets::routing_key(ticket_id);
    let account = uuid::Uuid::parse_str(&app.account_id).unwrap();
    // Taken by a worker, as apalis' fetch leaves it (two workers registered, as apalis does).
    let (workers_table, now) = match backend {
        sea_orm::DatabaseBackend::Postgres => ("apalis.workers", "now()"),
        _ => ("Workers", "strftime('%s', 'now')"),
    };
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO {workers_table} (id, worker_type, storage_name, layers, last_seen) \
             VALUES ('worker-a', '{q}', 'test', '', {now}), ('worker-b', '{q}', 'test', '', {now})",
            q = queue::QUEUE
        ))
        .await
        .unwrap();
    app.db
        .execute_unprepared(&format!(
            "UPDATE {jobs} SET status = 'Queued', lock_by = 'worker-a' WHERE idempotency_key = '{key}'"
        ))
        .await
        .unwrap();
    let id: String = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            format!("SELECT id FROM {jobs} WHERE idempotency_key = '{key}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();

    let later = Duration::from_secs(3);
    assert!(
        !queue::postpone(&app.db, &id, "worker-b", account, later)
            .await
            .unwrap(),
        "another worker put back a job it does not hold"
    );
    assert!(
        queue::postpone(&app.db, &id, "worker-a", account, later)
            .await
            .unwrap()
    );
    // apalis' lock of the job it handed out (apalis-sqlite may write it after the handler
    // ran) and its acknowledgement of the handler's return find no row any more.
    for late in [
        format!("UPDATE {jobs} SET status = 'Running', lock_by = 'worker-a' WHERE id = '{id}'"),
        format!("UPDATE {jobs} SET status = 'Done' WHERE id = '{id}'"),
    ] {
        let touched = app.db.execute_unprepared(&late).await.unwrap();
        assert_eq!(touched.rows_affected(), 0, "{late}");
    }
    assert_eq!(
        queue::job_states(&app.db, std::slice::from_ref(&key))
            .await
            .unwrap(),
        vec![queue::JobState::Live]
    );

    // The workers' sweep (every 300 ms, for work waiting over a second) runs several times
    // before the put-back job is due; it gives the ticket no job of its own.
    let workers = app.start_workers(1).await;
    let rows = wait_for_rows(&app, ticket_id, |rows| {
        rows.len() == 1 && rows[0].status == DeliveryStatus::Sent
    })
    .await;
    assert_eq!(rows[0].recipient, "agent@example.com");
    let keys: Vec<String> = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            format!("SELECT idempotency_key FROM {jobs} WHERE idempotency_key LIKE '{key}%'"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "idempotency_key").unwrap())
        .collect();
    assert_eq!(keys, vec![key], "the ticket got a second routing job");
    workers.stop().await;
    assert_eq!(smtp.received_by("agent@example.com").len(), 1);
    app.stop().await;
}
