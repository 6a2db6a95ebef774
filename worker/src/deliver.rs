//! One attempt at one delivery, and what it leaves on the delivery row.
//!
//! The delivery row, not the queue, is the record of truth. A job names the delivery and the
//! attempt it is for; the attempt first *claims* the row (a conditional UPDATE), so two jobs
//! can never send the same attempt at once, a SENT or FAILED delivery is never sent again, and
//! a retry scheduled with backoff cannot be overtaken. Retries are new jobs due later, written
//! in the same transaction as the RETRYING state, so the backoff survives worker restarts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::events::{self, Event};
use domain::mail::{self, SendError};
use domain::queue::{self, Job};
use domain::routing::attempt_key;
use domain::vocab::DeliveryStatus;
use domain::webhooks;
use entity::{delivery, ticket};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::Context;
use crate::lease::{self, Outcome, backoff};

/// Routes a new ticket and makes the first attempt at each of its deliveries, side by side.
///
/// Sending here rather than from one job per delivery saves a queue round trip per mail (insert,
/// fetch, ack) and a hop of pickup latency. The deliveries are created already claimed, and the
/// mails the SMTP server accepted are recorded together, as they finish: two writes per ticket
/// instead of two per mail, which is what limits the drain rate. Nothing is lost if this worker
/// dies: the routing job is only acknowledged when every first attempt has ended, so apalis
/// hands it to another worker, which finds the deliveries still due and takes them over when
/// their lease ends. Returns the number of recipients and each attempt's outcome; the first
/// database error after all attempts ran.
pub async fn route(
    ctx: &Context,
    ticket_id: Uuid,
) -> Result<(usize, Vec<(Uuid, Outcome)>), domain::Error> {
    let claim_until = domain::now() + lease::length(ctx.send_timeout);
    let Some(planned) = domain::routing::plan_deliveries(&ctx.db, ticket_id, claim_until).await?
    else {
        return Ok((0, Vec::new()));
    };
    let event = if planned.recipients == 0 {
        webhooks::TICKET_UNROUTED
    } else {
        webhooks::TICKET_OPENED
    };
    webhooks::emit(
        &ctx.db,
        planned.ticket.account_id,
        event,
        planned.ticket.id,
        &webhooks::TicketEvent {
            ticket: (&planned.ticket).into(),
            recipients: planned.recipients,
        },
    )
    .await?;
    let ticket = Arc::new(planned.ticket);
    // Each send is a task of its own, so the others keep talking to the SMTP server while
    // finished ones are being recorded.
    let mut sends = JoinSet::new();
    for delivery in planned.claimed {
        let span = tracing::info_span!("send_delivery", delivery_id = %delivery.id, attempt = 1);
        let (ctx, ticket) = (ctx.clone(), Arc::clone(&ticket));
        sends.spawn(
            async move {
                let result = send(&ctx, &ticket, &delivery).await;
                (delivery, result, domain::now())
            }
            .instrument(span),
        );
    }
    // A previous run's deliveries are claimed (or taken over) one by one first.
    let earlier = planned.due.iter().map(|&delivery_id| {
        let span = tracing::info_span!("send_delivery", %delivery_id, attempt = 1);
        let ticket = &ticket;
        async move {
            (
                delivery_id,
                attempt_for(ctx, delivery_id, 1, Some(ticket)).await,
            )
        }
        .instrument(span)
    });
    let mut outcomes = Vec::with_capacity(planned.recipients);
    // The ticket's results, for one notification.
    let mut results = Vec::new();
    let mut failure = None;
    for (delivery_id, result) in futures_util::future::join_all(earlier).await {
        match result {
            Ok((outcome, event)) => {
                outcomes.push((delivery_id, outcome));
                results.extend(event);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    while let Some(first) = sends.join_next().await {
        let mut finished = vec![first];
        while let Some(more) = sends.try_join_next() {
            finished.push(more);
        }
        let mut accepted = Vec::new();
        for joined in finished {
            let (delivery, result, at) = match joined {
                Ok(done) => done,
                // A panic fails the job as it would have in this task, so apalis runs it again
                // and the re-run takes the delivery over when its lease ends.
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Only a dropped set cancels its tasks, and then nobody is waiting here.
                Err(_) => continue,
            };
            match result {
                Ok(reply) => accepted.push((delivery, reply, at)),
                Err(error) => match record_failure(ctx, &delivery, &ticket, 1, error).await {
                    Ok(outcome) => {
                        if is_result(&outcome) {
                            results.push(Event::delivery_updated(&delivery));
                        }
                        outcomes.push((delivery.id, outcome));
                    }
                    Err(e) => failure = failure.or(Some(e)),
                },
            }
        }
        match record_sent(ctx, &ticket, 1, &accepted).await {
            Ok(recorded) => {
                for (delivery, _, _) in &accepted {
                    let outcome = sent_unless_taken_over(recorded.contains(&delivery.id));
                    if is_result(&outcome) {
                        results.push(Event::delivery_updated(delivery));
                    }
                    outcomes.push((delivery.id, outcome));
                }
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    events::publish(&ctx.db, &results).await;
    match failure {
        Some(e) => Err(e),
        None => Ok((planned.recipients, outcomes)),
    }
}

/// Makes attempt number `attempt` (1-based) at `delivery_id`.
pub async fn attempt(
    ctx: &Context,
    delivery_id: Uuid,
    attempt: i32,
) -> Result<Outcome, domain::Error> {
    let (outcome, event) = attempt_for(ctx, delivery_id, attempt, None).await?;
    if let Some(event) = event {
        events::publish(&ctx.db, &[event]).await;
    }
    Ok(outcome)
}

/// [`attempt`], with the delivery's ticket when the caller has it already. Returns the
/// outcome and, when it is a result subscribers should see, their event (left to the caller
/// to publish, so a ticket's results go out together).
async fn attempt_for(
    ctx: &Context,
    delivery_id: Uuid,
    attempt: i32,
    ticket: Option<&ticket::Model>,
) -> Result<(Outcome, Option<Event>), domain::Error> {
    let now = domain::now();
    let columns = lease::Columns {
        attempts: delivery::Column::Attempts,
        status: delivery::Column::Status,
        locked_until: delivery::Column::LockedUntil,
    };
    // RETURNING hands back the claimed row: no second read per mail.
    let claimed = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Sending.as_str()),
        )
        .col_expr(delivery::Column::Attempts, Expr::value(attempt))
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(now + lease::length(ctx.send_timeout)),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(delivery_id))
        .filter(lease::claimable(&columns, attempt, now))
        .exec_with_returning(&ctx.db)
        .await?;
    let Some(delivery) = claimed.into_iter().next() else {
        return Ok((not_claimed(ctx, delivery_id, attempt).await?, None));
    };
    let loaded;
    let ticket = match ticket {
        Some(t) if t.id == delivery.ticket_id => t,
        _ => match ticket::Entity::find_by_id(delivery.ticket_id)
            .one(&ctx.db)
            .await?
        {
            Some(t) => {
                loaded = t;
                &loaded
            }
            None => return Ok((Outcome::Skipped, None)),
        },
    };
    let result = send(ctx, ticket, &delivery).await;
    let outcome = record(ctx, &delivery, ticket, attempt, result).await?;
    let event = is_result(&outcome).then(|| Event::delivery_updated(&delivery));
    Ok((outcome, event))
}

/// Renders the delivery's mail and hands it to the SMTP server: its reply, or why not.
async fn send(
    ctx: &Context,
    ticket: &ticket::Model,
    delivery: &delivery::Model,
) -> Result<String, SendError> {
    let message = mail::render(ticket, delivery, &ctx.from)?;
    ctx.mailer.send(message, ctx.send_timeout).await
}

/// Records mails the SMTP server accepted for attempt `attempt`, each with its reply and the
/// time it was accepted, in one statement. Returns the deliveries recorded; one missing lost
/// its lease to another worker, whose result stands.
async fn record_sent(
    ctx: &Context,
    ticket: &ticket::Model,
    attempt: i32,
    accepted: &[(delivery::Model, String, DateTime<Utc>)],
) -> Result<Vec<Uuid>, domain::Error> {
    let Some(((first, first_reply, first_at), rest)) = accepted.split_first() else {
        return Ok(Vec::new());
    };
    let is = |d: &delivery::Model| delivery::Column::Id.eq(d.id);
    let mut replies = Expr::case(is(first), first_reply.as_str());
    let mut sent_at = Expr::case(is(first), *first_at);
    for (delivery, reply, at) in rest {
        replies = replies.case(is(delivery), reply.as_str());
        sent_at = sent_at.case(is(delivery), *at);
    }
    let recorded: Vec<Uuid> = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Sent.as_str()),
        )
        .col_expr(delivery::Column::SentAt, sent_at.into())
        .col_expr(delivery::Column::SmtpResponse, replies.into())
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(delivery::Column::Id.is_in(accepted.iter().map(|(d, _, _)| d.id)))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Sending.as_str()))
        .filter(delivery::Column::Attempts.eq(attempt))
        .exec_with_returning(&ctx.db)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    for (_, _, at) in accepted.iter().filter(|(d, _, _)| recorded.contains(&d.id)) {
        let waited = (*at - ticket.created_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("ticketing_delivery_latency_seconds").record(waited);
    }
    Ok(recorded)
}

/// The claim failed: say why, and make sure a live lease is looked at again when it ends.
async fn not_claimed(
    ctx: &Context,
    delivery_id: Uuid,
    attempt: i32,
) -> Result<Outcome, domain::Error> {
    let Some(row) = delivery::Entity::find_by_id(delivery_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(Outcome::Skipped);
    };
    match row.locked_until {
        Some(until)
            if row.status == DeliveryStatus::Sending.as_str() && row.attempts == attempt =>
        {
            let due = until + chrono::Duration::seconds(1);
            queue::enqueue(
                &ctx.db,
                &Job::SendDelivery {
                    delivery_id,
                    attempt,
                },
                &format!(
                    "{}:after:{}",
                    attempt_key(delivery_id, attempt),
                    until.timestamp_micros()
                ),
                due,
            )
            .await?;
            Ok(Outcome::Deferred)
        }
        _ => Ok(Outcome::Skipped),
    }
}

/// Writes the attempt's result on the row.
async fn record(
    ctx: &Context,
    delivery: &delivery::Model,
    ticket: &ticket::Model,
    attempt: i32,
    result: Result<String, SendError>,
) -> Result<Outcome, domain::Error> {
    match result {
        Ok(reply) => {
            let accepted = [(delivery.clone(), reply, domain::now())];
            let recorded = record_sent(ctx, ticket, attempt, &accepted).await?;
            Ok(sent_unless_taken_over(recorded.contains(&delivery.id)))
        }
        Err(error) => record_failure(ctx, delivery, ticket, attempt, error).await,
    }
}

/// The outcome of an accepted mail: `Sent` when its result was recorded; otherwise our lease
/// ran out and another worker took the row over, and its result stands.
fn sent_unless_taken_over(recorded: bool) -> Outcome {
    if recorded {
        Outcome::Sent
    } else {
        Outcome::Skipped
    }
}

/// Writes a failed attempt on the row; a retry's job goes in the same transaction.
async fn record_failure(
    ctx: &Context,
    delivery: &delivery::Model,
    ticket: &ticket::Model,
    attempt: i32,
    error: SendError,
) -> Result<Outcome, domain::Error> {
    let now = domain::now();
    let mut update = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(delivery.id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Sending.as_str()))
        .filter(delivery::Column::Attempts.eq(attempt));
    // The final error, for the account's integrations.
    let mut failed_with = None;
    let (outcome, next) = match error {
        SendError::Transient(error) if attempt < ctx.delivery.max_attempts as i32 => {
            let wait = backoff(
                attempt,
                ctx.delivery.retry_base,
                ctx.delivery.retry_max,
                &mut rand::rng(),
            );
            let due = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
            update = update
                .col_expr(
                    delivery::Column::Status,
                    Expr::value(DeliveryStatus::Retrying.as_str()),
                )
                .col_expr(delivery::Column::LastError, Expr::value(error))
                .col_expr(delivery::Column::NextAttemptAt, Expr::value(due));
            (Outcome::Retrying(due), Some(due))
        }
        error => {
            let message = match error {
                SendError::Transient(e) => format!("gave up after {attempt} attempts: {e}"),
                SendError::Permanent(e) => e,
            };
            update = update
                .col_expr(
                    delivery::Column::Status,
                    Expr::value(DeliveryStatus::Failed.as_str()),
                )
                .col_expr(delivery::Column::LastError, Expr::value(message.clone()))
                .col_expr(
                    delivery::Column::NextAttemptAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                );
            failed_with = Some(message);
            (Outcome::Failed, None)
        }
    };
    // A final result is one statement; a retry's state and its job commit together.
    match next {
        None => {
            if update.exec(&ctx.db).await?.rows_affected == 0 {
                // Our lease ran out and another worker took the row over: its result stands.
                return Ok(Outcome::Skipped);
            }
        }
        Some(due) => {
            let txn = domain::db::begin(&ctx.db).await?;
            if update.exec(&txn).await?.rows_affected == 0 {
                return Ok(Outcome::Skipped);
            }
            queue::enqueue(
                &txn,
                &Job::SendDelivery {
                    delivery_id: delivery.id,
                    attempt: attempt + 1,
                },
                &attempt_key(delivery.id, attempt + 1),
                due,
            )
            .await?;
            txn.commit().await?;
        }
    }
    if let Some(error) = failed_with {
        delivery_failed(ctx, delivery, ticket, attempt, error).await?;
    }
    Ok(outcome)
}

/// Whether an outcome changed what subscribers see (a result, or a retry scheduled).
fn is_result(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Sent | Outcome::Retrying(_) | Outcome::Failed
    )
}

/// Tells the account's integrations that a delivery failed for good.
async fn delivery_failed(
    ctx: &Context,
    delivery: &delivery::Model,
    ticket: &ticket::Model,
    attempts: i32,
    error: String,
) -> Result<(), domain::Error> {
    webhooks::emit(
        &ctx.db,
        delivery.account_id,
        webhooks::DELIVERY_FAILED,
        delivery.id,
        &webhooks::DeliveryEvent {
            delivery: webhooks::DeliveryData {
                id: delivery.id,
                recipient: delivery.recipient.clone(),
                attempts,
                last_error: Some(error),
            },
            ticket: ticket.into(),
        },
    )
    .await?;
    Ok(())
}
