//! Leased attempts, shared by e-mail and webhook deliveries: a row is claimed for attempt `n`
//! with a conditional UPDATE, so two jobs never make the same attempt at once, a final row is
//! never attempted again, and a dead worker's attempt is taken over when its lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::vocab::DeliveryStatus;
use sea_orm::{ColumnTrait, Condition};

/// The state columns of a leased row.
pub struct Columns<C> {
    pub attempts: C,
    pub status: C,
    pub locked_until: C,
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
