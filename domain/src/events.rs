//! Live events for subscriptions: a ticket was opened, a delivery changed state.
//!
//! On PostgreSQL, triggers on `tickets` and `deliveries` send them with `NOTIFY` when the
//! writing transaction commits, whichever process wrote (an API process, a worker), and every
//! API process `LISTEN`s and hands them to its subscribers: no extra round trip on the write
//! path, and never an event for a rolled-back write. On SQLite, where API and worker share one
//! process, the writers publish on the in-process bus after they commit.
//!
//! Events carry ids only; subscribers read the rows, scoped to their account. Delivery is
//! best-effort (a subscriber that falls behind skips events); the queries are the record.

use std::sync::OnceLock;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The PostgreSQL channel the triggers notify.
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
}

impl Event {
    /// The account the event belongs to.
    pub fn account_id(&self) -> Uuid {
        match self {
            Event::TicketOpened { account_id, .. } | Event::DeliveryUpdated { account_id, .. } => {
                *account_id
            }
        }
    }
}

fn bus() -> &'static broadcast::Sender<Event> {
    static BUS: OnceLock<broadcast::Sender<Event>> = OnceLock::new();
    BUS.get_or_init(|| broadcast::channel(BUS_CAPACITY).0)
}

/// A receiver of every event this process learns of from now on.
pub fn subscribe() -> broadcast::Receiver<Event> {
    bus().subscribe()
}

/// Publishes a committed write's event. On PostgreSQL the triggers have done it already.
pub fn published(db: &impl ConnectionTrait, event: Event) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        // No subscriber is not an error.
        let _ = bus().send(event);
    }
}

/// Relays the database's notifications to this process's subscribers until the process
/// ends, reconnecting after a lost connection (events sent meanwhile are missed).
pub async fn relay_postgres(url: String) {
    let mut wait = Duration::from_millis(100);
    loop {
        match listen(&url).await {
            Ok(()) => wait = Duration::from_millis(100),
            Err(error) => {
                tracing::warn!(%error, "live events: listening failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen(url: &str) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    tracing::debug!("live events: listening");
    loop {
        let notification = listener.recv().await?;
        match serde_json::from_str::<Event>(notification.payload()) {
            Ok(event) => {
                let _ = bus().send(event);
            }
            Err(error) => tracing::warn!(%error, "live events: unreadable notification"),
        }
    }
}
