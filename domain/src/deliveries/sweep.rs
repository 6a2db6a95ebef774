//! The sweep: deliveries left unfinished with no job that will finish them (a job lost, or
//! dead after the queue's attempts) are found by their jobs' idempotency keys and given a new
//! job, or ended `FAILED` with the reason. Tickets left unrouted with no live routing job get
//! a new one. Every worker runs both each maintenance round.

use chrono::{DateTime, Utc};
use entity::{delivery, ticket};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::{FailedDelivery, after_key, attempt_key, emit_failed, ending, sweep_key};
use crate::infra::queue::{self, Job};
use crate::lease::{
    Jobs, SWEEP_BATCH, Swept, attempt_to_heal, grace_and_round, live_keys, next_after,
};
use crate::vocab::DeliveryStatus;
use crate::{Result, now};

/// An unfinished delivery as the sweep reads it: only the columns it needs, so a row with an
/// unreadable value elsewhere cannot stop the sweep.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
struct Stuck {
    id: Uuid,
    account_id: Uuid,
    ticket_id: Uuid,
    recipient: String,
    recipient_key: String,
    status: DeliveryStatus,
    attempts: i32,
    locked_until: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

/// Deliveries unfinished since before `before`: `SENDING` whose lease ended, `RETRYING` whose
/// next attempt was due, `PENDING`.
fn unfinished_since(before: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(
            sea_orm::Condition::all()
                .add(delivery::Column::Status.eq(DeliveryStatus::Sending))
                .add(delivery::Column::LockedUntil.lt(before)),
        )
        .add(
            sea_orm::Condition::all()
                .add(delivery::Column::Status.eq(DeliveryStatus::Retrying))
                .add(delivery::Column::NextAttemptAt.lt(before)),
        )
        .add(
            sea_orm::Condition::all()
                .add(delivery::Column::Status.eq(DeliveryStatus::Pending))
                .add(delivery::Column::UpdatedAt.lt(before)),
        )
}

/// Finds deliveries left unfinished with no job that will finish them, and heals each: a new
/// job when the old one is gone, `FAILED` with the reason when it died. Work of accounts whose
/// sending is paused is left alone (`pauses::Snapshot::unpaused`). Unfinished means
/// [`unfinished_since`] `stuck_after` ago; the jobs that could still make the attempt are
/// looked up by their idempotency keys (the attempt's, a lease's look-again, the routing
/// job's for a first attempt, a put-back's, and the sweep's own). A delivery whose job only
/// runs late is left alone, and a second job for an attempt is harmless (the claim lets one
/// make it). Visits at most [`SWEEP_BATCH`] deliveries after `after`.
pub async fn sweep<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    stuck_after: std::time::Duration,
    after: Option<Uuid>,
) -> Result<Swept> {
    let at = now();
    let (grace, round) = grace_and_round(at, stuck_after);
    let before = at - grace;
    let Some(unpaused) = crate::pauses::Snapshot::read(db)
        .await?
        .unpaused(delivery::Column::AccountId)
    else {
        return Ok(Swept::default());
    };
    let mut page = delivery::Entity::find()
        .select_only()
        .columns([
            delivery::Column::Id,
            delivery::Column::AccountId,
            delivery::Column::TicketId,
            delivery::Column::Recipient,
            delivery::Column::RecipientKey,
            delivery::Column::Status,
            delivery::Column::Attempts,
            delivery::Column::LockedUntil,
            delivery::Column::UpdatedAt,
        ])
        .filter(unfinished_since(before))
        .filter(unpaused);
    if let Some(after) = after {
        page = page.filter(delivery::Column::Id.gt(after));
    }
    let stuck: Vec<Stuck> = page
        .order_by_asc(delivery::Column::Id)
        .limit(SWEEP_BATCH)
        .into_model()
        .all(db)
        .await?;
    let mut swept = Swept {
        next: next_after(&stuck, |d| d.id),
        ..Swept::default()
    };
    for d in stuck {
        let attempt = attempt_to_heal(d.status == DeliveryStatus::Sending, d.attempts);
        let mut keys = live_keys(
            &attempt_key(d.id, attempt),
            round,
            (d.status == DeliveryStatus::Pending).then_some(d.updated_at),
        );
        if let Some(until) = d.locked_until {
            keys.push(after_key(d.id, attempt, until));
        }
        if attempt == 1 {
            keys.push(crate::tickets::routing_key(d.ticket_id));
        }
        let states = match queue::job_states(db, &keys).await {
            Ok(states) => states,
            Err(error) => {
                // One delivery's jobs cannot be read: it waits, the others are healed.
                tracing::error!(delivery_id = %d.id, %error, "sweep: cannot read its jobs");
                continue;
            }
        };
        match Jobs::of(&states) {
            Jobs::Live => {}
            Jobs::Dead(reason) => {
                if give_up(db, &d, before, reason).await? {
                    tracing::warn!(delivery_id = %d.id, attempt, "swept: job dead, delivery failed");
                    swept.failed += 1;
                }
            }
            Jobs::Gone => {
                queue::enqueue(
                    db,
                    &Job::SendDelivery {
                        delivery_id: d.id,
                        attempt,
                    },
                    &sweep_key(d.id, attempt, round),
                    at,
                    d.account_id,
                )
                .await?;
                tracing::warn!(delivery_id = %d.id, attempt, "swept: no live job; this round's job queued");
                swept.requeued += 1;
            }
        }
    }
    Ok(swept)
}

/// Ends a delivery `FAILED` with `reason` if it is still unfinished as the sweep saw it (same
/// state and attempt, and still past its lease or due time: a worker that has just taken it
/// over keeps it), with the `delivery.failed` webhook in the same transaction. Returns
/// whether it was written.
async fn give_up<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    d: &Stuck,
    before: DateTime<Utc>,
    reason: String,
) -> Result<bool> {
    let txn = crate::infra::db::begin(db).await?;
    let written = ending(delivery::Entity::update_many())
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(delivery::Column::LastError, Expr::value(reason.clone()))
        .filter(delivery::Column::Id.eq(d.id))
        .filter(delivery::Column::Status.eq(d.status))
        .filter(delivery::Column::Attempts.eq(d.attempts))
        .filter(unfinished_since(before))
        .exec(&txn)
        .await?;
    if written.rows_affected == 0 {
        return Ok(false);
    }
    let failed = FailedDelivery {
        id: d.id,
        account_id: d.account_id,
        ticket_id: d.ticket_id,
        recipient: &d.recipient,
        recipient_key: &d.recipient_key,
    };
    emit_failed(&txn, failed, d.attempts, reason).await?;
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(true)
}

/// Whether the ticket has been routed (or is gone).
async fn routed(db: &impl ConnectionTrait, ticket_id: Uuid) -> Result<bool> {
    let routed_at: Option<Option<DateTime<Utc>>> = ticket::Entity::find_by_id(ticket_id)
        .select_only()
        .column(ticket::Column::RoutedAt)
        .into_tuple()
        .one(db)
        .await?;
    Ok(routed_at.is_none_or(|at| at.is_some()))
}

/// What one sweep of unrouted tickets did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweptTickets {
    /// Tickets unrouted with no live routing job (lost, or dead after the queue's attempts):
    /// each was given a new one, due now.
    pub requeued: usize,
    /// Where the next sweep goes on: after this ticket (opened at, id), oldest first, a page
    /// per round, so a backlog of tickets whose jobs only run late never hides those behind
    /// it; `None` starts again from the oldest.
    pub next: Option<(DateTime<Utc>, Uuid)>,
}

/// How many sweep rounds back a ticket's earlier sweep jobs are looked for.
const ROUTE_SWEEP_ROUNDS: i64 = 6;

/// The idempotency key of the routing job the sweep gives a ticket in sweep round `round`.
fn route_sweep_key(ticket_id: Uuid, round: i64) -> String {
    format!("{}:sweep:{round}", crate::tickets::routing_key(ticket_id))
}

/// Finds tickets opened more than `stuck_after` ago and still unrouted whose routing job will
/// never run (lost, or out of the queue's attempts), and gives each a new routing job. Routing
/// is idempotent (a recipient already on the ticket keeps its delivery), so a job that only
/// runs late and the sweep's both routing it is harmless. A dead job's ticket is routed again
/// rather than given up: a ticket has no failed state, and what kills a routing job (the
/// database, mostly) passes; a ticket whose routing always fails is retried once per
/// `stuck_after`, each time with a warning. Reads the waiting tickets from their partial index
/// (by account, so the oldest-first page sorts all of them: its cost grows with the tickets
/// waiting, never with the routed history) and visits at most [`SWEEP_BATCH`] after `after`.
pub async fn sweep_unrouted(
    db: &impl ConnectionTrait,
    stuck_after: std::time::Duration,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<SweptTickets> {
    let at = now();
    let (grace, round) = grace_and_round(at, stuck_after);
    let Some(unpaused) = crate::pauses::Snapshot::read(db)
        .await?
        .unpaused(ticket::Column::AccountId)
    else {
        return Ok(SweptTickets::default());
    };
    let mut page = ticket::Entity::find()
        .select_only()
        .columns([
            ticket::Column::CreatedAt,
            ticket::Column::Id,
            ticket::Column::AccountId,
        ])
        .filter(ticket::Column::RoutedAt.is_null())
        .filter(ticket::Column::CreatedAt.lt(at - grace))
        .filter(unpaused);
    if let Some((created_at, id)) = after {
        page = page.filter(
            sea_orm::Condition::any()
                .add(ticket::Column::CreatedAt.gt(created_at))
                .add(
                    sea_orm::Condition::all()
                        .add(ticket::Column::CreatedAt.eq(created_at))
                        .add(ticket::Column::Id.gt(id)),
                ),
        );
    }
    let waiting: Vec<(DateTime<Utc>, Uuid, Uuid)> = page
        .order_by_asc(ticket::Column::CreatedAt)
        .order_by_asc(ticket::Column::Id)
        .limit(SWEEP_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut swept = SweptTickets {
        next: next_after(&waiting, |(at, id, _)| (*at, *id)),
        ..SweptTickets::default()
    };
    for (_, ticket_id, account_id) in waiting {
        // The sweep's jobs of the last few rounds too: one still queued behind a backlog is
        // live, and a new one each round would only pile up.
        let keys: Vec<String> = std::iter::once(crate::tickets::routing_key(ticket_id))
            .chain((0..ROUTE_SWEEP_ROUNDS).map(|back| route_sweep_key(ticket_id, round - back)))
            .collect();
        let states = match queue::job_states(db, &keys).await {
            Ok(states) => states,
            Err(error) => {
                tracing::error!(%ticket_id, %error, "sweep: cannot read its routing jobs");
                continue;
            }
        };
        if states.contains(&queue::JobState::Live) {
            continue;
        }
        // A finished job has routed the ticket, unless it ended without routing it (a job of
        // an older version, which put jobs back under new keys): read the ticket again.
        if states.contains(&queue::JobState::Done) && routed(db, ticket_id).await? {
            continue;
        }
        queue::enqueue(
            db,
            &Job::RouteTicket { ticket_id },
            &route_sweep_key(ticket_id, round),
            at,
            account_id,
        )
        .await?;
        tracing::warn!(%ticket_id, dead = !states.is_empty(), "swept: unrouted ticket without a live routing job; this round's job queued");
        swept.requeued += 1;
    }
    Ok(swept)
}
