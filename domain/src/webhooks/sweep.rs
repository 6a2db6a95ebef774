//! The webhook sweep: webhook deliveries left unfinished with no job that will finish them (a
//! job lost, or dead after the queue's attempts) are given a new job, or ended `FAILED` with
//! the reason, as `deliveries::sweep` does for e-mails. Every worker runs it each maintenance
//! round.

use chrono::{DateTime, Utc};
use entity::webhook_delivery;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::attempt_key;
use crate::infra::queue::{self, Job};
use crate::lease::{
    Jobs, SWEEP_BATCH, Swept, attempt_to_heal, grace_and_round, live_keys, next_after,
};
use crate::vocab::WebhookStatus;
use crate::{Result, now};

/// An unfinished webhook delivery as the sweep reads it.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
struct Stuck {
    id: Uuid,
    account_id: Uuid,
    status: WebhookStatus,
    attempts: i32,
    updated_at: DateTime<Utc>,
}

/// The idempotency key of the job the sweep gives attempt `attempt` in sweep round `round`.
fn sweep_key(id: Uuid, attempt: i32, round: i64) -> String {
    crate::lease::sweep_key(&attempt_key(id, attempt), round)
}

/// Webhook deliveries unfinished since before `before`: `SENDING` whose lease ended,
/// `RETRYING` whose next attempt was due, `PENDING`.
fn unfinished_since(before: DateTime<Utc>) -> Condition {
    use webhook_delivery::Column as C;
    Condition::any()
        .add(
            Condition::all()
                .add(C::Status.eq(WebhookStatus::Sending))
                .add(C::LockedUntil.lt(before)),
        )
        .add(
            Condition::all()
                .add(C::Status.eq(WebhookStatus::Retrying))
                .add(C::NextAttemptAt.lt(before)),
        )
        .add(
            Condition::all()
                .add(C::Status.eq(WebhookStatus::Pending))
                .add(C::UpdatedAt.lt(before)),
        )
}

/// Finds webhook deliveries left unfinished for `stuck_after` whose jobs (the attempt's, an
/// operator's put-back's, and the sweep's own of this round and the last) will never run, and heals each: a new job when
/// the old one is gone, `FAILED` with the job's last result when it died. A job put back for
/// its account's share keeps its key (`queue::postpone`), so its delivery is left to it; the
/// deliveries of accounts whose sending is paused are left alone.
/// Visits at most [`SWEEP_BATCH`] deliveries after `after`.
pub async fn sweep(
    db: &impl ConnectionTrait,
    stuck_after: std::time::Duration,
    after: Option<Uuid>,
) -> Result<Swept> {
    let at = now();
    let (grace, round) = grace_and_round(at, stuck_after);
    let before = at - grace;
    let Some(unpaused) = crate::pauses::Snapshot::read(db)
        .await?
        .unpaused(webhook_delivery::Column::AccountId)
    else {
        return Ok(Swept::default());
    };
    let mut page = webhook_delivery::Entity::find()
        .select_only()
        .columns([
            webhook_delivery::Column::Id,
            webhook_delivery::Column::AccountId,
            webhook_delivery::Column::Status,
            webhook_delivery::Column::Attempts,
            webhook_delivery::Column::UpdatedAt,
        ])
        .filter(unfinished_since(before))
        .filter(unpaused)
        // Spelled as the partial index's predicate (migration 21), so both engines use it.
        .filter(Expr::cust(
            "webhook_deliveries.status IN ('PENDING', 'SENDING', 'RETRYING')",
        ));
    if let Some(after) = after {
        page = page.filter(webhook_delivery::Column::Id.gt(after));
    }
    let stuck: Vec<Stuck> = page
        .order_by_asc(webhook_delivery::Column::Id)
        .limit(SWEEP_BATCH)
        .into_model()
        .all(db)
        .await?;
    let mut swept = Swept {
        next: next_after(&stuck, |d| d.id),
        ..Swept::default()
    };
    for d in stuck {
        let attempt = attempt_to_heal(d.status == WebhookStatus::Sending, d.attempts);
        let keys = live_keys(
            &attempt_key(d.id, attempt),
            round,
            (d.status == WebhookStatus::Pending).then_some(d.updated_at),
        );
        let states = match queue::job_states(db, &keys).await {
            Ok(states) => states,
            Err(error) => {
                tracing::error!(webhook_delivery_id = %d.id, %error, "webhook sweep: cannot read its jobs");
                continue;
            }
        };
        match Jobs::of(&states) {
            Jobs::Live => {}
            Jobs::Dead(reason) => {
                // Only if it is still as the sweep saw it: a worker that took it over keeps it.
                let written = webhook_delivery::Entity::update_many()
                    .col_expr(
                        webhook_delivery::Column::Status,
                        Expr::value(WebhookStatus::Failed),
                    )
                    .col_expr(webhook_delivery::Column::LastError, Expr::value(reason))
                    .col_expr(
                        webhook_delivery::Column::NextAttemptAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(
                        webhook_delivery::Column::LockedUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(at))
                    .filter(webhook_delivery::Column::Id.eq(d.id))
                    .filter(webhook_delivery::Column::Status.eq(d.status))
                    .filter(webhook_delivery::Column::Attempts.eq(d.attempts))
                    .filter(unfinished_since(before))
                    .exec(db)
                    .await?;
                if written.rows_affected == 1 {
                    tracing::warn!(webhook_delivery_id = %d.id, attempt, "swept: job dead, webhook delivery failed");
                    swept.failed += 1;
                }
            }
            Jobs::Gone => {
                queue::enqueue(
                    db,
                    &Job::SendWebhook {
                        webhook_delivery_id: d.id,
                        attempt,
                    },
                    &sweep_key(d.id, attempt, round),
                    at,
                    d.account_id,
                )
                .await?;
                tracing::warn!(webhook_delivery_id = %d.id, attempt, "swept: no live job; this round's job queued");
                swept.requeued += 1;
            }
        }
    }
    Ok(swept)
}
