//! Tickets people work: close (with a note), reopen, assign to an agent of the account or
//! unassign. Each change that changes something is one line of the ticket's timeline with
//! who made it, a live `TicketUpdated` event and a `ticket.updated` webhook, written in one
//! transaction with the change itself.
//!
//! A change is a conditional update (close only an open ticket, assign only to someone else),
//! so two people making the same change at once make it once: the second finds it made,
//! changes nothing and adds no line (on PostgreSQL it waits for the first's row lock and then
//! sees the new state; SQLite runs writes one at a time).

use entity::{agent, api_key, ticket, ticket_change};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::infra::events::{self, Event};
use crate::vocab::{ChangeKind, TicketStatus};
use crate::webhooks::{self, TicketData};
use crate::{Error, Result, now, validate};

/// What a person does to a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Closes an open ticket, with an optional note (at most 2,000 characters).
    Close { note: Option<String> },
    /// Puts a closed ticket back to open.
    Reopen,
    /// Gives the ticket to an agent of the account; `None` takes it from whoever has it.
    Assign { agent: Option<Uuid> },
}

/// The ticket after a change, and whether this call changed it (false: it was so already,
/// maybe by someone else a moment before).
#[derive(Clone, Debug)]
pub struct Changed {
    pub ticket: ticket::Model,
    pub changed: bool,
}

/// How a change's author reads in the timeline: the admin key by its listed prefix.
pub async fn actor(db: &impl ConnectionTrait, key_id: Uuid) -> Result<String> {
    let key = api_key::Entity::find_by_id(key_id)
        .one(db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(format!("{} key {}", key.kind.as_str(), key.prefix))
}

/// Makes `change` on the account's ticket `ticket_id` on behalf of `actor`.
pub async fn change<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    ticket_id: Uuid,
    change: &Change,
    actor: &str,
) -> Result<Changed> {
    let note = match change {
        Change::Close { note } => {
            validate::optional(note.as_deref(), |n| validate::text("note", n))?
        }
        _ => None,
    };
    let txn = crate::infra::db::begin(db).await?;
    find(&txn, account_id, ticket_id).await?;
    let agent = match change {
        Change::Assign { agent: Some(id) } => Some(
            agent::Entity::find_by_id(*id)
                .filter(agent::Column::AccountId.eq(account_id))
                .one(&txn)
                .await?
                .ok_or(Error::NotFound("agent"))?,
        ),
        _ => None,
    };
    let at = now();
    let update = ticket::Entity::update_many()
        .filter(ticket::Column::Id.eq(ticket_id))
        .filter(ticket::Column::AccountId.eq(account_id));
    let (update, kind) = match change {
        Change::Close { .. } => (
            update
                .col_expr(ticket::Column::Status, Expr::value(TicketStatus::Closed))
                .col_expr(ticket::Column::ClosingNote, Expr::value(note.clone()))
                .col_expr(ticket::Column::ClosedAt, Expr::value(at))
                .filter(ticket::Column::Status.eq(TicketStatus::Open)),
            ChangeKind::Closed,
        ),
        Change::Reopen => (
            update
                .col_expr(ticket::Column::Status, Expr::value(TicketStatus::Open))
                .col_expr(
                    ticket::Column::ClosingNote,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    ticket::Column::ClosedAt,
                    Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
                )
                .filter(ticket::Column::Status.eq(TicketStatus::Closed)),
            ChangeKind::Reopened,
        ),
        Change::Assign { agent: Some(id) } => (
            update
                .col_expr(ticket::Column::AssigneeId, Expr::value(*id))
                .filter(
                    ticket::Column::AssigneeId
                        .is_null()
                        .or(ticket::Column::AssigneeId.ne(*id)),
                ),
            ChangeKind::Assigned,
        ),
        Change::Assign { agent: None } => (
            update
                .col_expr(
                    ticket::Column::AssigneeId,
                    Expr::value(Option::<Uuid>::None),
                )
                .filter(ticket::Column::AssigneeId.is_not_null()),
            ChangeKind::Unassigned,
        ),
    };
    let changed = match update.exec(&txn).await {
        Ok(done) => done.rows_affected == 1,
        // The agent was deleted since it was read.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) => {
            return Err(Error::NotFound("agent"));
        }
        Err(e) => return Err(e.into()),
    };
    if changed {
        let line = ticket_change::ActiveModel {
            id: Set(Uuid::now_v7()),
            ticket_id: Set(ticket_id),
            account_id: Set(account_id),
            at: Set(at),
            kind: Set(kind),
            actor: Set(actor.to_owned()),
            agent_id: Set(agent.as_ref().map(|a| a.id)),
            agent_name: Set(agent.as_ref().map(|a| a.name.clone())),
            note: Set(note),
        }
        .insert(&txn)
        .await?;
        webhooks::emit(
            &txn,
            account_id,
            webhooks::TICKET_UPDATED,
            line.id,
            ticket_id,
            |ticket| TicketUpdated {
                ticket: ticket.into(),
                change: ChangeData::from(&line),
            },
        )
        .await?;
    }
    let ticket = find(&txn, account_id, ticket_id).await?;
    txn.commit().await?;
    if changed {
        events::publish(
            db,
            [&Event::TicketUpdated {
                account_id,
                ticket_id,
            }],
        )
        .await;
    }
    Ok(Changed { ticket, changed })
}

async fn find(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> Result<ticket::Model> {
    crate::tickets::find_ticket(db, account_id, id)
        .await?
        .ok_or(Error::NotFound("ticket"))
}

/// The changes people made to tickets, oldest first, per ticket.
pub async fn changes_of_tickets(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<ticket_change::Model>>> {
    let rows = ticket_change::Entity::find()
        .filter(ticket_change::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_asc(ticket_change::Column::At)
        .order_by_asc(ticket_change::Column::Id)
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<ticket_change::Model>> =
        std::collections::HashMap::new();
    for row in rows {
        out.entry(row.ticket_id).or_default().push(row);
    }
    Ok(out)
}

/// A change as `ticket.updated` webhook payloads show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeData {
    /// `ASSIGNED`, `UNASSIGNED`, `CLOSED` or `REOPENED`.
    pub kind: ChangeKind,
    pub actor: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub agent_id: Option<Uuid>,
    pub agent_name: Option<String>,
    pub note: Option<String>,
}

impl From<&ticket_change::Model> for ChangeData {
    fn from(c: &ticket_change::Model) -> Self {
        ChangeData {
            kind: c.kind,
            actor: c.actor.clone(),
            at: c.at,
            agent_id: c.agent_id,
            agent_name: c.agent_name.clone(),
            note: c.note.clone(),
        }
    }
}

/// `ticket.updated`: the ticket as it is after the change, and the change.
#[derive(Serialize)]
pub struct TicketUpdated {
    pub ticket: TicketData,
    pub change: ChangeData,
}
