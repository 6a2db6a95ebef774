//! Webhook deliveries' state machine: every change of a webhook delivery's state is written
//! here, as `deliveries` does for e-mails, with the same lease and backoff (`crate::lease`).
//!
//! ```text
//!  emit ──> PENDING + the job of attempt 1
//!  PENDING | RETRYING ──claim(n)──> SENDING(n)          (or a dead worker's SENDING(n), taken over)
//!  SENDING(n) ──2xx──> SUCCEEDED
//!  SENDING(n) ──408, 429, 5xx, no answer, n < max──> RETRYING + the job of attempt n+1
//!  SENDING(n) ──any other status, or n = max──> FAILED
//!  FAILED ──put back (an operator)──> PENDING + the job of attempt n+1, due now
//! ```
//!
//! Every attempt is kept (`webhook_attempts`), written with its outcome in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{webhook_attempt, webhook_delivery};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::infra::config::DeliveryConfig;
use crate::infra::queue::{self, Job};
use crate::lease::{self, Outcome};
use crate::vocab::WebhookStatus;
use crate::{Result, now};

/// What one request came back with.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status; `None` when no response came (refused, reset, timeout, refused by the
    /// address guard).
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub took: Duration,
}

/// The lease columns of a webhook delivery.
const LEASE: lease::Columns<webhook_delivery::Column> = lease::Columns {
    id: webhook_delivery::Column::Id,
    attempts: webhook_delivery::Column::Attempts,
    status: webhook_delivery::Column::Status,
    locked_until: webhook_delivery::Column::LockedUntil,
    updated_at: webhook_delivery::Column::UpdatedAt,
};

/// Claims webhook delivery `id` for attempt `attempt` until `until`; `None` when it is done,
/// deleted with its webhook, or another worker's (whose lease, if it dies, the re-queued job
/// takes over).
pub async fn claim(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: i32,
    until: DateTime<Utc>,
) -> Result<Option<webhook_delivery::Model>> {
    Ok(lease::claim::<webhook_delivery::Entity>(db, &LEASE, id, attempt, until).await?)
}

/// Records attempt `attempt` and its outcome: 2xx succeeds; 408, 429, 5xx and no answer are
/// retried while attempts are left (the next job in the same transaction); anything else
/// fails at once.
pub async fn record<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    policy: &DeliveryConfig,
    delivery: &webhook_delivery::Model,
    attempt: i32,
    reply: Reply,
) -> Result<Outcome> {
    let at = now();
    let succeeded = reply.status_code.is_some_and(|c| (200..300).contains(&c));
    let retryable = match reply.status_code {
        Some(_) if succeeded => false,
        Some(code) => code == 408 || code == 429 || code >= 500,
        None => true,
    };
    let error = reply.error.clone().or_else(|| {
        reply
            .status_code
            .filter(|_| !succeeded)
            .map(|c| format!("HTTP {c}"))
    });
    let (outcome, state, due) = if succeeded {
        (Outcome::Sent, WebhookStatus::Succeeded, None)
    } else if retryable && attempt < policy.webhook_max_attempts as i32 {
        let due = lease::retry_due(attempt, policy, at);
        (Outcome::Retrying(due), WebhookStatus::Retrying, Some(due))
    } else {
        (Outcome::Failed, WebhookStatus::Failed, None)
    };
    let txn = crate::infra::db::begin(db).await?;
    let written = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(state))
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(error.clone()),
        )
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(due))
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::DeliveredAt,
            Expr::value(succeeded.then_some(at)),
        )
        .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(at))
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .filter(webhook_delivery::Column::Status.eq(WebhookStatus::Sending))
        .filter(webhook_delivery::Column::Attempts.eq(attempt))
        .exec(&txn)
        .await?;
    if written.rows_affected == 0 {
        // Our lease ran out and another worker took over: its result stands.
        return Ok(Outcome::Skipped);
    }
    webhook_attempt::ActiveModel {
        id: Set(Uuid::now_v7()),
        webhook_delivery_id: Set(delivery.id),
        attempt: Set(attempt),
        status_code: Set(reply.status_code.map(i32::from)),
        error: Set(error),
        duration_ms: Set(i32::try_from(reply.took.as_millis()).unwrap_or(i32::MAX)),
        at: Set(at),
    }
    .insert(&txn)
    .await?;
    if let Some(due) = due {
        queue::enqueue(
            &txn,
            &Job::SendWebhook {
                webhook_delivery_id: delivery.id,
                attempt: attempt + 1,
            },
            &super::attempt_key(delivery.id, attempt + 1),
            due,
            delivery.account_id,
        )
        .await?;
    }
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(outcome)
}

/// Puts a `FAILED` webhook delivery back for one more attempt, due now (in the caller's
/// transaction); the row as it is then, or `None` when it is gone. A delivery in any other
/// state is left as it is (the caller says why).
pub async fn put_back(
    txn: &impl ConnectionTrait,
    d: &webhook_delivery::Model,
) -> Result<Option<webhook_delivery::Model>> {
    let at = now();
    let reopened = lease::reopen::<webhook_delivery::Entity>(
        txn,
        &LEASE,
        webhook_delivery::Column::NextAttemptAt,
        d.id,
        at,
    )
    .await?;
    if reopened {
        let attempt = d.attempts + 1;
        queue::enqueue(
            txn,
            &Job::SendWebhook {
                webhook_delivery_id: d.id,
                attempt,
            },
            &lease::put_back_key(&super::attempt_key(d.id, attempt), at),
            at,
            d.account_id,
        )
        .await?;
    }
    Ok(webhook_delivery::Entity::find_by_id(d.id).one(txn).await?)
}
