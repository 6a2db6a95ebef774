//! Erasing a visitor's data on request (KVKK, GDPR): the visitor is found in one account by
//! e-mail address or by a conversation, and their name, contact details, messages, answers
//! and transcripts are erased from tickets, conversations and stored webhook payloads, in one
//! transaction. Tickets stay as records (number, topic, times, delivery states) with
//! `erased_at` set, which their timeline shows; an erased conversation is over (`EXPIRED`).
//! Mails already sent cannot be recalled. Addresses match ignoring case, Unicode's included
//! (`Çağrı@örnek.com.tr` is `çağrı@örnek.com.tr`), on both engines.

use std::collections::BTreeSet;

use entity::{
    conversation, conversation_message, delivery, ticket, ticket_change, webhook, webhook_delivery,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use crate::vocab::{Answers, ConversationStatus, DeliveryStatus, Transcript};
use crate::{Error, Result, now, validate, webhooks};

/// Whose data to erase.
#[derive(Clone, Debug)]
pub enum Visitor {
    /// Everything stored under this e-mail address (ignoring case), and the conversations
    /// that led to those tickets.
    Email(String),
    /// One conversation, and the ticket it opened.
    Conversation(Uuid),
}

/// What an erasure changed. All zero: nothing of this visitor was left (erased before, or
/// never stored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    pub tickets: u64,
    pub conversations: u64,
    /// Lines of those conversations, deleted.
    pub conversation_lines: u64,
    /// Stored webhook payloads (sent or still to be sent) redacted.
    pub webhook_payloads: u64,
}

/// Erases the visitor's data in the account.
pub async fn erase<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    visitor: &Visitor,
) -> Result<Erased> {
    let txn = crate::infra::db::begin(db).await?;
    let (conversation_ids, ticket_ids) = match visitor {
        Visitor::Email(email) => {
            let email = validate::email("email", email)?.to_lowercase();
            let backend = txn.get_database_backend();
            let conversations: Vec<Uuid> = conversation::Entity::find()
                .select_only()
                .column(conversation::Column::Id)
                .column(conversation::Column::VisitorEmail)
                .filter(conversation::Column::AccountId.eq(account_id))
                .filter(maybe_email(
                    backend,
                    conversation::Column::VisitorEmail,
                    &email,
                ))
                .into_tuple::<(Uuid, Option<String>)>()
                .all(&txn)
                .await?
                .into_iter()
                .filter(|(_, stored)| same_email(stored.as_deref(), &email))
                .map(|(id, _)| id)
                .collect();
            let mut found: Vec<(Uuid, Option<Uuid>)> = ticket::Entity::find()
                .select_only()
                .column(ticket::Column::Id)
                .column(ticket::Column::ConversationId)
                .column(ticket::Column::VisitorEmail)
                .filter(ticket::Column::AccountId.eq(account_id))
                .filter(maybe_email(backend, ticket::Column::VisitorEmail, &email))
                .into_tuple::<(Uuid, Option<Uuid>, Option<String>)>()
                .all(&txn)
                .await?
                .into_iter()
                .filter(|(_, _, stored)| same_email(stored.as_deref(), &email))
                .map(|(id, conversation, _)| (id, conversation))
                .collect();
            // Tickets those conversations opened, whatever address they hold.
            for group in conversations.chunks(1_000) {
                let opened: Vec<(Uuid, Option<Uuid>)> = ticket::Entity::find()
                    .select_only()
                    .column(ticket::Column::Id)
                    .column(ticket::Column::ConversationId)
                    .filter(ticket::Column::AccountId.eq(account_id))
                    .filter(ticket::Column::ConversationId.is_in(group.iter().copied()))
                    .into_tuple()
                    .all(&txn)
                    .await?;
                found.extend(opened);
            }
            found.sort();
            found.dedup();
            // The conversations that led to those tickets are the visitor's too.
            let mut conversations: BTreeSet<Uuid> = conversations.into_iter().collect();
            conversations.extend(found.iter().filter_map(|(_, c)| *c));
            let tickets = found.into_iter().map(|(id, _)| id).collect();
            (conversations.into_iter().collect(), tickets)
        }
        Visitor::Conversation(id) => {
            let found = conversation::Entity::find_by_id(*id)
                .filter(conversation::Column::AccountId.eq(account_id))
                .one(&txn)
                .await?
                .ok_or(Error::NotFound("conversation"))?;
            let tickets: Vec<Uuid> = ticket::Entity::find()
                .select_only()
                .column(ticket::Column::Id)
                .filter(ticket::Column::AccountId.eq(account_id))
                .filter(ticket::Column::ConversationId.eq(found.id))
                .into_tuple()
                .all(&txn)
                .await?;
            (vec![found.id], tickets)
        }
    };
    let at = now();
    let mut erased = Erased::default();
    if !ticket_ids.is_empty() {
        erased.tickets = ticket::Entity::update_many()
            .col_expr(
                ticket::Column::VisitorName,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                ticket::Column::VisitorEmail,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                ticket::Column::VisitorPhone,
                Expr::value(Option::<String>::None),
            )
            .col_expr(ticket::Column::Message, Expr::value(""))
            .col_expr(
                ticket::Column::Transcript,
                Expr::value(Option::<Transcript>::None),
            )
            .col_expr(ticket::Column::TranscriptOmitted, Expr::value(0))
            .col_expr(
                ticket::Column::Answers,
                Expr::value(Option::<Answers>::None),
            )
            .col_expr(ticket::Column::ErasedAt, Expr::value(at))
            .filter(ticket::Column::Id.is_in(ticket_ids.clone()))
            .filter(ticket::Column::ErasedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
        erased.webhook_payloads = redact_payloads(&txn, account_id, &ticket_ids).await?;
        erase_confirmations(&txn, &ticket_ids, at).await?;
    }
    if !conversation_ids.is_empty() {
        erased.conversations = conversation::Entity::update_many()
            .col_expr(
                conversation::Column::VisitorName,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                conversation::Column::VisitorEmail,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                conversation::Column::VisitorPhone,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                conversation::Column::Answers,
                Expr::value(Answers::default()),
            )
            .col_expr(conversation::Column::ErasedAt, Expr::value(at))
            // An erased conversation is over: a turn in flight (it read the row before) fails
            // its revision check instead of writing the erased fields back, and later turns
            // are refused as for an expired one.
            .col_expr(
                conversation::Column::Status,
                Expr::value(ConversationStatus::Expired),
            )
            .col_expr(
                conversation::Column::Revision,
                Expr::col(conversation::Column::Revision).add(1),
            )
            .filter(conversation::Column::Id.is_in(conversation_ids.clone()))
            .filter(conversation::Column::ErasedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
        erased.conversation_lines = conversation_message::Entity::delete_many()
            .filter(conversation_message::Column::ConversationId.is_in(conversation_ids))
            .exec(&txn)
            .await?
            .rows_affected;
    }
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(erased)
}

/// Rows whose `column` may hold `email` (lower-cased already) ignoring case. An ASCII address
/// is found through the `lower(visitor_email)` index (migration `m20261202_000014`): a stored
/// address with other letters does not lower-case to it (save U+212A KELVIN SIGN, left out).
/// One with other letters is looked for among the account's stored addresses holding a
/// character outside printable ASCII, since the engine's `lower` may leave those letters
/// alone (SQLite's knows only ASCII; PostgreSQL's depends on the database's locale). [`same_email`] then decides, in Rust,
/// with Unicode's case rules.
fn maybe_email<C: ColumnTrait>(backend: DatabaseBackend, column: C, email: &str) -> SimpleExpr {
    if email.is_ascii() {
        return ExprTrait::eq(Func::lower(Expr::col(column)), email);
    }
    match backend {
        DatabaseBackend::Postgres => Expr::cust_with_expr("$1 ~ '[^ -~]'", Expr::col(column)),
        _ => Expr::cust_with_expr("$1 GLOB '*[^ -~]*'", Expr::col(column)),
    }
}

/// Whether a stored address is `email` (lower-cased already), ignoring case.
fn same_email(stored: Option<&str>, email: &str) -> bool {
    stored.is_some_and(|s| s.trim().to_lowercase() == email)
}

/// The visitor's confirmations of these tickets lose the address (the timeline then says
/// "(erased)"); one not sent yet is ended `FAILED`, so no mail goes to an erased address.
async fn erase_confirmations(
    txn: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let confirmations = || {
        delivery::Entity::update_many()
            .filter(delivery::Column::TicketId.is_in(ticket_ids.iter().copied()))
            .filter(Expr::cust("recipient_key LIKE 'visitor:%'"))
    };
    confirmations()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(
            delivery::Column::LastError,
            Expr::value("the visitor's data was erased on request"),
        )
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(at))
        .filter(delivery::Column::Status.is_in([
            DeliveryStatus::Pending,
            DeliveryStatus::Sending,
            DeliveryStatus::Retrying,
        ]))
        .exec(txn)
        .await?;
    // One confirmation per ticket, so one erased key per ticket stays unique.
    confirmations()
        .col_expr(delivery::Column::Recipient, Expr::value(ERASED))
        .col_expr(
            delivery::Column::RecipientKey,
            Expr::value(format!("visitor:{ERASED}")),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// What an erased confirmation's address reads.
const ERASED: &str = "(erased)";

/// Redacts the stored webhook payloads about these tickets (their own events, and their
/// deliveries' failures): the visitor's name, contact details and message become null. Found
/// by their ids, which each event derives from its webhook and occurrence. Returns how many
/// changed.
async fn redact_payloads(
    txn: &impl ConnectionTrait,
    account_id: Uuid,
    ticket_ids: &[Uuid],
) -> Result<u64> {
    let hooks: Vec<Uuid> = webhook::Entity::find()
        .select_only()
        .column(webhook::Column::Id)
        .filter(webhook::Column::AccountId.eq(account_id))
        .into_tuple()
        .all(txn)
        .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let deliveries: Vec<Uuid> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::Id)
        .filter(delivery::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .into_tuple()
        .all(txn)
        .await?;
    // `ticket.updated` events are named by the change they announce.
    let changes: Vec<Uuid> = ticket_change::Entity::find()
        .select_only()
        .column(ticket_change::Column::Id)
        .filter(ticket_change::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .into_tuple()
        .all(txn)
        .await?;
    let mut ids = BTreeSet::new();
    for hook in &hooks {
        for ticket in ticket_ids {
            for event in [webhooks::TICKET_OPENED, webhooks::TICKET_UNROUTED] {
                ids.insert(webhooks::delivery_id(*hook, event, *ticket));
            }
        }
        for change in &changes {
            ids.insert(webhooks::delivery_id(
                *hook,
                webhooks::TICKET_UPDATED,
                *change,
            ));
        }
        for delivery in &deliveries {
            ids.insert(webhooks::delivery_id(
                *hook,
                webhooks::DELIVERY_FAILED,
                *delivery,
            ));
        }
    }
    let mut changed = 0;
    // In groups, so a ticket with many deliveries stays within a statement's parameters.
    let ids: Vec<Uuid> = ids.into_iter().collect();
    for group in ids.chunks(1_000) {
        let stored = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::AccountId.eq(account_id))
            .filter(webhook_delivery::Column::Id.is_in(group.iter().copied()))
            .all(txn)
            .await?;
        for row in stored {
            let Some(redacted) = webhooks::redacted_payload(&row.payload) else {
                continue;
            };
            webhook_delivery::Entity::update_many()
                .col_expr(webhook_delivery::Column::Payload, Expr::value(redacted))
                .filter(webhook_delivery::Column::Id.eq(row.id))
                .exec(txn)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}
