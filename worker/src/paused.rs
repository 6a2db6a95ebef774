//! This worker's reading of the sending pauses (`domain::pauses`), refreshed every
//! `pauses::REFRESH`: a job whose account it covers goes through `pauses::park`, which looks
//! at the pauses themselves under a lock; the others run without a query.

use std::sync::{Arc, RwLock};

use domain::pauses::Snapshot;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

/// The latest reading; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Pauses(Arc<RwLock<Reading>>);

#[derive(Debug)]
enum Reading {
    /// Nothing read yet (a worker starting while the database is away): every job is looked
    /// at by `park`, so a worker restarted during a pause never sends before its first
    /// reading.
    Unknown,
    Read(Snapshot),
}

impl Default for Pauses {
    fn default() -> Self {
        Pauses(Arc::new(RwLock::new(Reading::Unknown)))
    }
}

impl Pauses {
    /// Whether a job of `account` may be paused (`park` decides).
    pub fn may_cover(&self, account: Option<Uuid>) -> bool {
        match &*self.0.read().unwrap_or_else(|p| p.into_inner()) {
            Reading::Unknown => true,
            Reading::Read(snapshot) => snapshot.covers(account),
        }
    }

    /// Reads the pauses again; on a database error the last reading stays.
    pub async fn refresh(&self, db: &DatabaseConnection) {
        match Snapshot::read(db).await {
            Ok(snapshot) => {
                *self.0.write().unwrap_or_else(|p| p.into_inner()) = Reading::Read(snapshot);
            }
            Err(error) => {
                tracing::warn!(%error, "reading the sending pauses failed; keeping the last reading")
            }
        }
    }

    /// Refreshes every `pauses::REFRESH` until the worker stops.
    pub async fn refresh_forever(self, db: DatabaseConnection) {
        let mut every = tokio::time::interval(domain::pauses::REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.refresh(&db).await;
        }
    }
}
