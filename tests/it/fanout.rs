//! A ticket for many recipients: routing writes its deliveries in statements each engine
//! accepts (SQLite takes at most 32,766 parameters, PostgreSQL 65,535), and every recipient
//! gets the mail once.

use std::time::Duration;

use domain::vocab::DeliveryStatus;
use entity::delivery;
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

/// 40 rules of 50 addresses each: more rows than one multi-row `INSERT` of deliveries holds on
/// SQLite (17 columns a row).
const RULES: usize = 40;
const PER_RULE: usize = 50;

on_both_engines!(a_ticket_reaches_two_thousand_recipients);

async fn a_ticket_reaches_two_thousand_recipients(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "orders", &[]).await;
    for r in 0..RULES {
        let emails: Vec<String> = (0..PER_RULE)
            .map(|i| format!("agent-{r}-{i}@example.com"))
            .collect();
        app.admin(
            crate::ops::CREATE_RULE,
            json!({ "tag": if r % 2 == 0 { "orders" } else { "*" }, "emails": emails }),
        )
        .await;
    }
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let ticket_id = uuid::Uuid::parse_str(opened["ticket"]["id"].as_str().unwrap()).unwrap();
    let total = (RULES * PER_RULE) as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent = delivery::Entity::find()
            .filter(delivery::Column::TicketId.eq(ticket_id))
            .filter(delivery::Column::Status.eq(DeliveryStatus::Sent))
            .count(&app.db)
            .await
            .unwrap();
        if sent == total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sent} of {total} sent"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = delivery::Entity::find()
        .filter(delivery::Column::TicketId.eq(ticket_id))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(all, total, "one delivery per recipient");
    assert_eq!(smtp.received().len() as u64, total, "each mail once");
    crate::operations::counts_match_rows(&app).await;
    app.stop().await;
}
