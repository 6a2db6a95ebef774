//! The routing jobs' writes, shared between the jobs running at the same time
//! ([`crate::batch`]): planning tickets (read their webhooks, the tickets and their rules,
//! insert their deliveries, stamp them routed: five statements for the whole batch), recording
//! accepted mails (one), and publishing live events (one `NOTIFY`). Each is what one job alone
//! would write, for all of them.

use std::collections::HashSet;
use std::sync::Arc;

use domain::deliveries::{self, Accepted, Planned};
use domain::infra::events::{self, Event};
use domain::webhooks;
use entity::webhook;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::batch::{Batcher, Work};

/// A database error shared by every job of the batch that met it.
pub type Shared = Arc<domain::Error>;

/// A ticket planned for routing, with its account's webhooks (all of them).
pub type Plan = Option<(Planned, Vec<webhook::Model>)>;

/// The three kinds of shared writes of one worker.
#[derive(Clone, Debug)]
pub struct Together {
    pub plan: Batcher<Planning>,
    pub record: Batcher<Recording>,
    pub publish: Batcher<Publishing>,
}

impl Together {
    /// Batches of at most `concurrency` jobs' items: no more can be waiting.
    pub fn new(db: &DatabaseConnection, lease: chrono::Duration, concurrency: usize) -> Self {
        Together {
            plan: Batcher::new(
                "plan",
                Planning {
                    db: db.clone(),
                    lease,
                },
                concurrency,
            ),
            record: Batcher::new("record", Recording { db: db.clone() }, concurrency),
            publish: Batcher::new("publish", Publishing { db: db.clone() }, concurrency),
        }
    }
}

/// `deliveries::create_many` for the tickets of the routing jobs, each claimed for `lease`,
/// and their accounts' webhooks in one more query.
#[derive(Debug)]
pub struct Planning {
    db: DatabaseConnection,
    lease: chrono::Duration,
}

impl Planning {
    async fn plan(&self, ids: &[Uuid]) -> domain::Result<Vec<Plan>> {
        // The webhooks first: an unreadable one fails the batch before anything is written,
        // so planning each ticket alone then fails only its own account's.
        let hooks = webhooks::webhooks_of_tickets(&self.db, ids).await?;
        let planned = deliveries::create_many(&self.db, ids, domain::now() + self.lease).await?;
        Ok(planned
            .into_iter()
            .map(|plan| {
                plan.map(|p| {
                    let account = p.ticket.account_id;
                    let own = hooks
                        .iter()
                        .filter(|h| h.account_id == account)
                        .cloned()
                        .collect();
                    (p, own)
                })
            })
            .collect())
    }
}

impl Work for Planning {
    type Item = Uuid;
    type Output = Result<Plan, Shared>;

    async fn run(&self, ids: &[Uuid]) -> Vec<Self::Output> {
        match self.plan(ids).await {
            Ok(plans) => plans.into_iter().map(Ok).collect(),
            // An unreadable ticket or rule fails only its own job: each is planned alone.
            Err(domain::Error::Corrupt(_)) if ids.len() > 1 => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.push(
                        self.plan(std::slice::from_ref(id))
                            .await
                            .map(|mut plan| plan.pop().flatten())
                            .map_err(Arc::new),
                    );
                }
                out
            }
            // The database failed: every job of the batch fails and is run again.
            Err(error) => all_failed(ids.len(), error),
        }
    }
}

/// `deliveries::record_sent` for the first attempts the routing jobs' mails were accepted
/// at: each job gets the ids of its own that were recorded.
#[derive(Debug)]
pub struct Recording {
    db: DatabaseConnection,
}

impl Work for Recording {
    type Item = Vec<Accepted>;
    type Output = Result<HashSet<Uuid>, Shared>;

    async fn run(&self, items: &[Vec<Accepted>]) -> Vec<Self::Output> {
        match deliveries::record_sent(&self.db, 1, items.iter().flatten()).await {
            Ok(recorded) => {
                let recorded: HashSet<Uuid> = recorded.into_iter().collect();
                items
                    .iter()
                    .map(|own| {
                        Ok(own
                            .iter()
                            .map(|m| m.delivery.id)
                            .filter(|id| recorded.contains(id))
                            .collect())
                    })
                    .collect()
            }
            Err(error) => all_failed(items.len(), error),
        }
    }
}

/// `events::publish` for the results of the routing jobs (best-effort, as alone).
#[derive(Debug)]
pub struct Publishing {
    db: DatabaseConnection,
}

impl Work for Publishing {
    type Item = Vec<Event>;
    type Output = ();

    async fn run(&self, items: &[Vec<Event>]) -> Vec<()> {
        events::publish(&self.db, items.iter().flatten()).await;
        vec![(); items.len()]
    }
}

/// The outputs of a batch of `n` jobs that all failed with `error`.
fn all_failed<T>(n: usize, error: domain::Error) -> Vec<Result<T, Shared>> {
    let error = Arc::new(error);
    (0..n).map(|_| Err(Arc::clone(&error))).collect()
}
