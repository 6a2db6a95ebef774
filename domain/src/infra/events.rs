//! Live events for subscriptions (a ticket was opened, a delivery changed state), and the
//! revocations the API processes' key caches must hear of.
//!
//! On PostgreSQL every API process `LISTEN`s and hands what it hears to its subscribers, so
//! they see the writes of every process. A trigger on `tickets` sends `ticket_opened` when the
//! opening transaction commits (no extra round trip, never an event for a rolled-back write);
//! delivery results are sent by the worker with [`publish`], all of one routing job in one
//! `NOTIFY`, because each `NOTIFY` serialises its transaction's commit. On SQLite, where API
//! and worker share one process, the writers publish on the in-process bus after they commit.
//!
//! Events carry ids only; subscribers read the rows, scoped to their account. Delivery is
//! best-effort (a subscriber that falls behind skips events); the queries are the record.

use std::sync::OnceLock;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The PostgreSQL channel of live events (the ticket trigger and [`publish`]).
pub const CHANNEL: &str = "ticketing_events";

/// Events a subscriber that lags this far behind starts to miss.
const BUS_CAPACITY: usize = 4096;

/// Something subscribers may want to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    TicketOpened {
        account_id: Uuid,
        ticket_id: Uuid,
    },
    DeliveryUpdated {
        account_id: Uuid,
        ticket_id: Uuid,
        delivery_id: Uuid,
    },
    /// A person closed, reopened, assigned or unassigned the ticket.
    TicketUpdated {
        account_id: Uuid,
        ticket_id: Uuid,
    },
    /// For the API processes' key caches (no subscription shows it): a key stopped working.
    KeyRevoked {
        account_id: Uuid,
        key_id: Uuid,
    },
}

impl Event {
    /// A delivery's new state, for its account's subscribers.
    pub fn delivery_updated(d: &entity::delivery::Model) -> Event {
        Event::DeliveryUpdated {
            account_id: d.account_id,
            ticket_id: d.ticket_id,
            delivery_id: d.id,
        }
    }

    /// The account the event belongs to.
    pub fn account_id(&self) -> Uuid {
        match self {
            Event::TicketOpened { account_id, .. }
            | Event::DeliveryUpdated { account_id, .. }
            | Event::TicketUpdated { account_id, .. }
            | Event::KeyRevoked { account_id, .. } => *account_id,
        }
    }
}

/// What one notification carries: the trigger's one event, or [`publish`]'s batch.
#[derive(Deserialize)]
#[serde(untagged)]
enum Notification {
    One(Event),
    Many(Vec<Event>),
}

fn bus() -> &'static broadcast::Sender<Event> {
    static BUS: OnceLock<broadcast::Sender<Event>> = OnceLock::new();
    BUS.get_or_init(|| broadcast::channel(BUS_CAPACITY).0)
}

/// Counts the times this process may have missed events (the PostgreSQL listener lost its
/// connection); a subscriber that must not miss one (the key cache) forgets what it knows when
/// it changes.
fn gaps_sender() -> &'static watch::Sender<u64> {
    static GAPS: OnceLock<watch::Sender<u64>> = OnceLock::new();
    GAPS.get_or_init(|| watch::channel(0).0)
}

/// Changes whenever events may have been missed.
pub fn gaps() -> watch::Receiver<u64> {
    gaps_sender().subscribe()
}

fn missed_some() {
    gaps_sender().send_modify(|n| *n += 1);
    metrics::counter!("ticketing_live_events_gaps_total").increment(1);
}

/// A receiver of every event this process learns of from now on.
pub fn subscribe() -> broadcast::Receiver<Event> {
    bus().subscribe()
}

/// Publishes a committed write's event. On PostgreSQL the trigger has done it already.
pub fn published(db: &impl ConnectionTrait, event: Event) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        // No subscriber is not an error.
        let _ = bus().send(event);
    }
}

/// Publishes committed writes' events that no trigger announces: on PostgreSQL in one
/// `NOTIFY` (a JSON array; several when it would not fit a notification), in memory on
/// SQLite. Best-effort: a failure is logged, the writes stand.
pub async fn publish<'a>(db: &impl ConnectionTrait, events: impl IntoIterator<Item = &'a Event>) {
    let events: Vec<&Event> = events.into_iter().collect();
    if events.is_empty() {
        return;
    }
    if db.get_database_backend() != DatabaseBackend::Postgres {
        for event in events {
            let _ = bus().send(event.clone());
        }
        return;
    }
    // A notification carries at most 8000 bytes; an event is under 200.
    for chunk in events.chunks(30) {
        let Ok(payload) = serde_json::to_string(chunk) else {
            continue;
        };
        let sent = db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "live events: could not publish");
        }
    }
}

/// Relays the database's notifications to this process's subscribers until the process
/// ends, reconnecting after a lost connection. Events sent while it was away are missed, and
/// it says so: a warning, and a change of [`gaps`].
pub async fn relay_postgres(url: String) {
    let mut wait = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        match listen(&url, &mut connected_before).await {
            Ok(()) => wait = Duration::from_millis(100),
            Err(error) => {
                if connected_before {
                    tracing::warn!(%error, "live events: listening failed; events may be missed until it is back");
                    missed_some();
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen(url: &str, connected_before: &mut bool) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    if *connected_before {
        // Back after a failure: what was sent meanwhile is gone.
        missed_some();
    }
    *connected_before = true;
    tracing::debug!("live events: listening");
    loop {
        // `recv` would reconnect without a word; `try_recv` says when the connection was lost
        // (then reconnects on the next call).
        let Some(notification) = listener.try_recv().await? else {
            tracing::warn!(
                "live events: connection lost; reconnecting (events sent meanwhile are missed)"
            );
            missed_some();
            continue;
        };
        match serde_json::from_str::<Notification>(notification.payload()) {
            Ok(Notification::One(event)) => {
                let _ = bus().send(event);
            }
            Ok(Notification::Many(events)) => {
                for event in events {
                    let _ = bus().send(event);
                }
            }
            Err(error) => tracing::warn!(%error, "live events: unreadable notification"),
        }
    }
}
