//! Per-account caps on the configuration lists, which GraphQL returns whole (no paging): a
//! screen and a request stay a sensible size, and one account cannot grow them without
//! bound. Checked when something is added; lists that grow with traffic (tickets,
//! deliveries, webhook deliveries) are paged instead.

use entity::step;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    sea_query::SimpleExpr,
};

use crate::{Error, Result};

/// Flows of one account (the tag benchmark runs at this size).
pub const FLOWS: u64 = 10_000;
/// Steps of one flow.
pub const STEPS_PER_FLOW: u64 = 200;
/// Routing rules of one account.
pub const ROUTING_RULES: u64 = 1_000;
/// Agents of one account.
pub const AGENTS: u64 = 1_000;
/// API keys of one account, revoked ones included.
pub const API_KEYS: u64 = 100;
/// Webhooks of one account.
pub const WEBHOOKS: u64 = 10;
/// Distinct topic tags of the ticket steps of one account: the routing form's list, and the
/// bound `topicTags` is costed at.
pub const TOPIC_TAGS: u64 = 1_000;

/// Confirmations one visitor address gets from one account within an hour (ticket steps
/// with `confirmVisitor`): someone typing a stranger's address into a chat widget can make
/// the service mail that stranger this often at most, and only the fixed confirmation text
/// with a ticket number.
pub const VISITOR_CONFIRMATIONS_PER_HOUR: u64 = 3;

/// Times one account's sending may be paused within an hour (by its admin or the operator):
/// each pause sets the account's due jobs aside and each resume puts them back, work that
/// grows with its backlog.
pub const PAUSES_PER_HOUR: u64 = 10;

/// Refuses one more `what` when the rows matching `scope` already number `max`.
pub async fn check<E>(
    db: &impl ConnectionTrait,
    scope: SimpleExpr,
    what: &'static str,
    max: u64,
) -> Result<()>
where
    E: EntityTrait,
    E::Model: Sync,
{
    let count = E::find().filter(scope).count(db).await?;
    if count >= max {
        return Err(Error::LimitReached { what, max });
    }
    Ok(())
}

/// Refuses a ticket step whose topic (by its case-folded key) would be the account's
/// [`TOPIC_TAGS`]+1st distinct one; a topic some step already uses is always accepted.
pub async fn check_topic(
    db: &impl ConnectionTrait,
    account_id: uuid::Uuid,
    key: &str,
) -> Result<()> {
    let in_use = step::Entity::find()
        .filter(step::Column::AccountId.eq(account_id))
        .filter(step::Column::TopicKey.eq(key))
        .limit(1)
        .count(db)
        .await?;
    if in_use > 0 {
        return Ok(());
    }
    let distinct = step::Entity::find()
        .select_only()
        .column(step::Column::TopicKey)
        .filter(step::Column::AccountId.eq(account_id))
        .filter(step::Column::TopicKey.is_not_null())
        .distinct()
        .count(db)
        .await?;
    if distinct >= TOPIC_TAGS {
        return Err(Error::LimitReached {
            what: "topic tags",
            max: TOPIC_TAGS,
        });
    }
    Ok(())
}
