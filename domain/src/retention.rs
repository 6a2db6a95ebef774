//! What the service keeps, and for how long. Every worker deletes, at its start and every
//! `SWEEP_INTERVAL_MS`, finished queue jobs older than `JOB_RETENTION_DAYS` and conversations
//! idle for longer than `CONVERSATION_RETENTION_DAYS` (tickets keep their own copy of the
//! transcript). In batches of short statements, so SQLite's one writer is never held long,
//! and without `VACUUM FULL`: freed space is reused by new rows.

use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::infra::queue;
use crate::{Result, conversations, now};

/// Rows one statement deletes.
pub const BATCH: u64 = 1_000;
/// Statements of each kind one run makes at most; what is left waits for the next run.
pub const MAX_BATCHES: u32 = 100;

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub jobs: u64,
    pub conversations: u64,
}

/// Deletes what the retention periods let go.
pub async fn apply(
    db: &impl ConnectionTrait,
    jobs_after: Duration,
    conversations_after: Duration,
) -> Result<Deleted> {
    let before = |after: Duration| {
        now() - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(36_500))
    };
    let mut deleted = Deleted::default();
    let jobs_before = before(jobs_after);
    for _ in 0..MAX_BATCHES {
        let n = queue::delete_finished(db, jobs_before, BATCH).await?;
        deleted.jobs += n;
        if n < BATCH {
            break;
        }
        // Let the writers the worker exists for go first.
        tokio::task::yield_now().await;
    }
    let conversations_before = before(conversations_after);
    for _ in 0..MAX_BATCHES {
        let n = conversations::delete_idle(db, conversations_before, BATCH).await?;
        deleted.conversations += n;
        if n < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}
