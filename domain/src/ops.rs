//! What on-call operators see and do: queue and delivery counts, the worker processes, the
//! deliveries with their errors, and putting failed deliveries back on the queue.
//!
//! Everything is scoped: the operator (`OPS_TOKEN`) sees every account, an account's admin key
//! sees only that account's deliveries. Counts come from our deliveries table (the record of
//! truth) and, for the operator, from apalis' job and worker tables.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use entity::{delivery, ticket, webhook_delivery};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    FromQueryResult, IdenStatic, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::infra::events::Event;
use crate::infra::queue;
use crate::vocab::{DeliveryStatus, WebhookStatus};
use crate::{Error, Result, deliveries, now};
use entity::values::OperatorActionKind;

pub use crate::scope::Scope;

/// Deliveries by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub sending: i64,
    pub retrying: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// apalis jobs by state (operator only: jobs carry no account).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: i64,
    pub running: i64,
    /// Finished in the last hour.
    pub done_last_hour: i64,
    pub failed: i64,
    pub killed: i64,
    /// Of `pending`, set aside while their sending is paused.
    pub parked: i64,
}

/// The queue at a glance.
#[derive(Clone, Debug)]
pub struct QueueStats {
    pub deliveries: DeliveryCounts,
    pub jobs: Option<JobCounts>,
    /// Age of the oldest delivery not yet attempted (`PENDING`), if any.
    pub oldest_pending_age: Option<Duration>,
    /// Deliveries sent and failed per minute over the last hour, oldest minute first, every
    /// minute present (zero when nothing happened).
    pub per_minute: Vec<MinuteCounts>,
    /// Work still to do, by account, when asked for (it reads every waiting ticket).
    pub backlog: Option<Backlog>,
}

/// How many accounts a backlog lists at most, the largest first: what one look at the queue
/// reads and shows stays the same however many accounts have work waiting.
pub const BACKLOG_TOP: i64 = 10;

/// Work still to do, by account: tickets waiting for routing and e-mail deliveries not finished
/// (pending, sending or retrying). A flood on one account shows here as that account at the
/// top with a count far above the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Accounts with any work waiting.
    pub accounts: i64,
    /// Tickets waiting for routing, all those accounts together.
    pub tickets: i64,
    /// E-mail deliveries not finished, all those accounts together.
    pub deliveries: i64,
    /// The accounts with the most work waiting (tickets and deliveries together), largest
    /// first, at most [`BACKLOG_TOP`].
    pub top: Vec<AccountBacklog>,
}

/// One account's work still to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountBacklog {
    pub account_id: Uuid,
    pub account_name: String,
    /// Tickets waiting for routing.
    pub tickets: i64,
    /// E-mail deliveries not finished.
    pub deliveries: i64,
    /// When the oldest of its tickets waiting for routing was opened.
    pub oldest_ticket_at: Option<DateTime<Utc>>,
}

/// A row of the backlog statement: an account, with the totals over every account.
#[derive(FromQueryResult)]
struct BacklogRow {
    account_id: Uuid,
    account_name: String,
    tickets: i64,
    deliveries: i64,
    oldest_ticket_at: Option<DateTime<Utc>>,
    all_accounts: i64,
    all_tickets: i64,
    all_deliveries: i64,
}

/// One minute of the last hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteCounts {
    pub minute: DateTime<Utc>,
    pub sent: i64,
    pub failed: i64,
}

#[derive(FromQueryResult)]
struct StatusCount {
    status: DeliveryStatus,
    count: i64,
}

/// A count of apalis' jobs by apalis' own status names.
#[derive(FromQueryResult)]
struct JobStatusCount {
    status: String,
    count: i64,
}

/// How many deliveries reached `status` in each minute since `since` (by `at`): pairs of the
/// minute (Unix seconds / 60) and the count.
async fn per_minute(
    db: &impl ConnectionTrait,
    scope: Scope,
    status: DeliveryStatus,
    at: delivery::Column,
    since: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>> {
    let column = at.as_str();
    let bucket = match db.get_database_backend() {
        // FLOOR: casting EXTRACT's numeric to BIGINT rounds, which put a mail sent in a
        // minute's last half second into the next minute (outside the series until then).
        DatabaseBackend::Postgres => {
            format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 60) AS BIGINT)")
        }
        _ => format!("(CAST(strftime('%s', {column}) AS INTEGER) / 60)"),
    };
    Ok(delivery::Entity::find()
        .select_only()
        .column_as(Expr::cust(bucket.clone()), "minute")
        .column_as(delivery::Column::Id.count(), "n")
        .filter(scope.deliveries())
        .filter(delivery::Column::Status.eq(status))
        .filter(at.gte(since))
        .group_by(Expr::cust(bucket))
        .into_tuple()
        .all(db)
        .await?)
}

/// Deliveries by state, from the counts the database keeps as deliveries change (migration
/// `m20261202_000013`): the folded tallies plus the changes not folded yet, in one statement,
/// so a reader never sees a change twice or not at all. A few rows per account, whatever the
/// history.
async fn delivery_counts(db: &impl ConnectionTrait, scope: Scope) -> Result<DeliveryCounts> {
    let backend = db.get_database_backend();
    let (filter, values) = scope.raw_filter(backend, "WHERE");
    let rows = StatusCount::find_by_statement(Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT status, CAST(SUM(n) AS BIGINT) AS count FROM (\
             SELECT status, n FROM delivery_tallies{filter} \
             UNION ALL SELECT status, delta AS n FROM delivery_tally_changes{filter}\
             ) AS tallied GROUP BY status"
        ),
        values,
    ))
    .all(db)
    .await?;
    let mut deliveries = DeliveryCounts::default();
    for r in rows {
        match r.status {
            DeliveryStatus::Pending => deliveries.pending = r.count,
            DeliveryStatus::Sending => deliveries.sending = r.count,
            DeliveryStatus::Retrying => deliveries.retrying = r.count,
            DeliveryStatus::Sent => deliveries.sent = r.count,
            DeliveryStatus::Failed => deliveries.failed = r.count,
            DeliveryStatus::Cancelled => deliveries.cancelled = r.count,
        }
    }
    Ok(deliveries)
}

/// The backlog by account, in one statement: tickets waiting for routing from their partial
/// index (migration `m20261202_000016`; it holds the waiting tickets only, never the routed
/// history), deliveries not finished from the tallies. What it reads grows with the work
/// waiting and the number of accounts, not with history.
async fn backlog(db: &impl ConnectionTrait, scope: Scope) -> Result<Backlog> {
    let backend = db.get_database_backend();
    let (filter, values) = scope.raw_filter(backend, "AND");
    let unfinished = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Retrying,
    ]
    .map(|s| format!("'{}'", s.as_str()))
    .join(", ");
    let rows = BacklogRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        format!(
            "WITH waiting AS (\
               SELECT account_id, COUNT(*) AS tickets, CAST(0 AS BIGINT) AS deliveries, \
                      MIN(created_at) AS oldest FROM tickets \
                 WHERE routed_at IS NULL{filter} GROUP BY account_id \
               UNION ALL SELECT account_id, 0, n, NULL FROM delivery_tallies \
                 WHERE status IN ({unfinished}){filter} \
               UNION ALL SELECT account_id, 0, delta, NULL FROM delivery_tally_changes \
                 WHERE status IN ({unfinished}){filter}), \
             per_account AS (\
               SELECT account_id, CAST(SUM(tickets) AS BIGINT) AS tickets, \
                      CAST(SUM(deliveries) AS BIGINT) AS deliveries, MIN(oldest) AS oldest \
                 FROM waiting GROUP BY account_id HAVING SUM(tickets) + SUM(deliveries) > 0), \
             ranked AS (\
               SELECT account_id, tickets, deliveries, oldest, \
                      COUNT(*) OVER () AS all_accounts, \
                      CAST(SUM(tickets) OVER () AS BIGINT) AS all_tickets, \
                      CAST(SUM(deliveries) OVER () AS BIGINT) AS all_deliveries \
                 FROM per_account ORDER BY tickets + deliveries DESC, account_id \
                 LIMIT {BACKLOG_TOP}) \
             SELECT ranked.account_id, accounts.name AS account_name, ranked.tickets, \
                    ranked.deliveries, ranked.oldest AS oldest_ticket_at, all_accounts, \
                    all_tickets, all_deliveries \
               FROM ranked JOIN accounts ON accounts.id = ranked.account_id \
              ORDER BY ranked.tickets + ranked.deliveries DESC, ranked.account_id"
        ),
        values,
    ))
    .all(db)
    .await?;
    let mut out = Backlog::default();
    if let Some(first) = rows.first() {
        out.accounts = first.all_accounts;
        out.tickets = first.all_tickets;
        out.deliveries = first.all_deliveries;
    }
    out.top = rows
        .into_iter()
        .map(|r| AccountBacklog {
            account_id: r.account_id,
            account_name: r.account_name,
            tickets: r.tickets,
            deliveries: r.deliveries,
            oldest_ticket_at: r.oldest_ticket_at,
        })
        .collect();
    Ok(out)
}

/// Folds the changes the PostgreSQL triggers appended into the tallies, in one statement: the
/// rows it deletes are exactly the rows it adds up, so a change committed meanwhile stays for
/// the next fold, and two workers folding at once never count a change twice (the second
/// skips rows the first deleted). Sorted, so two folds lock tally rows in the same order.
/// SQLite's triggers add to the tallies directly: nothing to fold there.
pub async fn fold_tallies(db: &impl ConnectionTrait) -> Result<()> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    db.execute_unprepared(
        "WITH folded AS (\
               DELETE FROM delivery_tally_changes WHERE id IN (\
                 SELECT id FROM delivery_tally_changes ORDER BY id LIMIT 50000) \
               RETURNING account_id, status, delta) \
             INSERT INTO delivery_tallies (account_id, status, n) \
             SELECT account_id, status, SUM(delta) FROM folded \
             GROUP BY account_id, status ORDER BY account_id, status \
             ON CONFLICT (account_id, status) DO UPDATE SET n = delivery_tallies.n + EXCLUDED.n",
    )
    .await?;
    Ok(())
}

/// Counts, the oldest pending delivery, the last hour's throughput and, `with_backlog`, the
/// backlog by account; all read in one snapshot, so they agree with each other.
pub async fn queue_stats(
    db: &DatabaseConnection,
    scope: Scope,
    with_backlog: bool,
) -> Result<QueueStats> {
    let txn = crate::infra::db::begin_snapshot(db).await?;
    let stats = queue_stats_in(&txn, scope, with_backlog).await?;
    txn.commit().await?;
    Ok(stats)
}

async fn queue_stats_in(
    db: &impl ConnectionTrait,
    scope: Scope,
    with_backlog: bool,
) -> Result<QueueStats> {
    let deliveries = delivery_counts(db, scope).await?;
    // An account that paused its own sending waits on purpose: its deliveries do not make the
    // oldest (which pages on-call through TicketingOldestDeliveryWaiting); the pause of
    // everyone is the alert rule's to leave out.
    let unpaused = crate::pauses::Snapshot::read(db)
        .await?
        .unpaused(delivery::Column::AccountId)
        .unwrap_or_else(Condition::all);
    let oldest = delivery::Entity::find()
        .filter(scope.deliveries())
        .filter(unpaused)
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .order_by_asc(delivery::Column::CreatedAt)
        .one(db)
        .await?;
    let current = now();
    let since = current - Duration::hours(1);
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap_or(t);
    let mut buckets: BTreeMap<DateTime<Utc>, MinuteCounts> = BTreeMap::new();
    let first = minute(since) + Duration::minutes(1);
    for i in 0..60 {
        let m = first + Duration::minutes(i);
        buckets.insert(
            m,
            MinuteCounts {
                minute: m,
                sent: 0,
                failed: 0,
            },
        );
    }
    // Counted in SQL from the last hour's rows only (indexed by state and time): nothing of
    // history is read, and no row is loaded.
    for (status, at) in [
        (DeliveryStatus::Sent, delivery::Column::SentAt),
        (DeliveryStatus::Failed, delivery::Column::UpdatedAt),
    ] {
        for (epoch_minute, n) in per_minute(db, scope, status, at, since).await? {
            let Some(m) = Utc.timestamp_opt(epoch_minute * 60, 0).single() else {
                continue;
            };
            if let Some(b) = buckets.get_mut(&m) {
                match status {
                    DeliveryStatus::Sent => b.sent += n,
                    _ => b.failed += n,
                }
            }
        }
    }
    let jobs = match scope {
        Scope::All => Some(job_counts(db, since).await?),
        Scope::Account(_) => None,
    };
    Ok(QueueStats {
        deliveries,
        jobs,
        backlog: match with_backlog {
            true => Some(backlog(db, scope).await?),
            false => None,
        },
        oldest_pending_age: oldest.map(|d| current - d.created_at),
        per_minute: buckets.into_values().collect(),
    })
}

/// Jobs by state. Unfinished ones are few and counted; finished ones pile up until retention
/// (`JOB_RETENTION_DAYS`), so only those finished in the last hour are counted. Both through
/// the (status, done_at) index: nothing of the retained history is read.
async fn job_counts(db: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<JobCounts> {
    let backend = db.get_database_backend();
    let table = queue::jobs_table(backend);
    let (job_type, done_since, since): (_, _, sea_orm::Value) = match backend {
        DatabaseBackend::Postgres => ("$1", "$2", since.into()),
        // apalis-sqlite keeps `done_at` in Unix seconds.
        _ => ("?", "?", since.timestamp().into()),
    };
    let rows = JobStatusCount::find_by_statement(Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT status, COUNT(*) AS count FROM {table} WHERE job_type = {job_type} \
             AND (status IN ('Pending', 'Queued', 'Running', 'Failed', 'Killed') \
                  OR (status = 'Done' AND done_at >= {done_since})) GROUP BY status"
        ),
        [queue::QUEUE.into(), since],
    ))
    .all(db)
    .await?;
    let mut out = JobCounts::default();
    for r in rows {
        match r.status.as_str() {
            "Pending" => out.pending += r.count,
            "Queued" | "Running" => out.running += r.count,
            "Done" => out.done_last_hour += r.count,
            "Failed" => out.failed += r.count,
            "Killed" => out.killed += r.count,
            _ => {}
        }
    }
    out.parked = crate::pauses::parked_jobs(db).await?;
    Ok(out)
}

/// A worker process as its queue registration shows it.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_seen: DateTime<Utc>,
    pub jobs_in_flight: i64,
    /// False once its heartbeat has stopped for longer than `gone_after`.
    pub alive: bool,
}

/// The name a worker registers under: `ticket-mail/<host>/<pid>/<ulid>`; the ULID's time is
/// the start time. Unique per process and per restart.
pub fn worker_name(host: &str, pid: u32) -> String {
    let host: String = host
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    format!("{}/{host}/{pid}/{}", queue::QUEUE, ulid::Ulid::new())
}

#[derive(FromQueryResult)]
struct WorkerRow {
    id: String,
    last_seen: i64,
    in_flight: i64,
}

/// The most worker processes `workers` lists (the query's `LIMIT`), most recently seen first.
pub const MAX_WORKERS_LISTED: u64 = 200;

/// The worker processes of the ticket queue, most recently seen first. A worker is alive
/// while its last heartbeat is younger than `gone_after`.
pub async fn workers(
    db: &impl ConnectionTrait,
    gone_after: std::time::Duration,
) -> Result<Vec<WorkerInfo>> {
    let backend = db.get_database_backend();
    let (last_seen, placeholder) = match backend {
        DatabaseBackend::Postgres => ("CAST(EXTRACT(EPOCH FROM w.last_seen) AS BIGINT)", "$1"),
        _ => ("w.last_seen", "?"),
    };
    let sql = format!(
        "SELECT w.id, {last_seen} AS last_seen, \
         (SELECT COUNT(*) FROM {jobs} j WHERE j.lock_by = w.id AND j.status IN ('Queued', 'Running')) AS in_flight \
         FROM {workers} w WHERE w.worker_type = {placeholder} ORDER BY w.last_seen DESC LIMIT {MAX_WORKERS_LISTED}",
        jobs = queue::jobs_table(backend),
        workers = queue::workers_table(backend),
    );
    let rows = WorkerRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [queue::QUEUE.into()],
    ))
    .all(db)
    .await?;
    let current = now();
    let gone_after = Duration::from_std(gone_after).unwrap_or(Duration::seconds(15));
    Ok(rows
        .into_iter()
        .map(|r| {
            let last_seen = Utc
                .timestamp_opt(r.last_seen, 0)
                .single()
                .unwrap_or(current);
            let mut parts = r.id.split('/');
            let (_, host, pid, started) = (parts.next(), parts.next(), parts.next(), parts.next());
            WorkerInfo {
                host: host.unwrap_or("unknown").to_owned(),
                pid: pid.and_then(|p| p.parse().ok()),
                started_at: started
                    .and_then(|u| ulid::Ulid::from_string(u).ok())
                    .and_then(|u| Utc.timestamp_millis_opt(u.timestamp_ms() as i64).single()),
                alive: current - last_seen < gone_after,
                last_seen,
                jobs_in_flight: r.in_flight,
                id: r.id,
            }
        })
        .collect())
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub status: Option<&'static str>,
    pub topic: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// A page of deliveries, newest first, each with its ticket.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    pub deliveries: Vec<(delivery::Model, Option<ticket::Model>)>,
    pub has_next_page: bool,
}

/// Deliveries, newest first (by creation, then id), after the given one.
pub async fn list_deliveries(
    db: &impl ConnectionTrait,
    scope: Scope,
    filter: &DeliveryFilter,
    first: u64,
    after: Option<Uuid>,
) -> Result<DeliveryPage> {
    crate::tickets::check_page_size(first)?;
    let mut query = delivery::Entity::find()
        .find_also_related(ticket::Entity)
        .filter(scope.deliveries());
    if let Some(s) = filter.status {
        query = query.filter(delivery::Column::Status.eq(s));
    }
    if let Some(topic) = &filter.topic {
        query = query.filter(ticket::Column::TopicKey.eq(crate::validate::tag_key(topic.trim())));
    }
    if let Some(since) = filter.since {
        query = query.filter(delivery::Column::UpdatedAt.gte(since));
    }
    // Delivery ids are UUIDv7: ordering by id is ordering by creation.
    if let Some(after) = after {
        query = query.filter(delivery::Column::Id.lt(after));
    }
    let mut rows = query
        .order_by_desc(delivery::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = crate::tickets::cut_page(&mut rows, first);
    Ok(DeliveryPage {
        deliveries: rows,
        has_next_page,
    })
}

/// Puts a FAILED delivery back on the queue for one more attempt, now. A delivery in any
/// other state is refused: a SENT one is never sent again.
pub async fn retry_delivery<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    scope: Scope,
    id: Uuid,
    actor: &str,
) -> Result<delivery::Model> {
    let txn = crate::infra::db::begin(db).await?;
    let found = delivery::Entity::find_by_id(id)
        .filter(scope.deliveries())
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    if found.status != DeliveryStatus::Failed {
        return Err(Error::invalid(
            "id",
            format!(
                "only FAILED deliveries can be retried; this one is {}",
                found.status.as_str()
            ),
        ));
    }
    let retried = deliveries::put_back(&txn, &found)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    audit::record(
        &txn,
        Action::on(
            actor,
            OperatorActionKind::RetryDelivery,
            found.account_id,
            found.id,
            None,
        ),
    )
    .await?;
    sea_orm::TransactionSession::commit(txn).await?;
    crate::infra::events::publish(db, &[Event::delivery_updated(&retried)]).await;
    Ok(retried)
}

/// Cancels a delivery (in scope) waiting for an attempt, with who and why as its last error
/// (its timeline shows it) and a line in the record. A delivery being sent right now, or
/// final, is refused: nothing half-written.
pub async fn cancel_delivery<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    scope: Scope,
    id: Uuid,
    actor: &str,
    reason: &str,
) -> Result<delivery::Model> {
    let reason = crate::validate::text("reason", reason)?;
    let txn = crate::infra::db::begin(db).await?;
    let found = delivery::Entity::find_by_id(id)
        .filter(scope.deliveries())
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    let why = format!("cancelled by {actor}: {reason}");
    if !deliveries::cancel(&txn, found.id, &why).await? {
        let now = match found.status {
            DeliveryStatus::Sending => "being sent right now".to_owned(),
            other => format!("{}, which is final", other.as_str()),
        };
        return Err(Error::invalid(
            "id",
            format!("only PENDING or RETRYING deliveries can be cancelled; this one is {now}"),
        ));
    }
    audit::record(
        &txn,
        Action::on(
            actor,
            OperatorActionKind::CancelDelivery,
            found.account_id,
            found.id,
            Some(&reason),
        ),
    )
    .await?;
    let cancelled = delivery::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    sea_orm::TransactionSession::commit(txn).await?;
    crate::infra::events::publish(db, &[Event::delivery_updated(&cancelled)]).await;
    Ok(cancelled)
}

/// Puts back every FAILED delivery (in scope) that failed since `since`; returns how many.
pub async fn retry_failed<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    scope: Scope,
    since: DateTime<Utc>,
    actor: &str,
) -> Result<u64> {
    let txn = crate::infra::db::begin(db).await?;
    let failed = delivery::Entity::find()
        .filter(scope.deliveries())
        .filter(delivery::Column::Status.eq(DeliveryStatus::Failed.as_str()))
        .filter(delivery::Column::UpdatedAt.gte(since))
        .all(&txn)
        .await?;
    for d in &failed {
        deliveries::put_back(&txn, d).await?;
    }
    // One line per account whose deliveries went back (the operator's call may cover many).
    let accounts: std::collections::BTreeSet<Uuid> = failed.iter().map(|d| d.account_id).collect();
    let reason = format!("failed since {}", since.to_rfc3339());
    for account in accounts {
        audit::record(
            &txn,
            Action {
                actor,
                account: Some(account),
                kind: OperatorActionKind::RetryFailedDeliveries,
                subject: None,
                reason: Some(&reason),
            },
        )
        .await?;
    }
    sea_orm::TransactionSession::commit(txn).await?;
    let put_back: Vec<_> = failed.iter().map(Event::delivery_updated).collect();
    crate::infra::events::publish(db, &put_back).await;
    Ok(failed.len() as u64)
}

/// A page of webhook deliveries in one state, newest first (by creation, then id), after the
/// delivery `after`. Read through the (status, created_at, id) indexes of migration 22.
pub async fn list_webhook_deliveries(
    db: &impl ConnectionTrait,
    scope: Scope,
    status: WebhookStatus,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<webhook_delivery::Model>, bool)> {
    use webhook_delivery::Column as C;
    crate::tickets::check_page_size(first)?;
    let mut query = webhook_delivery::Entity::find().filter(C::Status.eq(status));
    if let Scope::Account(account) = scope {
        query = query.filter(C::AccountId.eq(account));
    }
    if let Some(after) = after {
        let mut cursor = webhook_delivery::Entity::find_by_id(after);
        if let Scope::Account(account) = scope {
            cursor = cursor.filter(C::AccountId.eq(account));
        }
        let cursor = cursor
            .select_only()
            .column(C::CreatedAt)
            .into_tuple::<DateTime<Utc>>()
            .one(db)
            .await?
            .ok_or(Error::invalid(
                "after",
                "the cursor's delivery is gone; start again",
            ))?;
        query = query.filter(
            Condition::any().add(C::CreatedAt.lt(cursor)).add(
                Condition::all()
                    .add(C::CreatedAt.eq(cursor))
                    .add(C::Id.lt(after)),
            ),
        );
    }
    let mut rows = query
        .order_by_desc(C::CreatedAt)
        .order_by_desc(C::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let more = crate::tickets::cut_page(&mut rows, first);
    Ok((rows, more))
}

/// Puts a `FAILED` webhook delivery (in scope) back for one more attempt, now, and records
/// who did it. Any other state is refused.
pub async fn retry_webhook_delivery<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    scope: Scope,
    id: Uuid,
    actor: &str,
) -> Result<webhook_delivery::Model> {
    let txn = crate::infra::db::begin(db).await?;
    let mut found = webhook_delivery::Entity::find_by_id(id);
    if let Scope::Account(account) = scope {
        found = found.filter(webhook_delivery::Column::AccountId.eq(account));
    }
    let found = found
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("webhook delivery"))?;
    if found.status != WebhookStatus::Failed {
        return Err(Error::invalid(
            "id",
            format!(
                "only FAILED webhook deliveries can be retried; this one is {}",
                found.status.as_str()
            ),
        ));
    }
    let retried = crate::webhooks::attempts::put_back(&txn, &found)
        .await?
        .ok_or(Error::NotFound("webhook delivery"))?;
    audit::record(
        &txn,
        Action::on(
            actor,
            OperatorActionKind::RetryWebhookDelivery,
            found.account_id,
            found.id,
            None,
        ),
    )
    .await?;
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(retried)
}

/// How long a reading of the queue gauges serves: scrapes within it (from any number of
/// Prometheus servers) share one set of queries.
pub const GAUGES_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Renders every metric of the process in the Prometheus text format, the queue gauges
/// refreshed from the database at most every [`GAUGES_FRESH_FOR`].
pub async fn metrics(db: &DatabaseConnection) -> String {
    static READ_AT: tokio::sync::Mutex<Option<std::time::Instant>> =
        tokio::sync::Mutex::const_new(None);
    {
        // Held while refreshing: a scrape that arrives meanwhile waits for this reading.
        let mut read_at = READ_AT.lock().await;
        if read_at.is_none_or(|t| t.elapsed() >= GAUGES_FRESH_FOR) {
            refresh_gauges(db).await;
            *read_at = Some(std::time::Instant::now());
        }
    }
    crate::infra::telemetry::render()
}

/// Sets the queue gauges from the database; they keep their last values (not zeroed) when it
/// cannot be read.
async fn refresh_gauges(db: &DatabaseConnection) {
    match queue_stats(db, Scope::All, true).await {
        Ok(stats) => {
            let d = &stats.deliveries;
            for (status, n) in [
                ("PENDING", d.pending),
                ("SENDING", d.sending),
                ("RETRYING", d.retrying),
                ("SENT", d.sent),
                ("FAILED", d.failed),
                ("CANCELLED", d.cancelled),
            ] {
                metrics::gauge!("ticketing_deliveries", "status" => status).set(n as f64);
            }
            if let Some(j) = &stats.jobs {
                for (status, n) in [
                    ("pending", j.pending),
                    ("running", j.running),
                    ("failed", j.failed),
                    ("killed", j.killed),
                    ("parked", j.parked),
                ] {
                    metrics::gauge!("ticketing_jobs", "status" => status).set(n as f64);
                }
            }
            let age = stats
                .oldest_pending_age
                .map_or(0.0, |a| a.num_milliseconds() as f64 / 1000.0);
            metrics::gauge!("ticketing_oldest_pending_delivery_age_seconds").set(age);
            // Aggregates only: a label per account would grow the series without bound.
            let b = stats.backlog.unwrap_or_default();
            metrics::gauge!("ticketing_backlog_accounts").set(b.accounts as f64);
            metrics::gauge!("ticketing_backlog_tickets").set(b.tickets as f64);
            let largest = b.top.first().map_or(0, |a| a.tickets + a.deliveries);
            metrics::gauge!("ticketing_backlog_largest_account").set(largest as f64);
        }
        Err(error) => tracing::warn!(%error, "cannot refresh queue gauges"),
    }
    match crate::pauses::Snapshot::read(db).await {
        Ok(pauses) => {
            metrics::gauge!("ticketing_sending_paused_everyone")
                .set(f64::from(u8::from(pauses.everyone())));
            metrics::gauge!("ticketing_sending_paused_accounts").set(pauses.accounts() as f64);
        }
        Err(error) => tracing::warn!(%error, "cannot refresh the pause gauges"),
    }
}
