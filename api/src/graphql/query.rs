//! Read operations of the admin key (the visitor's `conversation` lives in `visitor`); every
//! one sees only the key's account.

use async_graphql::{Context, ID, Object};

use super::access::{AccountSettings, Agent, ApiKey};
use super::flows::{Flow, TopicTag};
use super::routing::RoutingRule;
use super::tickets::{Ticket, TicketConnection, TicketEdge};
use super::types::PageInfo;
use super::{ApiResult, admin, cost, cursor, db, not_found_id, parse_id, types};

/// Read operations.
#[derive(Default)]
pub struct Query;

#[Object(name = "CoreQuery")]
impl Query {
    /// The caller's account and its settings.
    async fn account_settings(&self, ctx: &Context<'_>) -> ApiResult<AccountSettings> {
        let account = admin(ctx)?;
        Ok(AccountSettings(
            domain::accounts::find(db(ctx)?, account).await?,
        ))
    }

    /// The account's chatbot flows, oldest first: the `first` (1 to 200) after the flow
    /// `after`; pass the last flow's id as `after` for the next ones.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn flows(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<ID>,
    ) -> ApiResult<Vec<Flow>> {
        let account = admin(ctx)?;
        let first = types::page_size(first)?;
        let after = after.map(|id| not_found_id("flow", &id)).transpose()?;
        Ok(
            domain::flows::list_flows(db(ctx)?, account, first as u64, after)
                .await?
                .into_iter()
                .map(Flow)
                .collect(),
        )
    }

    /// One flow; null when no flow of the account has this id.
    async fn flow(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Flow>> {
        let account = admin(ctx)?;
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        Ok(domain::flows::find_flow(db(ctx)?, account, id)
            .await?
            .map(Flow))
    }

    /// Distinct topic tags of all ticket steps in all flows of the account, sorted ignoring
    /// case. This is the list the routing form offers; `*` is not part of it.
    /// Cost: counted as 1,000 (the most distinct topic tags an account has).
    #[graphql(complexity = "cost::list(cost::TOPIC_TAGS, child_complexity)")]
    async fn topic_tags(&self, ctx: &Context<'_>) -> ApiResult<Vec<TopicTag>> {
        let account = admin(ctx)?;
        let with_steps = ctx.look_ahead().field("steps").exists();
        Ok(domain::rules::topic_tags(db(ctx)?, account, with_steps)
            .await?
            .into_iter()
            .map(TopicTag)
            .collect())
    }

    /// The account's agents, by name.
    /// Cost: counted as 1,000.
    #[graphql(complexity = "cost::list(cost::AGENTS, child_complexity)")]
    async fn agents(&self, ctx: &Context<'_>) -> ApiResult<Vec<Agent>> {
        let account = admin(ctx)?;
        Ok(domain::agents::list_agents(db(ctx)?, account)
            .await?
            .into_iter()
            .map(Agent)
            .collect())
    }

    /// The account's API keys, newest first, revoked ones included.
    /// Cost: counted as 100.
    #[graphql(complexity = "cost::list(cost::API_KEYS, child_complexity)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        let account = admin(ctx)?;
        Ok(domain::keys::list_keys(db(ctx)?, account)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }

    /// The account's routing rules, oldest first.
    /// Cost: counted as 1,000.
    #[graphql(complexity = "cost::list(cost::RULES, child_complexity)")]
    async fn routing_rules(&self, ctx: &Context<'_>) -> ApiResult<Vec<RoutingRule>> {
        let account = admin(ctx)?;
        Ok(domain::rules::list_rules(db(ctx)?, account)
            .await?
            .into_iter()
            .map(RoutingRule)
            .collect())
    }

    /// The account's tickets, newest first; `topic` filters by tag (ignoring case). Pass the
    /// last `endCursor` as `after` for the next page. `first` is 1 to 200.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        topic: Option<String>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<TicketConnection> {
        let account = admin(ctx)?;
        let after = cursor::after("ticket", after.as_deref())?;
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let page = domain::tickets::list_tickets(db(ctx)?, account, topic.as_deref(), first, after)
            .await?;
        let edges: Vec<TicketEdge> = page
            .tickets
            .into_iter()
            .map(|t| TicketEdge {
                cursor: cursor::encode("ticket", t.number),
                node: Ticket(t),
            })
            .collect();
        Ok(TicketConnection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// One ticket; null when no ticket of the account has this id.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Ticket>> {
        let account = admin(ctx)?;
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        Ok(domain::tickets::find_ticket(db(ctx)?, account, id)
            .await?
            .map(Ticket))
    }
}
