//! E-mail deliveries and their state machine: every change of a delivery's state is written
//! here, and only here. The worker's job handlers decide when (they orchestrate sends); this
//! module decides what a state change writes, under which condition, and which job goes with
//! it.
//!
//! ```text
//!  routing job ──create──> SENDING(1)                  (a new row, claimed for its first attempt)
//!  PENDING | RETRYING ──claim(n)──> SENDING(n)         (n = attempts + 1)
//!  SENDING(n), lease run out ──claim(n)──> SENDING(n)  (a dead worker's attempt, taken over)
//!  SENDING(n) ──accepted──> SENT
//!  SENDING(n) ──transient, n < max──> RETRYING + the job of attempt n+1, due after a backoff
//!  SENDING(n) ──permanent, or n = max──> FAILED + the delivery.failed webhook
//!  FAILED ──put back (an operator)──> PENDING + the job of attempt n+1, due now
//!  PENDING | RETRYING ──cancel (an operator)──> CANCELLED (its job finds nothing to claim)
//! ```
//!
//! Every write is conditional on the state (and attempt) it leaves, so a worker whose lease
//! ran out cannot overwrite the result of the one that took over, and a final row never moves
//! again except by an operator putting back a FAILED one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{account, delivery, ticket};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use crate::infra::config::DeliveryConfig;
use crate::infra::queue::{self, Job};
use crate::lease::{self, Outcome};
use crate::mail::SendError;
use crate::routing::{self, Recipient};
use crate::vocab::{DeliveryStatus, Locale, Source};
use crate::{Result, limits, now, webhooks};

mod sweep;

pub use crate::lease::{SWEEP_BATCH, Swept};
pub use sweep::{SweptTickets, sweep, sweep_unrouted};

/// A routed ticket: the ticket, how many recipients it has, and the deliveries whose first
/// attempt may still be due.
#[derive(Clone, Debug)]
pub struct Planned {
    pub ticket: ticket::Model,
    /// The people notified (the visitor's confirmation is not one of them).
    pub recipients: usize,
    /// Rows this call created, already claimed for their first attempt (`SENDING`, attempt 1,
    /// leased until the caller's `claim_until`): the caller sends them without another write.
    pub claimed: Vec<delivery::Model>,
    /// Rows of an earlier run whose first attempt may still be due: `PENDING` ones, and
    /// `SENDING` ones of a worker that may have died mid-send. The caller claims each (or
    /// takes it over when its lease has run out) before sending.
    pub due: Vec<Uuid>,
}

/// Delivery rows per `INSERT`: at 17 columns a row, 8,500 parameters, within SQLite's 32,766
/// and PostgreSQL's 65,535.
const INSERT_ROWS: usize = 500;

/// Accepted mails recorded per `UPDATE` (five parameters each).
const RECORD_ROWS: usize = 1_000;

/// Creates the deliveries of a ticket, one row per recipient ([`routing::resolve`]), in one
/// statement, each claimed for its first attempt until `claim_until` (a row nobody else can
/// see yet needs no separate claim). Running it again for the same ticket adds nothing and
/// returns the deliveries still due, so a re-run routing job (a worker died, the database
/// failed) picks up where the last one stopped. `None` when the ticket is gone.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    ticket_id: Uuid,
    claim_until: DateTime<Utc>,
) -> Result<Option<Planned>> {
    Ok(create_many(db, &[ticket_id], claim_until)
        .await?
        .pop()
        .flatten())
}

/// [`create`] for several tickets at once, with the statements of all of them shared: one
/// read of the tickets, one of their rules, one `INSERT` of every delivery (per
/// [`INSERT_ROWS`]), one routed-at stamp. Each ticket's result is the one [`create`] alone
/// would give, in the order of `ticket_ids`; a ticket named twice is planned once, and its
/// later mentions are planned after the first was written, as a re-run would be (nothing
/// claimed twice).
pub async fn create_many<C: ConnectionTrait>(
    db: &C,
    ticket_ids: &[Uuid],
    claim_until: DateTime<Utc>,
) -> Result<Vec<Option<Planned>>> {
    // Each mention by its place in `ticket_ids`: the first of each ticket, then the others.
    type Mentions = Vec<(usize, Uuid)>;
    let mut seen = HashSet::new();
    let (first, again): (Mentions, Mentions) = ticket_ids
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, id)| seen.insert(*id));
    let mut out: Vec<Option<Planned>> = vec![None; ticket_ids.len()];
    let ids: Vec<Uuid> = first.iter().map(|(_, id)| *id).collect();
    for ((at, _), planned) in first
        .iter()
        .zip(create_distinct(db, &ids, claim_until).await?)
    {
        out[*at] = planned;
    }
    for (at, id) in again {
        out[at] = create_distinct(db, &[id], claim_until)
            .await?
            .pop()
            .flatten();
    }
    Ok(out)
}

/// [`create_many`] for ids that are all different.
async fn create_distinct<C: ConnectionTrait>(
    db: &C,
    ticket_ids: &[Uuid],
    claim_until: DateTime<Utc>,
) -> Result<Vec<Option<Planned>>> {
    // The account comes along for its e-mail language.
    let found: HashMap<Uuid, (ticket::Model, Option<Locale>)> = ticket::Entity::find()
        .filter(ticket::Column::Id.is_in(ticket_ids.iter().copied()))
        .find_also_related(account::Entity)
        .all(db)
        .await?
        .into_iter()
        .map(|(t, a)| (t.id, (t, a.map(|a| a.locale))))
        .collect();
    let topics: Vec<(Uuid, &str)> = found
        .values()
        .map(|(t, _)| (t.account_id, t.topic_key.as_str()))
        .collect();
    let rules = if topics.is_empty() {
        Vec::new()
    } else {
        routing::matching_rules(db, &topics).await?
    };
    // The rules' own languages, by rule (rule ids are unique across accounts).
    let locales: HashMap<Uuid, Locale> = rules
        .iter()
        .filter_map(|r| Some((r.rule.id, r.rule.locale?)))
        .collect();
    let created_at = now();
    // Per ticket (a ticket deleted since it was queued has nothing to deliver): the ticket,
    // its recipients and the rows planned for them.
    let mut plans: Vec<Option<Plan>> = Vec::new();
    for id in ticket_ids {
        let Some((ticket, account_locale)) = found.get(id) else {
            plans.push(None);
            continue;
        };
        let recipients = routing::resolve(
            &ticket.topic,
            routing::of_account(&rules, ticket.account_id),
            &ticket.forward_emails,
        );
        // A ticket routed before (a re-run job) gets no new rows: the rules or an agent's
        // address may have changed since, and its recipients were chosen then.
        let rows = recipients
            .iter()
            .filter(|_| ticket.routed_at.is_none())
            .map(|r| {
                let id = Uuid::now_v7();
                delivery::Model {
                    id,
                    ticket_id: ticket.id,
                    account_id: ticket.account_id,
                    recipient: r.address.clone(),
                    recipient_key: r.address.to_lowercase(),
                    sources: r.sources.clone().into(),
                    status: DeliveryStatus::Sending,
                    attempts: 1,
                    last_error: None,
                    message_id: format!("ticket-{}.delivery-{}", ticket.id, id),
                    smtp_response: None,
                    next_attempt_at: None,
                    locked_until: Some(claim_until),
                    sent_at: None,
                    created_at,
                    updated_at: created_at,
                    locale: Some(
                        locale_for(r, &locales)
                            .or(*account_locale)
                            .unwrap_or_default(),
                    ),
                }
            })
            .collect();
        plans.push(Some((ticket.clone(), recipients.len(), rows)));
    }
    plan_confirmations(db, &mut plans, &found, created_at, claim_until).await?;
    // A recipient already on the ticket (an earlier run) keeps its row: the insert skips it.
    // In chunks, so any number of recipients fits each engine's parameter limit; a run that
    // stops between chunks is completed by the next (the inserts are idempotent).
    let rows: Vec<&delivery::Model> = plans.iter().flatten().flat_map(|(_, _, r)| r).collect();
    let mut inserted = HashSet::new();
    for chunk in rows.chunks(INSERT_ROWS) {
        let result = delivery::Entity::insert_many(
            chunk
                .iter()
                .map(|&r| delivery::ActiveModel::from(r.clone())),
        )
        .on_conflict_do_nothing_on([delivery::Column::TicketId, delivery::Column::RecipientKey])
        .exec_with_returning_keys(db)
        .await?;
        if let sea_orm::TryInsertResult::Inserted(ids) = result {
            inserted.extend(ids);
        }
    }
    // For the tickets' timelines: it tells "matched nobody" from "not routed yet".
    let unstamped: Vec<Uuid> = plans
        .iter()
        .flatten()
        .filter(|(t, _, _)| t.routed_at.is_none())
        .map(|(t, _, _)| t.id)
        .collect();
    if !unstamped.is_empty() {
        ticket::Entity::update_many()
            .col_expr(ticket::Column::RoutedAt, Expr::value(now()))
            .filter(ticket::Column::Id.is_in(unstamped))
            .filter(ticket::Column::RoutedAt.is_null())
            .exec(db)
            .await?;
    }
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let Some((ticket, recipients, rows)) = plan else {
            out.push(None);
            continue;
        };
        let planned = rows.len();
        let claimed: Vec<delivery::Model> = rows
            .into_iter()
            .filter(|r| inserted.contains(&r.id))
            .collect();
        let due = if claimed.len() == planned && ticket.routed_at.is_none() {
            // Every recipient is new (the first run): nothing of an earlier run to look for.
            Vec::new()
        } else {
            due_of_earlier_run(db, ticket.id, &claimed).await?
        };
        out.push(Some(Planned {
            ticket,
            recipients,
            claimed,
            due,
        }));
    }
    Ok(out)
}

/// A ticket being planned: the ticket, how many people are notified, and its rows (the
/// notifications, then the visitor's confirmation, if any).
type Plan = (ticket::Model, usize, Vec<delivery::Model>);

/// The key of a visitor's confirmation among a ticket's deliveries: apart from an agent's
/// notification to the same address, and the same for every spelling that reaches one
/// mailbox by the rules all providers share (case, and a `+tag` after the local part), so
/// `victim+1@`, `victim+2@`, ... share one hourly limit.
fn confirmation_key(address: &str) -> String {
    let address = address.to_lowercase();
    let mailbox = match address.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => address,
    };
    format!("{CONFIRMATION_PREFIX}{mailbox}")
}

/// Whether a delivery (by its recipient key) is a visitor's confirmation.
pub fn is_confirmation(recipient_key: &str) -> bool {
    recipient_key.starts_with(CONFIRMATION_PREFIX)
}

/// The recipient-key prefix of confirmations (the partial index of migration 20 and its
/// query name it as `LIKE 'visitor:%'`).
const CONFIRMATION_PREFIX: &str = "visitor:";

/// Adds to each plan whose ticket asks for it (the step's `confirmVisitor`, and a visitor
/// address) the visitor's confirmation, unless the address had
/// [`limits::VISITOR_CONFIRMATIONS_PER_HOUR`] confirmations in the account within the last
/// hour, counting those planned in this batch: one read for the whole batch, by the partial
/// index. Batches planned at the same instant by different workers count each other's
/// confirmations only once committed, so the limit can be passed by one per such batch.
async fn plan_confirmations<C: ConnectionTrait>(
    db: &C,
    plans: &mut [Option<Plan>],
    found: &HashMap<Uuid, (ticket::Model, Option<Locale>)>,
    created_at: DateTime<Utc>,
    claim_until: DateTime<Utc>,
) -> Result<()> {
    let wanted: Vec<(Uuid, String)> = plans
        .iter()
        .flatten()
        .filter(|(t, _, _)| t.confirm_visitor && t.routed_at.is_none())
        .filter_map(|(t, _, _)| Some((t.account_id, confirmation_key(t.visitor_email.as_deref()?))))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let any = wanted.iter().fold(Condition::any(), |any, (account, key)| {
        any.add(
            Condition::all()
                .add(delivery::Column::AccountId.eq(*account))
                .add(delivery::Column::RecipientKey.eq(key.as_str())),
        )
    });
    let recent: Vec<(Uuid, String, i64)> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::AccountId)
        .column(delivery::Column::RecipientKey)
        .column_as(delivery::Column::Id.count(), "sent")
        .filter(Expr::cust(format!(
            "recipient_key LIKE '{CONFIRMATION_PREFIX}%'"
        )))
        .filter(any)
        .filter(delivery::Column::CreatedAt.gt(created_at - chrono::Duration::hours(1)))
        .group_by(delivery::Column::AccountId)
        .group_by(delivery::Column::RecipientKey)
        .into_tuple()
        .all(db)
        .await?;
    let mut sent: HashMap<(Uuid, String), u64> = recent
        .into_iter()
        .map(|(account, key, n)| ((account, key), u64::try_from(n).unwrap_or(0)))
        .collect();
    for (ticket, _, rows) in plans.iter_mut().flatten() {
        let Some(address) = ticket
            .visitor_email
            .as_deref()
            .filter(|_| ticket.confirm_visitor && ticket.routed_at.is_none())
        else {
            continue;
        };
        let key = confirmation_key(address);
        let count = sent.entry((ticket.account_id, key.clone())).or_default();
        if *count >= limits::VISITOR_CONFIRMATIONS_PER_HOUR {
            continue;
        }
        *count += 1;
        let id = Uuid::now_v7();
        rows.push(delivery::Model {
            id,
            ticket_id: ticket.id,
            account_id: ticket.account_id,
            recipient: address.to_owned(),
            recipient_key: key,
            sources: vec![Source::Visitor].into(),
            status: DeliveryStatus::Sending,
            attempts: 1,
            last_error: None,
            message_id: format!("ticket-{}.confirmation-{}", ticket.id, id),
            smtp_response: None,
            next_attempt_at: None,
            locked_until: Some(claim_until),
            sent_at: None,
            created_at,
            updated_at: created_at,
            locale: Some(
                found
                    .get(&ticket.id)
                    .and_then(|(_, locale)| *locale)
                    .unwrap_or_default(),
            ),
        });
    }
    Ok(())
}

/// The first attempts of an earlier run of the ticket's routing that may still be due, but
/// for the rows this run claimed.
async fn due_of_earlier_run<C: ConnectionTrait>(
    db: &C,
    ticket_id: Uuid,
    claimed: &[delivery::Model],
) -> Result<Vec<Uuid>> {
    // The ones claimed just now are left out here, not in SQL: there may be more of them than
    // a statement takes parameters.
    let just_claimed: HashSet<Uuid> = claimed.iter().map(|d| d.id).collect();
    let ids: Vec<Uuid> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::Id)
        .filter(delivery::Column::TicketId.eq(ticket_id))
        .filter(delivery::Column::Status.is_in([DeliveryStatus::Pending, DeliveryStatus::Sending]))
        .filter(delivery::Column::Attempts.lte(1))
        .order_by_asc(delivery::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids
        .into_iter()
        .filter(|id| !just_claimed.contains(id))
        .collect())
}

/// The language a recipient's mail is written in: that of the first rule that put the
/// recipient there and has one of its own; `None` leaves it to the account.
fn locale_for(recipient: &Recipient, locales: &HashMap<Uuid, Locale>) -> Option<Locale> {
    recipient.sources.iter().find_map(|source| match source {
        Source::Rule { rule_id, .. } | Source::Wildcard { rule_id } => {
            locales.get(rule_id).copied()
        }
        Source::Forward | Source::Visitor => None,
    })
}

/// An update that ends an attempt: no lease held, no next attempt due, touched now.
pub(super) fn ending(
    update: sea_orm::UpdateMany<delivery::Entity>,
) -> sea_orm::UpdateMany<delivery::Entity> {
    update
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now()))
}

/// Cancels a delivery waiting for an attempt (`PENDING` or `RETRYING`; not while a worker is
/// sending it), in the caller's transaction, with `why` as its last error: `true` when it was
/// waiting. Its queued job then finds nothing to claim.
pub async fn cancel(txn: &impl ConnectionTrait, id: Uuid, why: &str) -> Result<bool> {
    let cancelled = ending(delivery::Entity::update_many())
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Cancelled),
        )
        .col_expr(delivery::Column::LastError, Expr::value(why))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::Status.is_in([DeliveryStatus::Pending, DeliveryStatus::Retrying]))
        .exec(txn)
        .await?;
    Ok(cancelled.rows_affected == 1)
}

/// The idempotency key of a delivery's `attempt`-th send job: at most one job per attempt.
pub fn attempt_key(delivery_id: Uuid, attempt: i32) -> String {
    format!("send:{delivery_id}:{attempt}")
}

/// The idempotency key of the job that looks at attempt `attempt` again when the lease that
/// held it until `until` ends.
pub(super) fn after_key(delivery_id: Uuid, attempt: i32, until: DateTime<Utc>) -> String {
    format!(
        "{}:after:{}",
        attempt_key(delivery_id, attempt),
        until.timestamp_micros()
    )
}

/// The idempotency key of the job the sweep gives attempt `attempt` in sweep round `round`:
/// at most one per delivery and round, however many workers sweep.
pub(super) fn sweep_key(delivery_id: Uuid, attempt: i32, round: i64) -> String {
    crate::lease::sweep_key(&attempt_key(delivery_id, attempt), round)
}

/// The lease columns of a delivery.
const LEASE: lease::Columns<delivery::Column> = lease::Columns {
    id: delivery::Column::Id,
    attempts: delivery::Column::Attempts,
    status: delivery::Column::Status,
    locked_until: delivery::Column::LockedUntil,
    updated_at: delivery::Column::UpdatedAt,
};

/// Claims the delivery for attempt `attempt` until `until` ([`lease::claim`]); returns the
/// claimed row, or `None` when the attempt is not this caller's to make.
pub async fn claim(
    db: &impl ConnectionTrait,
    delivery_id: Uuid,
    attempt: i32,
    until: DateTime<Utc>,
) -> Result<Option<delivery::Model>> {
    Ok(lease::claim::<delivery::Entity>(db, &LEASE, delivery_id, attempt, until).await?)
}

/// A claim failed: says why, and makes sure a live lease is looked at again when it ends
/// (the job of the same attempt, due a second after the lease).
pub async fn not_claimed(
    db: &impl ConnectionTrait,
    delivery_id: Uuid,
    attempt: i32,
) -> Result<Outcome> {
    let Some(row) = delivery::Entity::find_by_id(delivery_id).one(db).await? else {
        return Ok(Outcome::Skipped);
    };
    match row.locked_until {
        Some(until) if row.status == DeliveryStatus::Sending && row.attempts == attempt => {
            let due = until + chrono::Duration::seconds(1);
            queue::enqueue(
                db,
                &Job::SendDelivery {
                    delivery_id,
                    attempt,
                },
                &after_key(delivery_id, attempt, until),
                due,
                row.account_id,
            )
            .await?;
            Ok(Outcome::Deferred)
        }
        _ => Ok(Outcome::Skipped),
    }
}

/// A mail the SMTP server accepted, to be recorded.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub delivery: delivery::Model,
    /// The server's reply.
    pub reply: String,
    /// When it was accepted.
    pub at: DateTime<Utc>,
    /// When its ticket was opened, for the latency metric.
    pub opened_at: DateTime<Utc>,
}

/// Records mails the SMTP server accepted at attempt `attempt` of their deliveries (of any
/// tickets), each with its reply and the time it was accepted, in one statement. Returns the
/// deliveries recorded; one missing lost its lease to another worker, whose result stands.
pub async fn record_sent<'a>(
    db: &impl ConnectionTrait,
    attempt: i32,
    accepted: impl IntoIterator<Item = &'a Accepted>,
) -> Result<Vec<Uuid>> {
    let accepted: Vec<&Accepted> = accepted.into_iter().collect();
    let mut recorded = Vec::with_capacity(accepted.len());
    for chunk in accepted.chunks(RECORD_ROWS) {
        recorded.extend(record_sent_at_once(db, attempt, chunk).await?);
    }
    Ok(recorded)
}

/// [`record_sent`] for as many as one statement holds.
async fn record_sent_at_once(
    db: &impl ConnectionTrait,
    attempt: i32,
    accepted: &[&Accepted],
) -> Result<Vec<Uuid>> {
    let Some((first, rest)) = accepted.split_first() else {
        return Ok(Vec::new());
    };
    let is = |d: &delivery::Model| delivery::Column::Id.eq(d.id);
    let mut replies = Expr::case(is(&first.delivery), first.reply.as_str());
    let mut sent_at = Expr::case(is(&first.delivery), first.at);
    for mail in rest {
        replies = replies.case(is(&mail.delivery), mail.reply.as_str());
        sent_at = sent_at.case(is(&mail.delivery), mail.at);
    }
    let recorded: Vec<Uuid> = ending(delivery::Entity::update_many())
        .col_expr(delivery::Column::Status, Expr::value(DeliveryStatus::Sent))
        .col_expr(delivery::Column::SentAt, sent_at.into())
        .col_expr(delivery::Column::SmtpResponse, replies.into())
        .filter(delivery::Column::Id.is_in(accepted.iter().map(|m| m.delivery.id)))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Sending))
        .filter(delivery::Column::Attempts.eq(attempt))
        .exec_with_returning(db)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let ids: HashSet<&Uuid> = recorded.iter().collect();
    for mail in accepted.iter().filter(|m| ids.contains(&m.delivery.id)) {
        let waited = (mail.at - mail.opened_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("ticketing_delivery_latency_seconds").record(waited);
    }
    Ok(recorded)
}

/// The outcome of an accepted mail: `Sent` when its result was recorded; otherwise our lease
/// ran out and another worker took the row over, and its result stands.
pub fn sent_unless_taken_over(recorded: bool) -> Outcome {
    if recorded {
        Outcome::Sent
    } else {
        Outcome::Skipped
    }
}

/// Records a failed attempt: `RETRYING` with the next attempt's job (in one transaction, so
/// the backoff survives restarts) while attempts are left and the error is transient,
/// `FAILED` and the `delivery.failed` webhook otherwise.
pub async fn record_failure<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    policy: &DeliveryConfig,
    delivery: &delivery::Model,
    attempt: i32,
    error: SendError,
) -> Result<Outcome> {
    let at = now();
    let mut update = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(at))
        .filter(delivery::Column::Id.eq(delivery.id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Sending))
        .filter(delivery::Column::Attempts.eq(attempt));
    // The final error, for the account's integrations.
    let mut failed_with = None;
    let (outcome, next) = match error {
        SendError::Transient(error) if attempt < policy.max_attempts as i32 => {
            let due = lease::retry_due(attempt, policy, at);
            update = update
                .col_expr(
                    delivery::Column::Status,
                    Expr::value(DeliveryStatus::Retrying),
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
                    Expr::value(DeliveryStatus::Failed),
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
    // The new state commits with what follows from it: a retry's job, or the failure's
    // webhook (a crash between the two can lose neither).
    let txn = crate::infra::db::begin(db).await?;
    if update.exec(&txn).await?.rows_affected == 0 {
        // Our lease ran out and another worker took the row over: its result stands.
        return Ok(Outcome::Skipped);
    }
    if let Some(due) = next {
        queue::enqueue(
            &txn,
            &Job::SendDelivery {
                delivery_id: delivery.id,
                attempt: attempt + 1,
            },
            &attempt_key(delivery.id, attempt + 1),
            due,
            delivery.account_id,
        )
        .await?;
    }
    if let Some(error) = failed_with {
        emit_failed(&txn, delivery.into(), attempt, error).await?;
    }
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(outcome)
}

/// Who a failed delivery was for, as its webhook tells it.
pub(super) struct FailedDelivery<'a> {
    pub(super) id: Uuid,
    pub(super) account_id: Uuid,
    pub(super) ticket_id: Uuid,
    pub(super) recipient: &'a str,
    pub(super) recipient_key: &'a str,
}

impl<'a> From<&'a delivery::Model> for FailedDelivery<'a> {
    fn from(d: &'a delivery::Model) -> Self {
        FailedDelivery {
            id: d.id,
            account_id: d.account_id,
            ticket_id: d.ticket_id,
            recipient: &d.recipient,
            recipient_key: &d.recipient_key,
        }
    }
}

/// Tells the account's integrations that a delivery failed for good, on the caller's
/// transaction (the one that writes `FAILED`).
pub(super) async fn emit_failed<T: ConnectionTrait + TransactionTrait>(
    txn: &T,
    delivery: FailedDelivery<'_>,
    attempts: i32,
    error: String,
) -> Result<()> {
    // `delivery.failed` tells the staff's tools a notification was lost; a visitor's
    // confirmation (a typo in their address, say) is not one, and its address stays out of
    // integrations.
    if is_confirmation(delivery.recipient_key) {
        return Ok(());
    }
    webhooks::emit(
        txn,
        delivery.account_id,
        webhooks::DELIVERY_FAILED,
        delivery.id,
        delivery.ticket_id,
        |ticket| webhooks::DeliveryEvent {
            delivery: webhooks::DeliveryData {
                id: delivery.id,
                recipient: delivery.recipient.to_owned(),
                attempts,
                last_error: Some(error),
            },
            ticket: ticket.into(),
        },
    )
    .await?;
    Ok(())
}

/// Ends attempt `attempt` `FAILED` without reading the row, whose delivery or ticket holds a
/// value that cannot be read (a corrupt row, one a newer version wrote): retrying cannot mend
/// it. Written whatever state the attempt left (a claim whose RETURNING failed to decode has
/// already moved it to `SENDING`); a final row stays as it is.
pub async fn fail_unreadable(
    db: &impl ConnectionTrait,
    delivery_id: Uuid,
    attempt: i32,
    reason: &str,
) -> Result<Outcome> {
    let failed = ending(delivery::Entity::update_many())
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(
            delivery::Column::LastError,
            Expr::value(format!("the delivery cannot be read: {reason}")),
        )
        .col_expr(delivery::Column::Attempts, Expr::value(attempt))
        .filter(delivery::Column::Id.eq(delivery_id))
        .filter(delivery::Column::Attempts.lte(attempt))
        .filter(delivery::Column::Status.is_not_in([
            DeliveryStatus::Sent,
            DeliveryStatus::Failed,
            DeliveryStatus::Cancelled,
        ]))
        .exec(db)
        .await?;
    Ok(if failed.rows_affected == 1 {
        Outcome::Failed
    } else {
        Outcome::Skipped
    })
}

/// Puts a `FAILED` delivery back: `PENDING`, with the job of its next attempt due now, in the
/// caller's transaction. Returns the row as it is now (unchanged when it was not `FAILED`).
pub async fn put_back(
    txn: &impl ConnectionTrait,
    d: &delivery::Model,
) -> Result<Option<delivery::Model>> {
    let at = now();
    if lease::reopen::<delivery::Entity>(txn, &LEASE, delivery::Column::NextAttemptAt, d.id, at)
        .await?
    {
        let attempt = d.attempts + 1;
        queue::enqueue(
            txn,
            &Job::SendDelivery {
                delivery_id: d.id,
                attempt,
            },
            &lease::put_back_key(&attempt_key(d.id, attempt), at),
            at,
            d.account_id,
        )
        .await?;
    }
    Ok(delivery::Entity::find_by_id(d.id).one(txn).await?)
}

/// Whether an outcome changed what subscribers see (a result, or a retry scheduled).
pub fn is_result(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Sent | Outcome::Retrying(_) | Outcome::Failed
    )
}
