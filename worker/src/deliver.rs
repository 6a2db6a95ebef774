//! The delivery jobs' handlers: routing a new ticket and sending its first attempts, and one
//! later attempt at one delivery. They orchestrate (claim, render, send, record, publish); what
//! each step writes on the delivery row is `domain::deliveries`, the state machine's one home.

use std::sync::Arc;

use domain::deliveries::{self, Accepted, is_result, sent_unless_taken_over};
use domain::infra::events::{self, Event};
use domain::lease::{self, Outcome};
use domain::mail::{self, SendError};
use domain::webhooks;
use entity::{delivery, ticket};
use sea_orm::EntityTrait;
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::Context;
use crate::together::Shared;

/// Routes a new ticket and makes the first attempt at each of its deliveries, side by side.
///
/// Sending here rather than from one job per delivery saves a queue round trip per mail (insert,
/// fetch, ack) and a hop of pickup latency. The deliveries are created already claimed, and the
/// mails the SMTP server accepted are recorded together, as they finish; both writes, and the
/// live events, are shared with the routing jobs running at the same time
/// ([`crate::together`]): the writes, not SMTP, are what limits the drain rate. Nothing is
/// lost if this worker dies: the routing job is only acknowledged when every first attempt
/// has ended, so apalis hands it to another worker, which finds the deliveries still due and
/// takes them over when their lease ends. Returns the number of recipients and each attempt's outcome; the first
/// database error after all attempts ran.
pub async fn route(
    ctx: &Context,
    ticket_id: Uuid,
) -> Result<(usize, Vec<(Uuid, Outcome)>), Shared> {
    let Some((planned, hooks)) = ctx.together.plan.run(ticket_id).await? else {
        return Ok((0, Vec::new()));
    };
    let event = if planned.recipients == 0 {
        webhooks::TICKET_UNROUTED
    } else {
        webhooks::TICKET_OPENED
    };
    webhooks::emit_to(
        &ctx.db,
        &hooks,
        planned.ticket.account_id,
        event,
        planned.ticket.id,
        planned.ticket.id,
        |now| webhooks::TicketEvent {
            ticket: now.into(),
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
            Err(e) => failure = failure.or(Some(e.into())),
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
                // A panic fails the job as it would have in this task: the worker's catch-panic
                // layer kills it, and the sweep ends its unfinished deliveries FAILED.
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Only a dropped set cancels its tasks, and then nobody is waiting here.
                Err(_) => continue,
            };
            match result {
                Ok(reply) => accepted.push(Accepted {
                    delivery,
                    reply,
                    at,
                    opened_at: ticket.created_at,
                }),
                Err(error) => match record_failure(ctx, &delivery, 1, error).await {
                    Ok(outcome) => {
                        if is_result(&outcome) {
                            results.push(Event::delivery_updated(&delivery));
                        }
                        outcomes.push((delivery.id, outcome));
                    }
                    Err(e) => failure = failure.or(Some(e.into())),
                },
            }
        }
        if accepted.is_empty() {
            continue;
        }
        let deliveries: Vec<delivery::Model> =
            accepted.iter().map(|m| m.delivery.clone()).collect();
        match ctx.together.record.run(accepted).await {
            Ok(recorded) => {
                for delivery in &deliveries {
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
    if !results.is_empty() {
        ctx.together.publish.run(results).await;
    }
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
    let until = domain::now() + lease::length(ctx.send_timeout);
    let claimed = match deliveries::claim(&ctx.db, delivery_id, attempt, until).await {
        Err(domain::Error::Corrupt(reason)) => {
            return unreadable(ctx, delivery_id, attempt, &reason).await;
        }
        claimed => claimed?,
    };
    let Some(delivery) = claimed else {
        return Ok((
            deliveries::not_claimed(&ctx.db, delivery_id, attempt).await?,
            None,
        ));
    };
    let loaded;
    let ticket = match ticket {
        Some(t) if t.id == delivery.ticket_id => t,
        _ => match ticket::Entity::find_by_id(delivery.ticket_id)
            .one(&ctx.db)
            .await
            .map_err(domain::Error::from)
        {
            Ok(Some(t)) => {
                loaded = t;
                &loaded
            }
            Ok(None) => return Ok((Outcome::Skipped, None)),
            Err(domain::Error::Corrupt(reason)) => {
                return unreadable(ctx, delivery_id, attempt, &reason).await;
            }
            Err(e) => return Err(e),
        },
    };
    let result = send(ctx, ticket, &delivery).await;
    let outcome = record(ctx, &delivery, ticket, attempt, result).await?;
    let event = is_result(&outcome).then(|| Event::delivery_updated(&delivery));
    Ok((outcome, event))
}

/// The delivery or its ticket holds a value that cannot be read: no retry can mend that, so
/// the delivery ends `FAILED` with the reason (logged), instead of its job failing until
/// the queue gives up on it.
async fn unreadable(
    ctx: &Context,
    delivery_id: Uuid,
    attempt: i32,
    reason: &str,
) -> Result<(Outcome, Option<Event>), domain::Error> {
    tracing::error!(%delivery_id, attempt, reason, "delivery failed: unreadable row");
    let outcome = deliveries::fail_unreadable(&ctx.db, delivery_id, attempt, reason).await?;
    Ok((outcome, None))
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
            let accepted = [Accepted {
                delivery: delivery.clone(),
                reply,
                at: domain::now(),
                opened_at: ticket.created_at,
            }];
            let recorded = deliveries::record_sent(&ctx.db, attempt, &accepted).await?;
            Ok(sent_unless_taken_over(recorded.contains(&delivery.id)))
        }
        Err(error) => record_failure(ctx, delivery, attempt, error).await,
    }
}

/// Records a failed attempt with the worker's retry policy.
async fn record_failure(
    ctx: &Context,
    delivery: &delivery::Model,
    attempt: i32,
    error: SendError,
) -> Result<Outcome, domain::Error> {
    deliveries::record_failure(&ctx.db, &ctx.delivery, delivery, attempt, error).await
}
