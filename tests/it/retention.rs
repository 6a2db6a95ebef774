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
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.delivery.sweep_interval = Duration::from_millis(300);
    })
    .await
    else {
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
    app.db
        .execute_unprepared(&format!(
            "UPDATE {jobs} SET done_at = {eight_days_ago} WHERE status = 'Done'"
        ))
        .await
        .unwrap();
    let old_jobs = count(&app, &finished).await;
    // A job finished just now stays.
    crate::ticket_path::open_ticket(&app, &app.widget_key, &step, "again").await;
    // And the first conversation has been idle for 31 days.
    let old_id = uuid::Uuid::parse_str(&old_conversation).unwrap();
    conversation::Entity::update_many()
        .col_expr(
            conversation::Column::LastActivityAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(31)),
        )
        .filter(conversation::Column::Id.eq(old_id))
        .exec(&app.db)
        .await
        .unwrap();
    let lines_of = |id: uuid::Uuid| {
        conversation_message::Entity::find()
            .filter(conversation_message::Column::ConversationId.eq(id))
            .count(&app.db)
    };
    assert!(lines_of(old_id).await.unwrap() > 0);

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
