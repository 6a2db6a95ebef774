//! What the service keeps, and for how long. Every worker deletes, at its start and every
//! `SWEEP_INTERVAL_MS`, finished queue jobs older than `JOB_RETENTION_DAYS`, conversations
//! idle for longer than `CONVERSATION_RETENTION_DAYS` (tickets keep their own copy of the
//! transcript), and, for accounts that set a ticket retention, their closed tickets (routed,
//! and every delivery ended) older than it, with their deliveries and finished webhook deliveries. In batches of short statements, so SQLite's one writer is never held long,
//! and without `VACUUM FULL`: freed space is reused by new rows.

use std::time::Duration;

use entity::{account, ticket, webhook_delivery};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::infra::queue;
use crate::vocab::{DeliveryStatus, WebhookStatus};
use crate::{Result, conversations, now};

/// Rows one statement deletes.
pub const BATCH: u64 = 1_000;
/// Statements of each kind one run makes at most; what is left waits for the next run.
pub const MAX_BATCHES: u32 = 100;

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub jobs: u64,
    pub conversations: u64,
    /// Closed tickets of accounts with a ticket retention (their deliveries went with them).
    pub tickets: u64,
}

/// Deletes what the retention periods let go.
pub async fn apply(
    db: &impl ConnectionTrait,
    jobs_after: Duration,
    conversations_after: Duration,
) -> Result<Deleted> {
    let before = |after: Duration| {
        now() - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(36_500))
    };
    let mut deleted = Deleted::default();
    let jobs_before = before(jobs_after);
    for _ in 0..MAX_BATCHES {
        let n = queue::delete_finished(db, jobs_before, BATCH).await?;
        deleted.jobs += n;
        if n < BATCH {
            break;
        }
        // Let the writers the worker exists for go first.
        tokio::task::yield_now().await;
    }
    let conversations_before = before(conversations_after);
    for _ in 0..MAX_BATCHES {
        let n = conversations::delete_idle(db, conversations_before, BATCH).await?;
        deleted.conversations += n;
        if n < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    deleted.tickets = delete_closed_tickets(db).await?;
    Ok(deleted)
}

/// For each account with a ticket retention, deletes its tickets older than it whose
/// deliveries have all ended (with them, by the foreign key), and its finished webhook
/// deliveries as old.
async fn delete_closed_tickets(db: &impl ConnectionTrait) -> Result<u64> {
    let accounts: Vec<(Uuid, i32)> = account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .column(account::Column::TicketRetentionDays)
        .filter(account::Column::TicketRetentionDays.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    // Closed: routed, and every delivery ended. Checked again by the DELETE itself, so a
    // delivery put back meanwhile keeps its ticket.
    let closed = format!(
        "tickets.routed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d \
         WHERE d.ticket_id = tickets.id AND d.status NOT IN ('{}', '{}'))",
        DeliveryStatus::Sent.as_str(),
        DeliveryStatus::Failed.as_str()
    );
    let mut deleted = 0;
    for (account_id, days) in accounts {
        let before = now() - chrono::Duration::days(i64::from(days));
        for _ in 0..MAX_BATCHES {
            let ids: Vec<Uuid> = ticket::Entity::find()
                .select_only()
                .column(ticket::Column::Id)
                .filter(ticket::Column::AccountId.eq(account_id))
                .filter(ticket::Column::CreatedAt.lt(before))
                .filter(Expr::cust(closed.clone()))
                .limit(BATCH)
                .into_tuple()
                .all(db)
                .await?;
            let n = ids.len() as u64;
            if n > 0 {
                deleted += ticket::Entity::delete_many()
                    .filter(ticket::Column::Id.is_in(ids))
                    .filter(Expr::cust(closed.clone()))
                    .exec(db)
                    .await?
                    .rows_affected;
            }
            if n < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        for _ in 0..MAX_BATCHES {
            let ids: Vec<Uuid> = webhook_delivery::Entity::find()
                .select_only()
                .column(webhook_delivery::Column::Id)
                .filter(webhook_delivery::Column::AccountId.eq(account_id))
                .filter(webhook_delivery::Column::CreatedAt.lt(before))
                .filter(
                    webhook_delivery::Column::Status
                        .is_in([WebhookStatus::Succeeded, WebhookStatus::Failed]),
                )
                .limit(BATCH)
                .into_tuple()
                .all(db)
                .await?;
            let n = ids.len() as u64;
            if n > 0 {
                webhook_delivery::Entity::delete_many()
                    .filter(webhook_delivery::Column::Id.is_in(ids))
                    .exec(db)
                    .await?;
            }
            if n < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(deleted)
}
