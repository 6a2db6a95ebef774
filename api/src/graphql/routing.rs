//! Routing rules over GraphQL (admin key): `routingRules`, creating, changing and deleting
//! rules, and a rule's test e-mail.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::routing_rule;

use domain::rules::RuleInput;

use super::access::{Agent, Locale};
use super::tickets::DeliverySource;
use super::types::{loaders, shared};
use super::{ApiResult, admin, cost, db, not_found_id, parse_id};

/// Sends every new ticket whose topic equals `tag` (or every new ticket, for `*`) to the
/// agents it names and to its typed `emails`.
pub struct RoutingRule(pub routing_rule::Model);

impl RoutingRule {
    /// The rule with its agents as they are now, read once per request for all rules listed.
    async fn resolved(&self, ctx: &Context<'_>) -> ApiResult<domain::rules::Rule> {
        let agents = loaders(ctx)?
            .rule_agents
            .load_one(self.0.id)
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(domain::rules::Rule {
            rule: self.0.clone(),
            agents,
        })
    }
}

#[Object]
impl RoutingRule {
    /// Stable id of the rule.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// A topic tag, or `*` for every new ticket.
    async fn tag(&self) -> &str {
        &self.0.tag
    }
    /// The agents it names, in the rule's order; each is mailed at the address they have when
    /// a ticket is routed. A deleted agent leaves the list.
    /// Cost: counted as 50 (the most recipients a rule names).
    #[graphql(complexity = "cost::list(cost::RULE_EMAILS, child_complexity)")]
    async fn agents(&self, ctx: &Context<'_>) -> ApiResult<Vec<Agent>> {
        Ok(self
            .resolved(ctx)
            .await?
            .agents
            .into_iter()
            .map(Agent)
            .collect())
    }
    /// The typed addresses it names (not agents').
    async fn emails(&self) -> &[String] {
        &self.0.emails
    }
    /// The addresses a ticket it matches is mailed to now: its agents', then the typed ones,
    /// each once (ignoring case).
    async fn recipients(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        Ok(self
            .resolved(ctx)
            .await?
            .addresses()
            .into_iter()
            .map(str::to_owned)
            .collect())
    }
    /// False when the rule names no one any more (its last agent was deleted): it mails no
    /// one until agents or addresses are added. The routing form warns about it.
    async fn has_recipients(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(!self.resolved(ctx).await?.addresses().is_empty())
    }
    /// True for `*` and for a tag some ticket step uses now. False means the rule cannot match
    /// any ticket (only chatbots open tickets, with the tags of their steps).
    async fn tag_known(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let known = loaders(ctx)?
            .known_tags
            .load_one(self.0.account_id)
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(domain::rules::tag_known(&self.0, &known))
    }
    /// When the rule was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The language of this rule's e-mails; null: the account's `defaultLocale`.
    async fn locale(&self) -> Option<Locale> {
        self.0.locale.map(Locale::from)
    }
}

/// What the SMTP server answered to one address of a rule's test e-mail.
#[derive(SimpleObject)]
pub struct TestEmail {
    /// The address.
    pub recipient: String,
    /// True when the SMTP server (or, without `SMTP_URL`, the outbox folder) took the mail.
    pub accepted: bool,
    /// The server's reply, or why the mail did not go out.
    pub reply: String,
    /// The language it was written in.
    pub locale: Locale,
}

impl From<domain::rule_check::SampleSent> for TestEmail {
    fn from(s: domain::rule_check::SampleSent) -> Self {
        TestEmail {
            recipient: s.recipient,
            accepted: s.accepted,
            reply: s.reply,
            locale: s.locale.into(),
        }
    }
}

/// A routing rule's content.
#[derive(InputObject)]
pub struct RoutingRuleInput {
    /// A topic tag (need not be used by any flow yet; see `RoutingRule.tagKnown`) or `*` for
    /// every new ticket.
    pub tag: String,
    /// Agents of the account to mail, at the address each has when a ticket is routed;
    /// duplicates are dropped. An id that is no agent of the account is `NOT_FOUND`.
    pub agent_ids: Option<Vec<ID>>,
    /// Other bare addresses; duplicates ignoring case are dropped. Agents and addresses
    /// together: 1-50.
    pub emails: Option<Vec<String>>,
    /// The language of this rule's e-mails; omitted or null: the account's `defaultLocale`.
    pub locale: Option<Locale>,
}

impl TryFrom<RoutingRuleInput> for RuleInput {
    type Error = domain::Error;

    fn try_from(input: RoutingRuleInput) -> Result<Self, domain::Error> {
        let agent_ids = input
            .agent_ids
            .unwrap_or_default()
            .iter()
            .map(|id| parse_id(id).ok_or(domain::Error::NotFound("agent")))
            .collect::<Result<_, _>>()?;
        Ok(RuleInput {
            tag: input.tag,
            agent_ids,
            emails: input.emails.unwrap_or_default(),
            locale: input.locale.map(Into::into),
        })
    }
}

/// One address the routing form offers.
#[derive(SimpleObject)]
pub struct RecipientOption {
    /// The address.
    pub email: String,
    /// The agent whose address it is (put it in `agentIds`); null for an address typed in a
    /// rule (put it in `emails`).
    pub agent_id: Option<ID>,
    /// The agent's name; null for a typed address.
    pub name: Option<String>,
}

/// Who a new ticket with a topic would be mailed to right now.
#[derive(SimpleObject)]
pub struct RoutingPreview {
    /// The topic asked about, trimmed; null for none.
    pub topic: Option<String>,
    /// True when some ticket step of the account uses the topic now (always false for none):
    /// only chatbots open tickets, so a topic no step uses gets no ticket.
    pub tag_known: bool,
    /// Each address once (ignoring case), in the order the worker resolves them: the topic's
    /// rules, then `*` rules, then forward addresses, each rule oldest first.
    pub recipients: Vec<RoutingPreviewRecipient>,
}

/// One address of a routing preview.
#[derive(SimpleObject)]
pub struct RoutingPreviewRecipient {
    /// The address, as first spelled.
    pub address: String,
    /// What brings it in: rules (by id and tag) and, as `FORWARD`, ticket steps.
    pub sources: Vec<DeliverySource>,
    /// The ticket steps whose forward addresses (as designed, or in the live published
    /// version) hold it: a ticket opened at one of them is mailed to it; one opened at another
    /// step of the topic is not (unless a rule names it). Of the first 1,000 ticket steps of
    /// the topic of each.
    pub step_ids: Vec<ID>,
}

impl From<domain::routing::PreviewRecipient> for RoutingPreviewRecipient {
    fn from(r: domain::routing::PreviewRecipient) -> Self {
        RoutingPreviewRecipient {
            address: r.address,
            sources: r.sources.into_iter().map(DeliverySource::from).collect(),
            step_ids: r.steps.into_iter().map(ID::from).collect(),
        }
    }
}

/// The admin key's reads of this feature.
#[derive(Default)]
pub struct RoutingQuery;

#[Object(name = "RoutingQuery")]
impl RoutingQuery {
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

    /// The routing form's e-mail list in one read: the account's agents by name, then the
    /// addresses typed in its rules that are no agent's, each once (ignoring case), oldest
    /// rule first.
    /// Cost: counted as 51,000 (1,000 agents and 1,000 rules of 50 addresses).
    #[graphql(
        complexity = "cost::list(cost::AGENTS + cost::RULES * cost::RULE_EMAILS, child_complexity)"
    )]
    async fn recipient_options(&self, ctx: &Context<'_>) -> ApiResult<Vec<RecipientOption>> {
        let account = admin(ctx)?;
        Ok(domain::rules::recipient_options(db(ctx)?, account)
            .await?
            .into_iter()
            .map(|o| RecipientOption {
                email: o.email,
                agent_id: o.agent.as_ref().map(|a| a.id.into()),
                name: o.agent.map(|a| a.name),
            })
            .collect())
    }

    /// Who a new ticket with `topic` (omitted or null: no topic) would be mailed to right
    /// now, and why: the same resolution the worker makes when it routes a ticket, over the
    /// rules as they are now and the forward addresses of the ticket steps that use the topic,
    /// as designed (what `openTicket` uses) and in each flow's live published version (what a
    /// new chatbot conversation uses). Nothing is sent or stored.
    /// Cost: counted as 1,000.
    #[graphql(complexity = "cost::list(cost::RULES, child_complexity)")]
    async fn routing_preview(
        &self,
        ctx: &Context<'_>,
        topic: Option<String>,
    ) -> ApiResult<RoutingPreview> {
        let account = admin(ctx)?;
        let preview = domain::routing::preview(db(ctx)?, account, topic.as_deref()).await?;
        Ok(RoutingPreview {
            topic: preview.topic,
            tag_known: preview.tag_known,
            recipients: preview.recipients.into_iter().map(Into::into).collect(),
        })
    }
}

/// The admin key's writes of this feature; each validates all input before writing.
#[derive(Default)]
pub struct RoutingMutation;

#[Object(name = "RoutingMutation")]
impl RoutingMutation {
    /// Creates a routing rule.
    async fn create_routing_rule(
        &self,
        ctx: &Context<'_>,
        input: RoutingRuleInput,
    ) -> ApiResult<RoutingRule> {
        let account = admin(ctx)?;
        Ok(RoutingRule(
            domain::rules::create_rule(db(ctx)?, account, &input.try_into()?).await?,
        ))
    }

    /// Replaces a routing rule's tag and recipients. Tickets already routed keep their
    /// deliveries.
    async fn update_routing_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: RoutingRuleInput,
    ) -> ApiResult<RoutingRule> {
        let account = admin(ctx)?;
        let id = not_found_id("routing rule", &id)?;
        Ok(RoutingRule(
            domain::rules::update_rule(db(ctx)?, account, id, &input.try_into()?).await?,
        ))
    }

    /// Sends a sample ticket with the rule's tag to each of the rule's addresses, in the rule's
    /// language, through the service's own mailer and templates, and answers what the SMTP
    /// server said to each. Nothing is stored or retried.
    /// Cost: counted as 50 (the most addresses a rule has).
    #[graphql(complexity = "cost::list(cost::RULE_EMAILS, child_complexity)")]
    async fn send_test_email(&self, ctx: &Context<'_>, rule_id: ID) -> ApiResult<Vec<TestEmail>> {
        let account = admin(ctx)?;
        let id = not_found_id("routing rule", &rule_id)?;
        let outbound = ctx.data::<domain::rule_check::Outbound>()?;
        Ok(
            domain::rule_check::send_sample(db(ctx)?, outbound, account, id)
                .await?
                .into_iter()
                .map(TestEmail::from)
                .collect(),
        )
    }

    /// Deletes a routing rule. Returns the id.
    async fn delete_routing_rule(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("routing rule", &id)?;
        domain::rules::delete_rule(db(ctx)?, account, uuid).await?;
        Ok(id)
    }
}
