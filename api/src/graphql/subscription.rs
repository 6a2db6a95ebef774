//! Live updates over WebSocket (`graphql-transport-ws`, at `/graphql/ws`): new tickets, the
//! changes people make to them and delivery results of the caller's account, as they are committed, from any API or worker
//! process (see `domain::infra::events`). Admin keys only, given in `connection_init`.

use async_graphql::{Context, ID, Subscription};
use domain::infra::events::Event;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::tickets::{Delivery, Ticket};
use super::{admin, db, parse_id};

/// Live updates.
#[derive(Default)]
pub struct Subscription;

/// The account's events from now on; a subscriber that falls far behind skips events.
fn events_of(account: Uuid) -> impl Stream<Item = Event> {
    futures_util::stream::unfold(domain::infra::events::subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and skipped events");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |event| std::future::ready(event.account_id() == account))
}

/// Whether an event about `ticket` passes a subscription's optional `ticketId`; an id that is
/// no ticket's matches nothing, like another account's.
fn only_ticket(ticket_id: Option<ID>) -> impl Fn(Uuid) -> bool + Copy + Send + Sync + 'static {
    let only = ticket_id.map(|id| parse_id(&id).unwrap_or_else(Uuid::nil));
    move |ticket| only.is_none_or(|t| t == ticket)
}

#[Subscription]
impl Subscription {
    /// Each ticket of the account as soon as it is opened (by `openTicket` or a conversation).
    async fn ticket_opened(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Ticket>> {
        let account = admin(ctx)?;
        let db = db(ctx)?.clone();
        Ok(events_of(account).filter_map(move |event| {
            let db = db.clone();
            async move {
                let Event::TicketOpened { ticket_id, .. } = event else {
                    return None;
                };
                domain::tickets::find_ticket(&db, account, ticket_id)
                    .await
                    .ok()
                    .flatten()
                    .map(Ticket)
            }
        }))
    }

    /// A ticket of the account each time someone closes, reopens, assigns or unassigns it,
    /// as it is then; only `ticketId` when given.
    async fn ticket_updated(
        &self,
        ctx: &Context<'_>,
        ticket_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Ticket>> {
        let account = admin(ctx)?;
        let db = db(ctx)?.clone();
        let only = only_ticket(ticket_id);
        Ok(events_of(account).filter_map(move |event| {
            let db = db.clone();
            async move {
                let Event::TicketUpdated { ticket_id, .. } = event else {
                    return None;
                };
                if !only(ticket_id) {
                    return None;
                }
                domain::tickets::find_ticket(&db, account, ticket_id)
                    .await
                    .ok()
                    .flatten()
                    .map(Ticket)
            }
        }))
    }

    /// A delivery of the account each time it gets a result (`SENT`, `RETRYING`, `FAILED`)
    /// or is put back by an operator; only those of `ticketId` when given.
    async fn delivery_updated(
        &self,
        ctx: &Context<'_>,
        ticket_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Delivery>> {
        let account = admin(ctx)?;
        let db = db(ctx)?.clone();
        let only = only_ticket(ticket_id);
        Ok(events_of(account).filter_map(move |event| {
            let db = db.clone();
            async move {
                let Event::DeliveryUpdated {
                    ticket_id,
                    delivery_id,
                    ..
                } = event
                else {
                    return None;
                };
                if !only(ticket_id) {
                    return None;
                }
                domain::tickets::find_delivery(&db, account, delivery_id)
                    .await
                    .ok()
                    .flatten()
                    .map(Delivery)
            }
        }))
    }
}
