//! Operations for on-call operators: the queue at a glance, worker processes, deliveries with
//! their errors, and retrying failed ones. The operator (`OPS_TOKEN`) sees every account; an
//! admin key sees its own account's deliveries (and no job or worker internals).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::ops::{self, DeliveryFilter, Scope};
use entity::{operator_action, sending_pause};

use super::tickets::{Delivery, DeliveryStatus};
use super::types::PageInfo;
use super::webhooks::{WebhookDeliveryStatus, WebhookEvent};
use super::{ApiResult, Caller, cost, cursor, db, not_found_id, ops_scope, parse_id, principal};

/// Deliveries by state.
#[derive(SimpleObject)]
pub struct DeliveryCounts {
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Being sent right now.
    pub sending: i64,
    /// Failed transiently, next attempt scheduled.
    pub retrying: i64,
    /// Accepted by the SMTP server.
    pub sent: i64,
    /// Refused for good or out of attempts.
    pub failed: i64,
    /// Cancelled before they were sent.
    pub cancelled: i64,
}

/// Queue jobs by state (routing and send jobs alike).
#[derive(SimpleObject)]
pub struct JobCounts {
    /// Waiting to be picked up (including retries scheduled for later).
    pub pending: i64,
    /// Taken by a worker.
    pub running: i64,
    /// Finished in the last hour. Finished jobs are kept for `JOB_RETENTION_DAYS`, and
    /// counting all of them would read that whole history on every call; the all-time count
    /// of mails is `DeliveryCounts.sent`.
    pub done: i64,
    /// Failed and due to run again (a database error in the handler).
    pub failed: i64,
    /// Failed for good.
    pub killed: i64,
    /// Of `pending`, set aside while their account's sending (or everyone's) is paused;
    /// due again when it is resumed.
    pub parked: i64,
}

/// One minute of the last hour.
#[derive(SimpleObject)]
pub struct MinuteCount {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Deliveries accepted by SMTP in that minute.
    pub sent: i64,
    /// Deliveries that failed for good in that minute.
    pub failed: i64,
}

/// The queue at a glance.
#[derive(SimpleObject)]
pub struct QueueStats {
    /// Deliveries by state.
    pub deliveries: DeliveryCounts,
    /// Queue jobs by state; null for admin keys (jobs belong to no account).
    pub jobs: Option<JobCounts>,
    /// Age in seconds of the oldest delivery still waiting for its first attempt; null when
    /// none waits. Deliveries of accounts whose own sending is paused are not counted.
    pub oldest_pending_age_seconds: Option<f64>,
    /// Sent and failed deliveries per minute over the last hour, oldest first (60 entries).
    pub per_minute: Vec<MinuteCount>,
    /// Work still to do, by account; for an admin key, its own account only. Read only when
    /// selected: it counts every waiting ticket.
    pub backlog: Backlog,
}

/// Work still to do: tickets waiting for routing and e-mail deliveries not finished (pending,
/// sending or retrying). A flood on one account shows as that account at the top of `top`.
#[derive(SimpleObject)]
pub struct Backlog {
    /// Accounts with any work waiting.
    pub accounts: i64,
    /// Tickets waiting for routing, all those accounts together.
    pub tickets_waiting: i64,
    /// E-mail deliveries not finished, all those accounts together (webhook deliveries are
    /// not counted).
    pub deliveries_waiting: i64,
    /// The accounts with the most work waiting (tickets and deliveries together), largest
    /// first; at most 10.
    pub top: Vec<AccountBacklog>,
}

/// One account's work still to do.
#[derive(SimpleObject)]
pub struct AccountBacklog {
    /// The account.
    pub account_id: ID,
    /// Its name.
    pub account_name: String,
    /// Its tickets waiting for routing.
    pub tickets_waiting: i64,
    /// Its e-mail deliveries not finished.
    pub deliveries_waiting: i64,
    /// Age in seconds of its oldest ticket waiting for routing; null when none waits.
    pub oldest_ticket_waiting_seconds: Option<f64>,
}

/// Whether a worker process is still heard from.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WorkerStatus {
    /// Its heartbeat is recent.
    Alive,
    /// Its heartbeat stopped; its jobs go to other workers.
    Gone,
}

/// A worker process.
#[derive(SimpleObject)]
pub struct WorkerProcess {
    /// The name it registered with the queue.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id on that machine; null if unknown.
    pub pid: Option<i64>,
    /// When it started; null if unknown.
    pub started_at: Option<DateTime<Utc>>,
    /// Its last heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// Jobs it holds now.
    pub jobs_in_flight: i64,
    /// `GONE` once its heartbeat has stopped.
    pub status: WorkerStatus,
}

/// A delivery and its cursor.
#[derive(SimpleObject)]
pub struct DeliveryEdge {
    /// Pass as `after` for the deliveries older than this one.
    pub cursor: String,
    /// The delivery.
    pub node: Delivery,
}

/// A page of deliveries, newest first.
#[derive(SimpleObject)]
pub struct DeliveryConnection {
    /// The deliveries with their cursors.
    pub edges: Vec<DeliveryEdge>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// A duration as seconds with millisecond precision, never negative (clocks of two
/// processes may differ slightly).
fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn db_status(s: DeliveryStatus) -> &'static str {
    domain::vocab::DeliveryStatus::from(s).as_str()
}

/// Sending paused for everyone or for one account: due e-mail deliveries, webhook
/// deliveries and routing wait until it is resumed; nothing is failed or lost.
pub struct SendingPause(pub sending_pause::Model);

#[Object]
impl SendingPause {
    /// The account paused; null when sending is paused for everyone.
    async fn account_id(&self) -> Option<ID> {
        self.0.account_id.map(Into::into)
    }
    /// When it was paused.
    async fn paused_at(&self) -> DateTime<Utc> {
        self.0.paused_at
    }
    /// Who paused it (`operator`, or an admin key by its prefix).
    async fn paused_by(&self) -> &str {
        &self.0.paused_by
    }
    /// Why, as they wrote it.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
}

/// What `pauseSending` did.
#[derive(SimpleObject)]
pub struct PauseResult {
    /// The pause (the earlier one, with its reason, when it was paused already).
    pub pause: SendingPause,
    /// False when it was paused already.
    pub changed: bool,
}

/// What `resumeSending` did.
#[derive(SimpleObject)]
pub struct ResumeResult {
    /// False when it was not paused.
    pub changed: bool,
    /// Jobs set aside during the pause that are due again (those another pause still covers
    /// stay aside).
    pub jobs_resumed: i64,
}

/// What was done to the machinery.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::values::OperatorActionKind")]
pub enum OperatorActionKind {
    /// Sending paused.
    PauseSending,
    /// Sending resumed.
    ResumeSending,
    /// A failed e-mail delivery put back for one more attempt.
    RetryDelivery,
    /// Every e-mail delivery failed since a time put back.
    RetryFailedDeliveries,
    /// A failed webhook delivery put back for one more attempt.
    RetryWebhookDelivery,
    /// A waiting e-mail delivery cancelled.
    CancelDelivery,
}

/// One action on the machinery, with who took it, when and why.
pub struct OperatorAction(pub operator_action::Model);

#[Object]
impl OperatorAction {
    /// Stable id.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// When.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Who (`operator`, or an admin key by its prefix).
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// What.
    async fn action(&self) -> OperatorActionKind {
        self.0.action.into()
    }
    /// The account it was done to; null for everyone.
    async fn account_id(&self) -> Option<ID> {
        self.0.account_id.map(Into::into)
    }
    /// The delivery or webhook delivery it was done to, when one.
    async fn subject_id(&self) -> Option<ID> {
        self.0.subject.clone().map(ID)
    }
    /// Why, when they said.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
}

/// An action and its cursor.
#[derive(SimpleObject)]
pub struct OperatorActionEdge {
    /// Pass as `after` for the older actions.
    pub cursor: String,
    /// The action.
    pub node: OperatorAction,
}

/// A page of actions, newest first.
#[derive(SimpleObject)]
pub struct OperatorActionConnection {
    /// The actions with their cursors.
    pub edges: Vec<OperatorActionEdge>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// A webhook delivery as the machinery sees it: its state, attempts and last error, never its
/// payload (which holds visitors' words).
pub struct WebhookDeliverySummary(pub entity::webhook_delivery::Model);

#[Object]
impl WebhookDeliverySummary {
    /// The webhook delivery's id (also its `webhook-id` header).
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The webhook it goes to.
    async fn webhook_id(&self) -> ID {
        self.0.webhook_id.into()
    }
    /// The account it belongs to.
    async fn account_id(&self) -> ID {
        self.0.account_id.into()
    }
    /// The event.
    async fn event(&self) -> Option<WebhookEvent> {
        WebhookEvent::from_name(&self.0.event)
    }
    /// Current state.
    async fn status(&self) -> WebhookDeliveryStatus {
        self.0.status.into()
    }
    /// Requests made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Why the last request failed (the receiver's status, or no answer), if it did.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When the next attempt is due, while `RETRYING`.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// When the event happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its state last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A webhook delivery and its cursor.
#[derive(SimpleObject)]
pub struct WebhookDeliverySummaryEdge {
    /// Pass as `after` for the older ones.
    pub cursor: String,
    /// The webhook delivery.
    pub node: WebhookDeliverySummary,
}

/// A page of webhook deliveries, newest first.
#[derive(SimpleObject)]
pub struct WebhookDeliverySummaryConnection {
    /// The webhook deliveries with their cursors.
    pub edges: Vec<WebhookDeliverySummaryEdge>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// Who is acting, as the record names them, and what they may act on: the operator on every
/// account, an admin key on its own.
async fn acting(ctx: &Context<'_>) -> ApiResult<(Scope, String)> {
    if let Caller::Operator = ctx.data::<Caller>()? {
        return Ok((Scope::All, domain::audit::OPERATOR.to_owned()));
    }
    let caller = principal(ctx)?;
    let account = caller.require_admin()?;
    let actor = domain::ticket_work::actor(db(ctx)?, caller.key_id).await?;
    Ok((Scope::Account(account), actor))
}

/// The scope a pause or resume names: `accountId`, or when absent everyone (operator) or the
/// admin's own account. An admin naming another account gets `NOT_FOUND`.
fn pause_scope(caller: Scope, account_id: Option<&ID>) -> ApiResult<Scope> {
    let Some(id) = account_id else {
        return Ok(caller);
    };
    let id = not_found_id("account", id)?;
    match caller {
        Scope::Account(own) if own != id => Err(domain::Error::NotFound("account").into()),
        _ => Ok(Scope::Account(id)),
    }
}

/// Operations queries.
#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Counts of deliveries (and, for the operator, queue jobs) by state, the oldest waiting
    /// delivery, the last hour's throughput and the backlog by account. Operator or admin key.
    async fn queue_stats(&self, ctx: &Context<'_>) -> ApiResult<QueueStats> {
        let scope = ops_scope(ctx)?;
        let with_backlog = ctx.look_ahead().field("backlog").exists();
        let s = ops::queue_stats(db(ctx)?, scope, with_backlog).await?;
        let backlog = s.backlog.unwrap_or_default();
        let now = domain::now();
        Ok(QueueStats {
            backlog: Backlog {
                accounts: backlog.accounts,
                tickets_waiting: backlog.tickets,
                deliveries_waiting: backlog.deliveries,
                top: backlog
                    .top
                    .into_iter()
                    .map(|a| AccountBacklog {
                        account_id: a.account_id.into(),
                        account_name: a.account_name,
                        tickets_waiting: a.tickets,
                        deliveries_waiting: a.deliveries,
                        oldest_ticket_waiting_seconds: a.oldest_ticket_at.map(|t| seconds(now - t)),
                    })
                    .collect(),
            },
            deliveries: DeliveryCounts {
                pending: s.deliveries.pending,
                sending: s.deliveries.sending,
                retrying: s.deliveries.retrying,
                sent: s.deliveries.sent,
                failed: s.deliveries.failed,
                cancelled: s.deliveries.cancelled,
            },
            jobs: s.jobs.map(|j| JobCounts {
                pending: j.pending,
                running: j.running,
                done: j.done_last_hour,
                failed: j.failed,
                killed: j.killed,
                parked: j.parked,
            }),
            oldest_pending_age_seconds: s.oldest_pending_age.map(seconds),
            per_minute: s
                .per_minute
                .into_iter()
                .map(|m| MinuteCount {
                    minute: m.minute,
                    sent: m.sent,
                    failed: m.failed,
                })
                .collect(),
        })
    }

    /// The worker processes, most recently seen first; a worker is `GONE` after three missed
    /// heartbeats (15 s). Operator only.
    /// Cost: counted as 200 (the most listed).
    #[graphql(complexity = "cost::list(cost::WORKERS, child_complexity)")]
    async fn workers(&self, ctx: &Context<'_>) -> ApiResult<Vec<WorkerProcess>> {
        if ops_scope(ctx)? != ops::Scope::All {
            return Err(domain::Error::Forbidden.into());
        }
        let gone_after = domain::infra::queue::HEARTBEAT * domain::infra::queue::MISSED_HEARTBEATS;
        Ok(ops::workers(db(ctx)?, gone_after)
            .await?
            .into_iter()
            .map(|w| WorkerProcess {
                status: if w.alive {
                    WorkerStatus::Alive
                } else {
                    WorkerStatus::Gone
                },
                id: w.id,
                host: w.host,
                pid: w.pid.map(i64::from),
                started_at: w.started_at,
                last_seen_at: w.last_seen,
                jobs_in_flight: w.jobs_in_flight,
            })
            .collect())
    }

    /// The sending pauses in force, the pause of everyone first: every one for the operator;
    /// for an admin key, the pause of everyone and its own account's. Empty when sending goes
    /// on. Operator or admin key.
    /// Cost: counted as 1,000 (one per account at most; few in practice).
    #[graphql(complexity = "cost::list(1_000, child_complexity)")]
    async fn sending_pauses(&self, ctx: &Context<'_>) -> ApiResult<Vec<SendingPause>> {
        let scope = ops_scope(ctx)?;
        Ok(domain::pauses::list(db(ctx)?, scope)
            .await?
            .into_iter()
            .map(SendingPause)
            .collect())
    }

    /// What was done to the machinery (pauses, resumes, deliveries put back or cancelled),
    /// newest first, with who and why: every action for the operator; an account's own for
    /// its admin key. `first` is 1 to 200.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn operator_actions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<OperatorActionConnection> {
        let scope = ops_scope(ctx)?;
        let after = cursor::after("operator_action", after.as_deref())?;
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let (rows, more) = domain::audit::list(db(ctx)?, scope, first, after).await?;
        let edges: Vec<OperatorActionEdge> = rows
            .into_iter()
            .map(|a| OperatorActionEdge {
                cursor: cursor::encode("operator_action", a.id),
                node: OperatorAction(a),
            })
            .collect();
        Ok(OperatorActionConnection {
            page_info: PageInfo {
                has_next_page: more,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// Webhook deliveries in one state, newest first, with their attempts and last error (not
    /// their payloads): every account's for the operator, its own for an admin key. `first`
    /// is 1 to 200.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        status: WebhookDeliveryStatus,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<WebhookDeliverySummaryConnection> {
        let scope = ops_scope(ctx)?;
        let after = cursor::after("webhook_delivery", after.as_deref())?;
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let (rows, more) =
            ops::list_webhook_deliveries(db(ctx)?, scope, status.into(), first, after).await?;
        let edges: Vec<WebhookDeliverySummaryEdge> = rows
            .into_iter()
            .map(|d| WebhookDeliverySummaryEdge {
                cursor: cursor::encode("webhook_delivery", d.id),
                node: WebhookDeliverySummary(d),
            })
            .collect();
        Ok(WebhookDeliverySummaryConnection {
            page_info: PageInfo {
                has_next_page: more,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// Deliveries, newest first, with their last error and attempts; filter by state, by the
    /// ticket's topic (ignoring case) and by last change (`since`). `first` is 1 to 200.
    /// Operator or admin key.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<DeliveryStatus>,
        topic: Option<String>,
        since: Option<DateTime<Utc>>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<DeliveryConnection> {
        let scope = ops_scope(ctx)?;
        let after = cursor::after("delivery", after.as_deref())?;
        let filter = DeliveryFilter {
            status: status.map(db_status),
            topic,
            since,
        };
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let page = ops::list_deliveries(db(ctx)?, scope, &filter, first, after).await?;
        let edges: Vec<DeliveryEdge> = page
            .deliveries
            .into_iter()
            .map(|(d, _)| DeliveryEdge {
                cursor: cursor::encode("delivery", d.id),
                node: Delivery(d),
            })
            .collect();
        Ok(DeliveryConnection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }
}

/// Operations mutations.
#[derive(Default)]
pub struct OpsMutation;

#[Object]
impl OpsMutation {
    /// Puts a `FAILED` delivery back on the queue for one more attempt, now. Any other state
    /// is refused (`BAD_USER_INPUT`): a sent delivery is never sent again. Operator or admin key.
    async fn retry_delivery(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Delivery> {
        let (scope, actor) = acting(ctx).await?;
        let id = parse_id(&id).ok_or(domain::Error::NotFound("delivery"))?;
        Ok(Delivery(
            ops::retry_delivery(db(ctx)?, scope, id, &actor).await?,
        ))
    }

    /// Pauses sending: due e-mail deliveries, webhook deliveries and routing wait, nothing is
    /// failed or lost, and the pause survives restarts. Without `accountId`, for everyone
    /// (operator) or the admin key's own account; an admin key may name only its own
    /// account. Holds within a second; jobs already running finish. An admin key may pause its
    /// account 10 times an hour (`RATE_LIMITED` beyond; the operator is not held to it). The
    /// operator pausing an account its admin paused takes that pause over (`changed`). Recorded with `reason` in
    /// `operatorActions`. Operator or admin key.
    async fn pause_sending(
        &self,
        ctx: &Context<'_>,
        account_id: Option<ID>,
        reason: String,
    ) -> ApiResult<PauseResult> {
        let (caller, actor) = acting(ctx).await?;
        let scope = pause_scope(caller, account_id.as_ref())?;
        let (pause, changed) =
            domain::pauses::pause(db(ctx)?, caller, scope, &actor, &reason).await?;
        Ok(PauseResult {
            pause: SendingPause(pause),
            changed,
        })
    }

    /// Resumes sending paused by `pauseSending` for the same scope: what waited is due again
    /// at once, taking turns with the other accounts' work. An account's own pause and the
    /// pause of everyone are separate: resuming one leaves the other. A pause the operator set
    /// is lifted by the operator only (`BAD_USER_INPUT` on `accountId` for an admin key).
    /// Recorded in `operatorActions`. Operator or admin key.
    async fn resume_sending(
        &self,
        ctx: &Context<'_>,
        account_id: Option<ID>,
    ) -> ApiResult<ResumeResult> {
        let (caller, actor) = acting(ctx).await?;
        let scope = pause_scope(caller, account_id.as_ref())?;
        let resumed = domain::pauses::resume(db(ctx)?, caller, scope, &actor).await?;
        Ok(ResumeResult {
            changed: resumed.changed,
            jobs_resumed: i64::try_from(resumed.jobs).unwrap_or(i64::MAX),
        })
    }

    /// Puts a `FAILED` webhook delivery back on the queue for one more attempt, now (the same
    /// payload and `webhook-id`, so receivers de-duplicate). Any other state is refused
    /// (`BAD_USER_INPUT`). Recorded in `operatorActions`. Operator or admin key.
    async fn retry_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<WebhookDeliverySummary> {
        let (scope, actor) = acting(ctx).await?;
        let id = not_found_id("webhook delivery", &id)?;
        Ok(WebhookDeliverySummary(
            ops::retry_webhook_delivery(db(ctx)?, scope, id, &actor).await?,
        ))
    }

    /// Cancels a delivery waiting for an attempt (`PENDING` or `RETRYING`): it becomes
    /// `CANCELLED`, final, with who and `reason` as its `lastError` and a line in its ticket's
    /// timeline. A delivery being sent right now, or final, is refused (`BAD_USER_INPUT`).
    /// Recorded in `operatorActions`. Operator or admin key.
    async fn cancel_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> ApiResult<Delivery> {
        let (scope, actor) = acting(ctx).await?;
        let id = not_found_id("delivery", &id)?;
        Ok(Delivery(
            ops::cancel_delivery(db(ctx)?, scope, id, &actor, &reason).await?,
        ))
    }

    /// Puts back every `FAILED` delivery that failed since `since`; returns how many.
    /// Operator or admin key (its own account's).
    async fn retry_failed_deliveries(
        &self,
        ctx: &Context<'_>,
        since: DateTime<Utc>,
    ) -> ApiResult<i64> {
        let (scope, actor) = acting(ctx).await?;
        Ok(ops::retry_failed(db(ctx)?, scope, since, &actor).await? as i64)
    }
}
