//! Job payloads and how they enter the apalis queue.
//!
//! Jobs are written with a plain INSERT into apalis' own table through the caller's SeaORM
//! connection, so they commit or roll back together with the rows that caused them (a ticket,
//! its deliveries, a delivery's retry). apalis' public push API needs a sqlx executor, which a
//! SeaORM transaction does not expose. The INSERT mirrors apalis-sqlite/-postgres 1.0.0's own
//! `sink.sql`; those crates are pinned to that version in the workspace for this reason, and
//! the integration tests run real workers over jobs written this way.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// apalis' job table on this engine: the one place outside apalis that knows where its
/// tables are (its SQL is written here, in `ops` and in the worker's `/readyz`).
pub fn jobs_table(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "apalis.jobs",
        _ => "Jobs",
    }
}

/// apalis' table of registered workers on this engine.
pub fn workers_table(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "apalis.workers",
        _ => "Workers",
    }
}

/// The apalis queue (`job_type`) all ticket jobs use. Fixed, so renaming a Rust type never
/// orphans queued jobs.
pub const QUEUE: &str = "ticket-mail";

/// How often a worker tells the queue it is alive.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// Heartbeats a worker may miss before its jobs go to others (and operators see it as gone).
pub const MISSED_HEARTBEATS: u32 = 3;

/// How often apalis itself re-runs a job whose handler returned an error (a database outage,
/// say). Delivery retries with backoff are ours and do not count against this.
const JOB_MAX_ATTEMPTS: i32 = 10;

/// A unit of background work. Payloads carry ids only; handlers re-read the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Resolve a new ticket's recipients, create its deliveries and make their first attempts.
    RouteTicket { ticket_id: Uuid },
    /// Make attempt number `attempt` (1-based) at one delivery.
    SendDelivery { delivery_id: Uuid, attempt: i32 },
    /// Make attempt number `attempt` (1-based) at one webhook delivery.
    SendWebhook {
        webhook_delivery_id: Uuid,
        attempt: i32,
    },
}

/// A job as the queue holds it: the job and the account it works for, which the worker's
/// per-account share of its concurrency reads before running it (`WORKER_ACCOUNT_SHARE`)
/// without a query. Stored as the job's JSON with an `account_id` beside its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    #[serde(flatten)]
    pub job: Job,
    /// `None` only for a job written before the account was recorded with it: such a job
    /// runs outside any account's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
}

/// Jobs of one account in one round of the fair pickup.
///
/// **Fair pickup.** apalis takes due jobs by `priority` (highest first), then by due time, on
/// both engines. Every job is written in a *round*, its priority being minus the round: an
/// account's jobs fill its current round up to `ROUND_JOBS`, then the next; an account that
/// was idle (its round behind the queue's head, the lowest round of the jobs due now) starts
/// at the head. So a quiet account's job waits behind at most `ROUND_JOBS` jobs of each busy
/// account, not behind their backlogs, and busy accounts take turns. Routing jobs, retries and
/// webhook jobs all take rounds. An account's round is kept on its row (`queue_round`,
/// `queue_round_jobs`), updated by the statement that writes the job: on PostgreSQL a job's
/// transaction holds the account row until it commits, so an account's retries and webhook
/// jobs wait for its `openTicket`s and the other way round (never another account's). The
/// head comes from apalis' fetch index. A job dropped as a duplicate (its key exists) still
/// used its place in the round.
///
/// Rounds only grow while work keeps coming, and apalis' priority is a 32-bit integer: a
/// single account keeping a worker saturated at 3,000 jobs/s would exhaust it after about 1.1
/// years (2^31 rounds of 50). Before that, [`rebase_rounds`] moves every round down together.
pub const ROUND_JOBS: i32 = 50;

/// The queue's head round from which [`rebase_rounds`] moves all rounds down: half of the
/// 32-bit priority, about half a year of the busiest account above.
pub const REBASE_AT: i64 = 1 << 30;

/// The queue's current round, as a scalar subquery over apalis' indexes: the lowest round of
/// the jobs due now (a retry due later, written in an old round, must not hold the head back
/// while busy accounts move on), or when none is due the round of the job that finished last
/// (an account idle since is lifted to it, not left behind with an old round that would put
/// it ahead of everyone for many rounds), else 0.
fn head_round(backend: DatabaseBackend, queue_param: &str) -> String {
    let jobs = jobs_table(backend);
    let finished_last = format!(
        "(SELECT -priority FROM {jobs} WHERE status = 'Done' AND done_at IS NOT NULL \
          AND job_type = {queue_param} ORDER BY done_at DESC LIMIT 1)"
    );
    let waiting = match backend {
        DatabaseBackend::Postgres => format!(
            "(SELECT -priority FROM {jobs} WHERE job_type = {queue_param} \
              AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)) \
              AND run_at <= now() ORDER BY priority DESC LIMIT 1)"
        ),
        // apalis-sqlite has one fetch index for pending jobs and one for failed ones.
        _ => format!(
            "(SELECT MIN(r) FROM ( \
              SELECT (SELECT -priority FROM {jobs} WHERE job_type = {queue_param} \
                      AND status = 'Pending' AND lock_by IS NULL \
                      AND (run_at IS NULL OR run_at <= strftime('%s', 'now')) \
                      ORDER BY priority DESC LIMIT 1) AS r \
              UNION ALL \
              SELECT (SELECT -priority FROM {jobs} WHERE job_type = {queue_param} \
                      AND status = 'Failed' AND attempts < max_attempts \
                      AND (run_at IS NULL OR run_at <= strftime('%s', 'now')) \
                      ORDER BY priority DESC LIMIT 1)))"
        ),
    };
    format!("COALESCE({waiting}, {finished_last}, 0)")
}

/// How `accounts` gives its next job a round (see [`ROUND_JOBS`]): the `SET` assignments, and
/// the query of the queue's head they read as `head.r`, for
/// `WITH head AS MATERIALIZED ({head}) UPDATE accounts SET {set} FROM head WHERE ...`. The
/// head is read once, in its own CTE, before the account row is locked.
pub(crate) fn next_round(backend: DatabaseBackend, queue_param: &str) -> (String, String) {
    let set = format!(
        "queue_round = CASE WHEN queue_round < head.r THEN head.r \
                            WHEN queue_round_jobs >= {ROUND_JOBS} THEN queue_round + 1 \
                            ELSE queue_round END, \
         queue_round_jobs = CASE WHEN queue_round < head.r OR queue_round_jobs >= {ROUND_JOBS} \
                                 THEN 1 ELSE queue_round_jobs + 1 END"
    );
    let head = format!("SELECT {} AS r", head_round(backend, queue_param));
    (set, head)
}

/// The last round with a priority of its own: apalis' `priority` is a 32-bit integer.
const LAST_ROUND: i64 = i32::MAX as i64;

/// The priority of a job in `round` (PostgreSQL SQL), kept within apalis' 32-bit column.
pub(crate) fn round_priority(round: &str) -> String {
    format!("-LEAST({round}, {LAST_ROUND})")
}

/// The queue's head round (see [`ROUND_JOBS`]).
pub(crate) async fn head(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let param = match backend {
        DatabaseBackend::Postgres => "$1",
        _ => "?1",
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT CAST({} AS BIGINT) AS r", head_round(backend, param)),
            [QUEUE.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "r")).transpose()?.unwrap_or(0))
}

/// Moves every round down by the queue's head once it reaches [`REBASE_AT`], so priorities
/// never run out: the accounts' rounds and the priorities of unfinished jobs (and of the job
/// that finished last, which the head falls back to) shift together, which keeps their order;
/// the head becomes 0. Returns the shift, or `None` when the head is below [`REBASE_AT`]
/// (every call but one in half a year: one indexed read).
///
/// On PostgreSQL the accounts table is locked against updates (`SHARE ROW EXCLUSIVE`: reads,
/// row locks and foreign-key checks go on) for the rebase: every job is written by a statement
/// that updates its account's row and reads the head, so it waits, and since a statement's
/// snapshot is taken after its locks, it reads the rebased head and rounds, never a mix. That
/// pause lasts as long as updating the unfinished jobs (not measured; one indexed update of
/// each queued job). On SQLite the write transaction serializes it with jobs written inside
/// transactions; a job written outside one (a sweep's) reads its round and inserts in two
/// statements, and one written across the rebase lands in an old round, behind the others,
/// until the queue drains to it.
pub async fn rebase_rounds(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    if head(db).await? < REBASE_AT {
        return Ok(None);
    }
    let backend = db.get_database_backend();
    let txn = crate::infra::db::begin(db).await?;
    if backend == DatabaseBackend::Postgres {
        // Waits at most this long for statements holding accounts; tried again next round.
        txn.execute_unprepared("SET LOCAL lock_timeout = '5s'")
            .await?;
        txn.execute_unprepared("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    // Read again under the lock: another worker may have rebased meanwhile.
    let shift = head(&txn).await?;
    if shift < REBASE_AT {
        txn.rollback().await?;
        return Ok(None);
    }
    let jobs = jobs_table(backend);
    let (p1, p2) = match backend {
        DatabaseBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    // An idle account's round below the head means nothing (its next job starts at the head).
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE accounts SET \
             queue_round_jobs = CASE WHEN queue_round >= {p1} THEN queue_round_jobs ELSE 0 END, \
             queue_round = CASE WHEN queue_round >= {p1} THEN queue_round - {p1} ELSE 0 END"
        ),
        [shift.into()],
    ))
    .await?;
    // A job of an old round (a retry due later) keeps its place ahead, within 32 bits.
    let shifted = format!(
        "priority = CAST(CASE WHEN priority + {p2} > {max} THEN {max} ELSE priority + {p2} END \
         AS INTEGER)",
        max = i32::MAX
    );
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE {jobs} SET {shifted} WHERE job_type = {p1} \
             AND (status IN ('Pending', 'Queued', 'Running') \
                  OR (status = 'Failed' AND attempts < max_attempts))"
        ),
        [QUEUE.into(), shift.into()],
    ))
    .await?;
    // Parked jobs keep their distance from the head (`unpark`).
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("UPDATE parked_jobs SET head_round = head_round - {p1}"),
        [shift.into()],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE {jobs} SET {shifted} WHERE id = (SELECT id FROM {jobs} \
             WHERE status = 'Done' AND done_at IS NOT NULL AND job_type = {p1} \
             ORDER BY done_at DESC LIMIT 1)"
        ),
        [QUEUE.into(), shift.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(Some(shift))
}

/// Adds `job` of `account_id` to the queue on `conn` (typically inside a transaction), due at
/// `run_at`, in the account's next round of the fair pickup ([`ROUND_JOBS`]).
///
/// `key` makes the insert idempotent: a second job with the same key is silently dropped.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    job: &Job,
    key: &str,
    run_at: DateTime<Utc>,
    account_id: Uuid,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let statement = match backend {
        DatabaseBackend::Postgres => {
            // The round's update and the job are one statement; a job whose account is gone
            // still goes in (in round 0, the front of the queue).
            let (insert, mut values) = postgres_insert(
                job,
                account_id,
                key,
                run_at,
                3,
                Some("(SELECT 1) AS one LEFT JOIN round ON true"),
                "COALESCE(round.queue_round, 0)",
            )?;
            let (set, head) = next_round(backend, "$2");
            let sql = format!(
                "WITH head AS MATERIALIZED ({head}), \
                 round AS (UPDATE accounts SET {set} FROM head WHERE id = $1 \
                 RETURNING queue_round) {insert}"
            );
            let mut all = vec![account_id.into(), QUEUE.into()];
            all.append(&mut values);
            Statement::from_sql_and_values(backend, sql, all)
        }
        _ => {
            let priority = -sqlite_next_round(conn, account_id).await?.min(LAST_ROUND);
            // apalis-sqlite keeps whole seconds: a job due now is written as due at the start
            // of this second (picked up at once), a later one rounded up so it never runs early.
            let due_later = run_at > chrono::Utc::now();
            let secs =
                run_at.timestamp() + i64::from(due_later && run_at.timestamp_subsec_nanos() > 0);
            Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO {} \
                     (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
                     VALUES (?, ?, ?, 'Pending', 0, ?, ?, ?, '{{}}', ?) \
                     ON CONFLICT (job_type, idempotency_key) DO NOTHING",
                    jobs_table(backend)
                ),
                [
                    payload(job, account_id)?.into(),
                    ulid::Ulid::new().to_string().into(),
                    QUEUE.into(),
                    JOB_MAX_ATTEMPTS.into(),
                    secs.into(),
                    priority.into(),
                    key.into(),
                ],
            )
        }
    };
    conn.execute_raw(statement).await?;
    Ok(())
}

/// SQLite: gives `account_id`'s next job its round and returns it (0 when the account is
/// gone). A statement of its own; the job is written by the next.
async fn sqlite_next_round(conn: &impl ConnectionTrait, account_id: Uuid) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let (set, head) = next_round(backend, "?1");
    Ok(conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE accounts SET {set} FROM ({head}) AS head WHERE id = ?2 \
                 RETURNING queue_round"
            ),
            [QUEUE.into(), account_id.into()],
        ))
        .await?
        .map(|row| row.try_get("", "queue_round"))
        .transpose()?
        .unwrap_or(0))
}

/// What became of a job, as far as a delivery waiting on it is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting, running, or failed with apalis attempts left: it will run.
    Live,
    /// Its handler finished.
    Done,
    /// Out of apalis' attempts, or killed: it will never run again. Its last result.
    Dead(String),
}

/// The state of each job of the queue with one of these idempotency keys (a key without a job
/// has no entry). One indexed lookup (`job_type`, `idempotency_key`).
pub async fn job_states(
    conn: &impl ConnectionTrait,
    keys: &[String],
) -> Result<Vec<JobState>, DbErr> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let (marks, last_result): (Vec<String>, &str) = match backend {
        DatabaseBackend::Postgres => (
            (2..keys.len() + 2).map(|i| format!("${i}")).collect(),
            "last_result::text",
        ),
        _ => (keys.iter().map(|_| "?".to_owned()).collect(), "last_result"),
    };
    let first = match backend {
        DatabaseBackend::Postgres => "$1",
        _ => "?",
    };
    let mut values: Vec<Value> = vec![QUEUE.into()];
    values.extend(keys.iter().map(|k| Value::from(k.as_str())));
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT status, attempts, max_attempts, {last_result} AS last_result FROM {} \
                 WHERE job_type = {first} AND idempotency_key IN ({})",
                jobs_table(backend),
                marks.join(", ")
            ),
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("", "status")?;
            // INTEGER columns: 32 bits on PostgreSQL, 64 on SQLite.
            let int = |column| {
                row.try_get::<i32>("", column)
                    .map(i64::from)
                    .or_else(|_| row.try_get::<i64>("", column))
            };
            let (attempts, max) = (int("attempts")?, int("max_attempts")?);
            let last: Option<String> = row.try_get("", "last_result")?;
            let last = || {
                last.clone()
                    .unwrap_or_else(|| "no result recorded".to_owned())
            };
            Ok(match status.as_str() {
                "Pending" | "Queued" | "Running" => JobState::Live,
                "Failed" if attempts < max => JobState::Live,
                "Failed" | "Killed" => JobState::Dead(last()),
                "Done" => JobState::Done,
                // A status of a newer apalis: an error, not a guess.
                other => {
                    return Err(DbErr::Type(format!("unknown job status {other:?}")));
                }
            })
        })
        .collect()
}

/// Deletes at most `batch` of this queue's finished jobs (done, killed, or failed with no
/// attempt left) that finished before `before`; returns how many. One short statement, so a
/// caller deleting many in a loop never holds a long lock (SQLite has one writer).
pub async fn delete_finished(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let finished =
        "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
    let statement = match backend {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs} \
                 WHERE job_type = $1 AND done_at < $2 AND {finished} LIMIT $3)",
                jobs = jobs_table(backend)
            ),
            [QUEUE.into(), before.into(), (batch as i64).into()],
        ),
        // apalis-sqlite keeps `done_at` in Unix seconds.
        _ => Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {jobs} WHERE rowid IN (SELECT rowid FROM {jobs} \
                 WHERE job_type = ? AND done_at < ? AND {finished} LIMIT ?)",
                jobs = jobs_table(backend)
            ),
            [
                QUEUE.into(),
                before.timestamp().into(),
                (batch as i64).into(),
            ],
        ),
    };
    Ok(conn.execute_raw(statement).await?.rows_affected())
}

fn payload(job: &Job, account_id: Uuid) -> Result<Vec<u8>, DbErr> {
    let task = Task {
        job: job.clone(),
        account_id: Some(account_id),
    };
    serde_json::to_vec(&task).map_err(|e| DbErr::Custom(e.to_string()))
}

/// Puts the job `task_id`, which worker `worker` has taken, back in the queue, due `after`
/// from now in its account's next round, for a worker that took it while the account held its
/// whole share of the worker's concurrency. It is the same row, with the same key: the sweeps
/// find it waiting (`JobState::Live`) and leave its delivery or ticket to it, and no job is
/// added per put-back. See [`RELEASE`] for how apalis is kept from finishing it; its
/// `last_result` says why it waits. Returns `false` when the worker no longer holds the job
/// (its heartbeat was missed and the job went to another worker): the job is left as it is
/// (on SQLite, where the round is given by a statement of its own, the account's round count
/// still moves on by one).
pub async fn postpone(
    conn: &impl ConnectionTrait,
    task_id: &str,
    worker: &str,
    account_id: Uuid,
    after: std::time::Duration,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let due = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
    let reason = serde_json::to_string(POSTPONED).map_err(|e| DbErr::Custom(e.to_string()))?;
    let jobs = jobs_table(backend);
    let statement = match backend {
        DatabaseBackend::Postgres => {
            let (set, head) = next_round(backend, "$2");
            let priority = round_priority("COALESCE((SELECT queue_round FROM round), 0)");
            Statement::from_sql_and_values(
                backend,
                format!(
                    "WITH head AS MATERIALIZED ({head}), \
                     round AS (UPDATE accounts SET {set} FROM head WHERE id = $1 \
                     AND EXISTS (SELECT 1 FROM {jobs} WHERE id = $5 AND lock_by = $6 \
                                 AND status IN ('Queued', 'Running')) \
                     RETURNING queue_round) \
                     UPDATE {jobs} SET {RELEASE}, \
                     run_at = $3, priority = {priority}, last_result = $4::jsonb, id = $7 \
                     WHERE id = $5 AND lock_by = $6 AND status IN ('Queued', 'Running')"
                ),
                [
                    account_id.into(),
                    QUEUE.into(),
                    due.into(),
                    reason.into(),
                    task_id.into(),
                    worker.into(),
                    ulid::Ulid::new().to_string().into(),
                ],
            )
        }
        _ => {
            let priority = -sqlite_next_round(conn, account_id).await?.min(LAST_ROUND);
            // apalis-sqlite keeps whole seconds: rounded up, so the job never runs early.
            let secs = due.timestamp() + i64::from(due.timestamp_subsec_nanos() > 0);
            Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE {jobs} SET {RELEASE}, \
                     run_at = ?, priority = ?, last_result = ?, id = ? \
                     WHERE id = ? AND lock_by = ? AND status IN ('Queued', 'Running')"
                ),
                [
                    secs.into(),
                    priority.into(),
                    reason.into(),
                    ulid::Ulid::new().to_string().into(),
                    task_id.into(),
                    worker.into(),
                ],
            )
        }
    };
    Ok(conn.execute_raw(statement).await?.rows_affected() == 1)
}

/// How [`postpone`] and [`set_aside`] hand a job the worker holds back to the queue: waiting,
/// unlocked, and under a new id. apalis still has the job in flight under its old id and,
/// once the handler returns, writes its lock (`Running`, the worker's name; apalis-sqlite
/// batches it and may write it after the handler ran, even over a `Pending` row) and its
/// acknowledgement (`Done`) by that id (apalis 1.0.0, pinned: `lock.sql`, `lock_by_id.sql`,
/// `ack.sql`, `handle_result.sql`). Under a new id the row is out of their reach; its key,
/// payload and attempts stay, and the next fetch takes it like any other job.
const RELEASE: &str = "status = 'Pending', lock_by = NULL, lock_at = NULL";

/// The `last_result` of a job put back by [`postpone`].
pub const POSTPONED: &str = "put back: its account held its share of the worker";

/// The `last_result` of a job set aside by [`set_aside`].
pub const PARKED: &str = "parked: sending is paused";

/// How far ahead a parked job is due: never, until a resume makes it due now.
const PARKED_FOR_DAYS: i64 = 100 * 365;

/// Sets aside the job `task_id`, which worker `worker` has taken, because its sending is
/// paused: the same job, released ([`RELEASE`]) and due only in a hundred years, with a
/// `parked_jobs` row that [`unpark`] reads to make it due again. `head` is the queue's head round now
/// ([`head`]), kept so the job goes back among the rounds where it was. The sweeps see the job
/// waiting and leave its work alone. Returns `false` when the worker no longer holds the job.
pub(crate) async fn set_aside(
    conn: &impl ConnectionTrait,
    task_id: &str,
    worker: &str,
    account_id: Option<Uuid>,
    head: i64,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let due = chrono::Utc::now() + chrono::Duration::days(PARKED_FOR_DAYS);
    let reason = serde_json::to_string(PARKED).map_err(|e| DbErr::Custom(e.to_string()))?;
    let jobs = jobs_table(backend);
    let new_id = ulid::Ulid::new().to_string();
    let released = match backend {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE {jobs} SET {RELEASE}, run_at = $1, last_result = $2::jsonb, id = $5 \
                 WHERE id = $3 AND lock_by = $4 AND status IN ('Queued', 'Running')"
            ),
            [
                due.into(),
                reason.into(),
                task_id.into(),
                worker.into(),
                new_id.clone().into(),
            ],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE {jobs} SET {RELEASE}, run_at = ?, last_result = ?, id = ? \
                 WHERE id = ? AND lock_by = ? AND status IN ('Queued', 'Running')"
            ),
            [
                due.timestamp().into(),
                reason.into(),
                new_id.clone().into(),
                task_id.into(),
                worker.into(),
            ],
        ),
    };
    if conn.execute_raw(released).await?.rows_affected() != 1 {
        return Ok(false);
    }
    let marks = match backend {
        DatabaseBackend::Postgres => "$1, $2, $3, $4",
        _ => "?, ?, ?, ?",
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO parked_jobs (job_id, account_id, head_round, parked_at) \
             VALUES ({marks}) ON CONFLICT (job_id) DO NOTHING"
        ),
        [
            new_id.into(),
            account_id.into(),
            head.into(),
            chrono::Utc::now().into(),
        ],
    ))
    .await?;
    Ok(true)
}

/// Makes due now every parked job no pause covers any more (run after a pause was lifted, in
/// its transaction), and returns how many. Each goes back among the rounds as far from the
/// head as it was when it was parked, `head` being the queue's head round now: a resumed
/// backlog takes its turns with the other accounts' work instead of all going first (its
/// rounds are older than everyone's). Its account's round is lifted to its last job's, so the
/// account's new jobs come after it.
pub(crate) async fn unpark(conn: &impl ConnectionTrait, head: i64) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let jobs = jobs_table(backend);
    let freed = "NOT EXISTS (SELECT 1 FROM sending_pauses s \
                 WHERE s.scope = '*' OR s.account_id = p.account_id)";
    let (p, now, least, greatest) = match backend {
        DatabaseBackend::Postgres => ("$1", "now()", "LEAST", "GREATEST"),
        _ => ("?1", "strftime('%s', 'now')", "MIN", "MAX"),
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE {jobs} SET run_at = {now}, \
             priority = -{least}({greatest}(-{jobs}.priority + ({p} - f.head_round), {p}), {LAST_ROUND}) \
             FROM (SELECT p.job_id, p.head_round FROM parked_jobs p WHERE {freed}) AS f \
             WHERE {jobs}.id = f.job_id AND {jobs}.status = 'Pending'"
        ),
        [head.into()],
    ))
    .await?;
    conn.execute_raw(Statement::from_string(
        backend,
        format!(
            "UPDATE accounts SET queue_round = {greatest}(accounts.queue_round, r.last), \
             queue_round_jobs = CASE WHEN accounts.queue_round < r.last THEN {ROUND_JOBS} \
                                     ELSE accounts.queue_round_jobs END \
             FROM (SELECT p.account_id, MAX(-j.priority) AS last FROM parked_jobs p \
                   JOIN {jobs} j ON j.id = p.job_id WHERE {freed} GROUP BY p.account_id) AS r \
             WHERE accounts.id = r.account_id"
        ),
    ))
    .await?;
    Ok(conn
        .execute_raw(Statement::from_string(
            backend,
            format!("DELETE FROM parked_jobs WHERE job_id IN (SELECT p.job_id FROM parked_jobs p WHERE {freed})"),
        ))
        .await?
        .rows_affected())
}

/// PostgreSQL's INSERT of `job` into apalis' table, with its parameters numbered from `first`,
/// for [`enqueue`] and for statements that write a job together with its cause (the job is
/// written once per row of `from`, when given), in the round `round` (an SQL expression over
/// `from`; see [`ROUND_JOBS`]).
pub(crate) fn postgres_insert(
    job: &Job,
    account_id: Uuid,
    key: &str,
    run_at: DateTime<Utc>,
    first: usize,
    from: Option<&str>,
    round: &str,
) -> Result<(String, Vec<Value>), DbErr> {
    let [id, job_type, payload_at, max_attempts, due, idempotency] =
        std::array::from_fn(|i| format!("${}", first + i));
    let from = from.map(|f| format!(" FROM {f}")).unwrap_or_default();
    let priority = round_priority(round);
    // apalis' insert trigger wakes idle workers (NOTIFY) only for a job with `run_at <= now()`,
    // and `now()` is when the transaction began: a job due "now" by the clock, written later
    // in the same transaction, would wait for the next poll instead. Such a job is stamped with
    // the transaction's start.
    let sql = format!(
        "INSERT INTO {jobs} \
         (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
         SELECT {id}, {job_type}, {payload_at}, 'Pending', 0, {max_attempts}, \
                CASE WHEN {due} <= clock_timestamp() THEN now() ELSE {due} END, {priority}, \
                ''::hstore, {idempotency}{from} \
         ON CONFLICT (job_type, idempotency_key) DO NOTHING",
        jobs = jobs_table(DatabaseBackend::Postgres),
    );
    let values = vec![
        ulid::Ulid::new().to_string().into(),
        QUEUE.into(),
        payload(job, account_id)?.into(),
        JOB_MAX_ATTEMPTS.into(),
        run_at.into(),
        key.into(),
    ];
    Ok((sql, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_tagged_json_with_ids_only() {
        let id = Uuid::nil();
        let json = serde_json::to_string(&Job::RouteTicket { ticket_id: id }).unwrap();
        assert_eq!(
            json,
            r#"{"type":"route_ticket","ticket_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        let back: Job = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Job::RouteTicket { ticket_id: id });
    }

    #[test]
    fn tasks_carry_their_account_beside_the_job_and_read_older_payloads() {
        let (delivery_id, account) = (Uuid::nil(), Uuid::max());
        let job = Job::SendDelivery {
            delivery_id,
            attempt: 2,
        };
        let stored: serde_json::Value =
            serde_json::from_slice(&payload(&job, account).unwrap()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "type": "send_delivery",
                "delivery_id": delivery_id,
                "attempt": 2,
                "account_id": account,
            })
        );
        let task: Task = serde_json::from_value(stored).unwrap();
        assert_eq!(
            (task.job.clone(), task.account_id),
            (job.clone(), Some(account))
        );
        // A job queued by an older version has no account.
        let older = serde_json::to_string(&job).unwrap();
        let task: Task = serde_json::from_str(&older).unwrap();
        assert_eq!((task.job, task.account_id), (job, None));
    }
}
