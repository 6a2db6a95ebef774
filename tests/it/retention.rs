//! Storage that stays bounded: workers delete finished queue jobs older than
//! `JOB_RETENTION_DAYS` and conversations idle longer than `CONVERSATION_RETENTION_DAYS`
//! (with their lines), and keep everything younger. Tickets keep their own copy.

use std::time::Duration;

use domain::infra::queue;
use entity::{conversation, conversation_message};
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};
use serde_json::json;

use crate::conversation::{published_bot, widget};
use crate::ops::start_conversation;

on_both_engines!(old_jobs_and_idle_conversations_are_deleted);

async fn old_jobs_and_idle_conversations_are_deleted(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = spawn_maintaining_often(engine, &smtp).await else {
        return;
    };
    let (flow_id, first) = published_bot(&app).await;
    let old_conversation = first["conversation"]["id"].as_str().unwrap().to_owned();
    let second = widget(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    let kept_conversation = second["conversation"]["id"].as_str().unwrap().to_owned();
    let (_, step) = crate::ticket_path::flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    crate::ticket_path::open_ticket(&app, &app.widget_key, &step, "hi").await;

    // Wait for the routing job to finish, then make every finished job 8 days old.
    let backend = app.db.get_database_backend();
    let jobs = queue::jobs_table(backend);
    let finished = format!("SELECT COUNT(*) AS n FROM {jobs} WHERE status = 'Done'");
    wait(|| async { count(&app, &finished).await >= 1 }).await;
    let eight_days_ago = match backend {
        DatabaseBackend::Postgres => "now() - interval '8 days'",
        _ => "strftime('%s', 'now') - 8 * 86400",
    };
    // Counted before they are made old: the workers' next round may delete them at once.
    let old_jobs = count(&app, &finished).await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE {jobs} SET done_at = {eight_days_ago} WHERE status = 'Done'"
        ))
        .await
        .unwrap();
    // A job finished just now stays.
    crate::ticket_path::open_ticket(&app, &app.widget_key, &step, "again").await;
    // And the first conversation (which has lines) has been idle for 31 days. Its lines are
    // counted before it is made old: the workers' next round may delete it at once.
    let old_id = uuid::Uuid::parse_str(&old_conversation).unwrap();
    let lines_of = |id: uuid::Uuid| {
        conversation_message::Entity::find()
            .filter(conversation_message::Column::ConversationId.eq(id))
            .count(&app.db)
    };
    assert!(lines_of(old_id).await.unwrap() > 0);
    conversation::Entity::update_many()
        .col_expr(
            conversation::Column::LastActivityAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(31)),
        )
        .filter(conversation::Column::Id.eq(old_id))
        .exec(&app.db)
        .await
        .unwrap();

    let gone = format!(
        "SELECT COUNT(*) AS n FROM {jobs} WHERE status = 'Done' AND done_at < {}",
        match backend {
            DatabaseBackend::Postgres => "now() - interval '7 days'",
            _ => "strftime('%s', 'now') - 7 * 86400",
        }
    );
    wait(|| async {
        count(&app, &gone).await == 0
            && conversation::Entity::find_by_id(old_id)
                .one(&app.db)
                .await
                .unwrap()
                .is_none()
    })
    .await;
    assert!(old_jobs >= 1);
    wait(|| async { count(&app, &finished).await >= 1 }).await;
    assert_eq!(lines_of(old_id).await.unwrap(), 0, "its lines went with it");
    let kept = uuid::Uuid::parse_str(&kept_conversation).unwrap();
    assert!(
        conversation::Entity::find_by_id(kept)
            .one(&app.db)
            .await
            .unwrap()
            .is_some(),
        "a recent conversation stays"
    );
    app.stop().await;
}

/// The app with workers that run their maintenance round (retention) every 300 ms.
async fn spawn_maintaining_often(engine: Engine, smtp: &TestSmtp) -> Option<TestApp> {
    TestApp::spawn_with(engine, smtp, |c| {
        c.delivery.sweep_interval = Duration::from_millis(300);
    })
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn wait<F, Fut>(done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "not within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_engines!(an_accounts_closed_tickets_go_after_its_retention);

async fn an_accounts_closed_tickets_go_after_its_retention(engine: Engine) {
    const SET: &str =
        "mutation($days: Int) { setTicketRetention(days: $days) { ticketRetentionDays } }";
    let smtp = TestSmtp::start();
    let Some(app) = spawn_maintaining_often(engine, &smtp).await else {
        return;
    };
    let refused = app
        .gql(Some(&app.admin_key), SET, json!({ "days": 0 }))
        .await;
    assert_eq!(
        integration_tests::error_code(&refused),
        "BAD_USER_INPUT",
        "{refused:#}"
    );
    let (_, step) = crate::ticket_path::flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    app.admin(
        crate::ops::CREATE_RULE,
        json!({ "tag": "*", "emails": ["agent@example.com"] }),
    )
    .await;
    let mut ids = Vec::new();
    for message in ["closed", "still retrying", "recent", "never routed"] {
        let opened = crate::ticket_path::open_ticket(&app, &app.widget_key, &step, message).await;
        ids.push(uuid::Uuid::parse_str(opened["ticket"]["id"].as_str().unwrap()).unwrap());
    }
    let sent = || async {
        entity::delivery::Entity::find()
            .filter(entity::delivery::Column::Status.eq(domain::vocab::DeliveryStatus::Sent))
            .count(&app.db)
            .await
            .unwrap()
    };
    wait(|| async { sent().await == 4 }).await;
    // The second one's delivery is not over yet (a retry due tomorrow).
    entity::delivery::Entity::update_many()
        .col_expr(
            entity::delivery::Column::Status,
            Expr::value(domain::vocab::DeliveryStatus::Retrying),
        )
        .col_expr(
            entity::delivery::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() + chrono::Duration::days(1)),
        )
        .filter(entity::delivery::Column::TicketId.eq(ids[1]))
        .exec(&app.db)
        .await
        .unwrap();
    entity::ticket::Entity::update_many()
        .col_expr(
            entity::ticket::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(2)),
        )
        .filter(entity::ticket::Column::Id.is_in([ids[0], ids[1], ids[3]]))
        .exec(&app.db)
        .await
        .unwrap();
    // The fourth looks as if its routing job has not run yet: no deliveries, not routed, its
    // job due tomorrow (so the workers' sweep leaves it be; no worker holds it, so a late
    // acknowledgement of its run cannot mark it done again).
    let backend = app.db.get_database_backend();
    let tomorrow = match backend {
        DatabaseBackend::Postgres => "now() + interval '1 day'",
        _ => "CAST(strftime('%s', 'now') AS INTEGER) + 86400",
    };
    let delayed = app
        .db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE {} SET status = 'Pending', run_at = {tomorrow}, done_at = NULL, lock_by = NULL \
                 WHERE idempotency_key = {}",
                queue::jobs_table(backend),
                if backend == DatabaseBackend::Postgres {
                    "$1"
                } else {
                    "?"
                }
            ),
            [domain::tickets::routing_key(ids[3]).into()],
        ))
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(delayed, 1, "its routing job was found");
    entity::delivery::Entity::delete_many()
        .filter(entity::delivery::Column::TicketId.eq(ids[3]))
        .exec(&app.db)
        .await
        .unwrap();
    entity::ticket::Entity::update_many()
        .col_expr(
            entity::ticket::Column::RoutedAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(entity::ticket::Column::Id.eq(ids[3]))
        .exec(&app.db)
        .await
        .unwrap();
    let set = app.admin(SET, json!({ "days": 1 })).await;
    assert_eq!(set["setTicketRetention"]["ticketRetentionDays"], 1);

    let db = &app.db;
    let exists = |id: uuid::Uuid| async move {
        entity::ticket::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .is_some()
    };
    wait(|| async { !exists(ids[0]).await }).await;
    let deliveries_of_closed = entity::delivery::Entity::find()
        .filter(entity::delivery::Column::TicketId.eq(ids[0]))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(deliveries_of_closed, 0, "its deliveries went with it");
    assert!(exists(ids[1]).await, "a delivery not over keeps its ticket");
    assert!(exists(ids[2]).await, "a recent ticket stays");
    assert!(exists(ids[3]).await, "a ticket never routed is not closed");
    let off = app.admin(SET, json!({ "days": null })).await;
    assert!(off["setTicketRetention"]["ticketRetentionDays"].is_null());
    crate::operations::counts_match_rows(&app).await;
    app.stop().await;
}
