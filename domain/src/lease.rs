//! Attempts, shared by e-mail and webhook deliveries: what an attempt did ([`Outcome`]), the
//! backoff before the next one, and the lease. A row is claimed for attempt `n` with a
//! conditional UPDATE, so two jobs never make the same attempt at once, a final row is never
//! attempted again, and a dead worker's attempt is taken over when its lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::vocab::DeliveryStatus;

/// The columns of a leased row: its id and its state.
pub struct Columns<C> {
    pub id: C,
    pub attempts: C,
    pub status: C,
    pub locked_until: C,
    pub updated_at: C,
}

/// Claims row `id` of `E` for attempt `attempt` until `until`, if [`claimable`]: `SENDING`
/// (both kinds of delivery spell it so), with the attempt's number. Returns the claimed row
/// (RETURNING: no second read), or `None` when the attempt is not this caller's to make.
pub async fn claim<E: EntityTrait>(
    db: &impl ConnectionTrait,
    columns: &Columns<E::Column>,
    id: Uuid,
    attempt: i32,
    until: DateTime<Utc>,
) -> Result<Option<E::Model>, DbErr> {
    let at = crate::now();
    let claimed = E::update_many()
        .col_expr(
            columns.status,
            Expr::value(DeliveryStatus::Sending.as_str()),
        )
        .col_expr(columns.attempts, Expr::value(attempt))
        .col_expr(columns.locked_until, Expr::value(until))
        .col_expr(columns.updated_at, Expr::value(at))
        .filter(columns.id.eq(id))
        .filter(claimable(columns, attempt, at))
        .exec_with_returning(db)
        .await?;
    Ok(claimed.into_iter().next())
}

/// Reopens row `id` of `E` for an operator's put-back at `at`: `FAILED` becomes `PENDING`
/// (both kinds of delivery spell them so) with no next attempt time; `true` when it was
/// `FAILED`. The caller adds the next attempt's job in the same transaction.
pub async fn reopen<E: EntityTrait>(
    txn: &impl ConnectionTrait,
    columns: &Columns<E::Column>,
    next_attempt_at: E::Column,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = E::update_many()
        .col_expr(
            columns.status,
            Expr::value(DeliveryStatus::Pending.as_str()),
        )
        .col_expr(next_attempt_at, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(columns.updated_at, Expr::value(at))
        .filter(columns.id.eq(id))
        .filter(columns.status.eq(DeliveryStatus::Failed.as_str()))
        .exec(txn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// How long a claim holds: longer than any send can take (each is bounded by `timeout`), so a
/// live worker never loses its lease mid-send; short enough that a dead worker's row is taken
/// over soon.
pub fn length(timeout: Duration) -> chrono::Duration {
    chrono::Duration::from_std(timeout * 2 + Duration::from_secs(5))
        .unwrap_or(chrono::Duration::seconds(90))
}

/// The rows attempt `attempt` may claim. Fresh: the previous attempt has ended (`PENDING` or
/// `RETRYING`, both kinds of delivery spell them so). Takeover: a worker died mid-attempt and
/// its lease ran out, so the re-queued job makes the same attempt again.
pub fn claimable<C: ColumnTrait>(c: &Columns<C>, attempt: i32, now: DateTime<Utc>) -> Condition {
    let fresh = Condition::all()
        .add(c.attempts.eq(attempt - 1))
        .add(c.status.is_in([
            DeliveryStatus::Pending.as_str(),
            DeliveryStatus::Retrying.as_str(),
        ]));
    let takeover = Condition::all()
        .add(c.attempts.eq(attempt))
        .add(c.status.eq(DeliveryStatus::Sending.as_str()))
        .add(c.locked_until.lt(now));
    Condition::any().add(fresh).add(takeover)
}

/// What an attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The SMTP server accepted the mail.
    Sent,
    /// A transient failure; the next attempt is due at the given time.
    Retrying(DateTime<Utc>),
    /// Refused for good, or out of attempts.
    Failed,
    /// Another worker holds the delivery; this job looks again when its lease ends.
    Deferred,
    /// Nothing to do: the delivery is gone, final, or already past this attempt.
    Skipped,
}

/// The backoff before attempt `attempt + 1`: the base doubled per attempt, capped, with
/// "equal jitter" (between half and all of it) so retries of many deliveries spread out.
pub fn backoff(attempt: i32, base: Duration, max: Duration, rng: &mut impl RngExt) -> Duration {
    let exponent = Ord::min(u32::try_from(attempt.saturating_sub(1)).unwrap_or(0), 30);
    let full = base.saturating_mul(1 << exponent).min(max);
    full.mul_f64(rng.random_range(0.5..=1.0))
}

/// When attempt `attempt + 1` is due after a failure at `at`: [`backoff`] with the
/// service's retry settings (`RETRY_BASE_MS`, `RETRY_MAX_MS`).
pub fn retry_due(
    attempt: i32,
    policy: &crate::infra::config::DeliveryConfig,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    let wait = backoff(
        attempt,
        policy.retry_base,
        policy.retry_max,
        &mut rand::rng(),
    );
    at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
}

// The sweeps' common parts: how long work may stay unfinished, and how they page.

/// What one sweep did (of e-mail deliveries, `deliveries::sweep`, or webhook deliveries,
/// `webhooks::sweep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Unfinished deliveries whose job was gone: each was given a new one, due now (unless
    /// another worker's sweep gave it this round's already).
    pub requeued: usize,
    /// Unfinished deliveries whose job died (out of the queue's attempts, or killed): `FAILED`
    /// with the job's last result, so an operator can put them back.
    pub failed: usize,
    /// Where the next sweep goes on: after this delivery (the unfinished ones are visited in
    /// id order, a page per round, so a backlog of deliveries whose jobs only run late never
    /// hides the ones behind it); `None` starts again from the first.
    pub next: Option<Uuid>,
}

/// The most deliveries one sweep looks at; the rest wait for the next round.
pub const SWEEP_BATCH: u64 = 500;

/// How long work may stay unfinished before a sweep at `at` heals it (`stuck_after`), and the
/// sweep round `at` falls in: rounds are that long, so the key of a job a sweep made names its
/// round, and the next rounds find it.
pub fn grace_and_round(
    at: DateTime<Utc>,
    stuck_after: std::time::Duration,
) -> (chrono::Duration, i64) {
    let grace = chrono::Duration::from_std(stuck_after).unwrap_or(chrono::Duration::minutes(10));
    (grace, at.timestamp() / grace.num_seconds().max(1))
}

/// What an unfinished attempt's jobs (looked up by their keys) say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Jobs {
    /// One of them will still run: the sweep leaves the attempt to it.
    Live,
    /// None will run and one died: why, for the row's last error.
    Dead(String),
    /// None will run and none died: the attempt needs a new job.
    Gone,
}

impl Jobs {
    /// Reads the states of an attempt's jobs (`queue::job_states`).
    pub fn of(states: &[crate::infra::queue::JobState]) -> Jobs {
        use crate::infra::queue::JobState;
        if states.contains(&JobState::Live) {
            return Jobs::Live;
        }
        states
            .iter()
            .find_map(|s| match s {
                JobState::Dead(result) => {
                    Some(Jobs::Dead(format!("its job failed for good: {result}")))
                }
                _ => None,
            })
            .unwrap_or(Jobs::Gone)
    }
}

/// The idempotency key of the job a sweep gives the attempt whose own key is `attempt_key`,
/// in sweep round `round`.
pub fn sweep_key(attempt_key: &str, round: i64) -> String {
    format!("{attempt_key}:sweep:{round}")
}

/// The idempotency key of the job a put-back at `at` (an operator's retry of a failed
/// delivery) gives the attempt whose own key is `attempt_key`: a key of its own, since the
/// attempt's key may belong to a job that died; the sweeps find it from the row's
/// `updated_at`, which the put-back sets to `at`.
pub fn put_back_key(attempt_key: &str, at: DateTime<Utc>) -> String {
    format!("{attempt_key}:put-back:{}", at.timestamp_micros())
}

/// The attempt a sweep looks after for an unfinished row: a `SENDING` one whose lease ended is
/// taken over by the same attempt; otherwise the next one is due.
pub fn attempt_to_heal(sending: bool, attempts: i32) -> i32 {
    if sending { attempts } else { attempts + 1 }
}

/// The keys of the jobs that could still make the attempt whose own key is `attempt_key`, as
/// both sweeps look them up: the attempt's own, the sweep's of round `round` and the one
/// before, and, for a row an operator put back (`PENDING`, `put_back_at` its `updated_at`),
/// the put-back's ([`put_back_key`]).
pub fn live_keys(attempt_key: &str, round: i64, put_back_at: Option<DateTime<Utc>>) -> Vec<String> {
    let mut keys = vec![
        attempt_key.to_owned(),
        sweep_key(attempt_key, round),
        sweep_key(attempt_key, round - 1),
    ];
    keys.extend(put_back_at.map(|at| put_back_key(attempt_key, at)));
    keys
}

/// Where the next sweep goes on after visiting `page`: after its last row when it was full
/// ([`SWEEP_BATCH`]), else from the start.
pub fn next_after<T, K>(page: &[T], key: impl Fn(&T) -> K) -> Option<K> {
    (page.len() as u64 == SWEEP_BATCH)
        .then(|| page.last().map(key))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        for attempt in 1..=12 {
            let full = (base * 2u32.pow((attempt - 1) as u32)).min(max);
            let got = backoff(attempt, base, max, &mut rng);
            assert!(
                got >= full / 2 && got <= full,
                "attempt {attempt}: {got:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(100, base, max, &mut rng) <= max);
    }
}
