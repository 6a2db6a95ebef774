//! Operations for on-call operators: the queue at a glance, worker processes, deliveries with
//! their errors, and retrying failed ones. The operator (`OPS_TOKEN`) sees every account; an
//! admin key sees its own account's deliveries (and no job or worker internals).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::ops::{self, DeliveryFilter};

use super::tickets::{Delivery, DeliveryStatus};
use super::types::PageInfo;
use super::{ApiResult, cost, cursor, db, ops_scope, parse_id};

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
    /// none waits.
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
            },
            jobs: s.jobs.map(|j| JobCounts {
                pending: j.pending,
                running: j.running,
                done: j.done_last_hour,
                failed: j.failed,
                killed: j.killed,
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
        let scope = ops_scope(ctx)?;
        let id = parse_id(&id).ok_or(domain::Error::NotFound("delivery"))?;
        Ok(Delivery(ops::retry_delivery(db(ctx)?, scope, id).await?))
    }

    /// Puts back every `FAILED` delivery that failed since `since`; returns how many.
    /// Operator or admin key (its own account's).
    async fn retry_failed_deliveries(
        &self,
        ctx: &Context<'_>,
        since: DateTime<Utc>,
    ) -> ApiResult<i64> {
        let scope = ops_scope(ctx)?;
        Ok(ops::retry_failed(db(ctx)?, scope, since).await? as i64)
    }
}
