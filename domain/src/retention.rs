//! What the service keeps, and for how long. Every worker deletes, at its start and every
//! `SWEEP_INTERVAL_MS`, finished queue jobs older than `JOB_RETENTION_DAYS`, conversations
//! idle for longer than `CONVERSATION_RETENTION_DAYS` (tickets keep their own copy of the
//! transcript), deleted flows once no conversation is left on their published versions (with
//! those versions), and, for accounts that set a ticket retention, their finished tickets
//! (routed, and every delivery ended) older than it, with their deliveries and finished
//! webhook deliveries. In batches of short statements, so SQLite's one writer is never held
//! long, and without `VACUUM FULL`: freed space is reused by new rows.

use std::time::Duration;

use entity::{account, conversation, flow, ticket, webhook_delivery};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::infra::queue;
use crate::vocab::{DeliveryStatus, WebhookStatus};
use crate::{Result, now};

/// Rows one statement deletes.
pub const BATCH: u64 = 1_000;
/// Statements of each kind one run makes at most; what is left waits for the next run.
pub const MAX_BATCHES: u32 = 100;

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub jobs: u64,
    pub conversations: u64,
    /// Finished tickets (open or closed) of accounts with a ticket retention (their deliveries went with them).
    pub tickets: u64,
    /// Deleted flows whose versions no conversation runs on any more (the versions went with
    /// them).
    pub flows: u64,
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
    let jobs_before = before(jobs_after);
    let jobs =
        in_batches(|| async { Ok(queue::delete_finished(db, jobs_before, BATCH).await?) }).await?;
    // Their lines go with them (foreign key); tickets keep their own copy of the transcript.
    let idle =
        Condition::all().add(conversation::Column::LastActivityAt.lt(before(conversations_after)));
    let conversations = in_batches(|| {
        delete_batch::<conversation::Entity>(db, conversation::Column::Id, idle.clone())
    })
    .await?;
    // After the conversations: a deleted flow goes with the last conversation on it.
    let unused = Condition::all().add(Expr::cust(crate::flows::DELETED_AND_UNUSED));
    let flows =
        in_batches(|| delete_batch::<flow::Entity>(db, flow::Column::Id, unused.clone())).await?;
    Ok(Deleted {
        jobs,
        conversations,
        tickets: delete_closed_tickets(db).await?,
        flows,
    })
}

/// Runs `batch` (one short statement's deletions, returning how many) until one deletes
/// fewer than [`BATCH`], at most [`MAX_BATCHES`] times; returns how many in all.
async fn in_batches<F, Fut>(mut batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut deleted = 0;
    for _ in 0..MAX_BATCHES {
        let n = batch().await?;
        deleted += n;
        if n < BATCH {
            break;
        }
        // Let the writers the worker exists for go first.
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

/// Deletes at most [`BATCH`] rows of `E` matching `matching`: their ids first (a `LIMIT`
/// both engines take), then those still matching; returns how many went.
async fn delete_batch<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id: E::Column,
    matching: Condition,
) -> Result<u64> {
    let ids: Vec<Uuid> = E::find()
        .select_only()
        .column(id)
        .filter(matching.clone())
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(E::delete_many()
        .filter(id.is_in(ids))
        .filter(matching)
        .exec(db)
        .await?
        .rows_affected)
}

/// For each account with a ticket retention, deletes its finished tickets older than it (with
/// their deliveries, by the foreign key) and its finished webhook deliveries as old.
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
         WHERE d.ticket_id = tickets.id AND d.status NOT IN ('{}', '{}', '{}'))",
        DeliveryStatus::Sent.as_str(),
        DeliveryStatus::Failed.as_str(),
        DeliveryStatus::Cancelled.as_str()
    );
    let mut deleted = 0;
    for (account_id, days) in accounts {
        let before = now() - chrono::Duration::days(i64::from(days));
        let old_closed = Condition::all()
            .add(ticket::Column::AccountId.eq(account_id))
            .add(ticket::Column::CreatedAt.lt(before))
            .add(Expr::cust(closed.clone()));
        deleted += in_batches(|| {
            delete_batch::<ticket::Entity>(db, ticket::Column::Id, old_closed.clone())
        })
        .await?;
        let old_finished = Condition::all()
            .add(webhook_delivery::Column::AccountId.eq(account_id))
            .add(webhook_delivery::Column::CreatedAt.lt(before))
            .add(
                webhook_delivery::Column::Status
                    .is_in([WebhookStatus::Succeeded, WebhookStatus::Failed]),
            );
        in_batches(|| {
            delete_batch::<webhook_delivery::Entity>(
                db,
                webhook_delivery::Column::Id,
                old_finished.clone(),
            )
        })
        .await?;
    }
    Ok(deleted)
}
