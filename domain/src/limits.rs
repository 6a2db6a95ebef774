//! Per-account caps on the configuration lists, which GraphQL returns whole (no paging): a
//! screen and a request stay a sensible size, and one account cannot grow them without
//! bound. Checked when something is added; lists that grow with traffic (tickets,
//! deliveries, webhook deliveries) are paged instead.

use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::SimpleExpr};

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
