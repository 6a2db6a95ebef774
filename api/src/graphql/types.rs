//! GraphQL object types. They wrap SeaORM models but are separate from them: what the schema
//! promises does not change when a column does.

use async_graphql::{Context, Enum, ID, Interface, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::routing::{self, Source};
use entity::{agent, delivery, flow, routing_rule, step, ticket};

use super::{ApiError, ApiResult, Loaders};

fn loaders<'a>(ctx: &Context<'a>) -> ApiResult<&'a Loaders> {
    Ok(ctx.data::<Loaders>()?)
}

fn shared(e: std::sync::Arc<domain::Error>) -> ApiError {
    ApiError::Domain(e)
}

/// A chatbot flow (design): an ordered list of steps.
pub struct Flow(pub flow::Model);

#[Object]
impl Flow {
    /// Stable id of the flow.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Name shown in the design screen.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The steps in order (position 0 first).
    async fn steps(&self, ctx: &Context<'_>) -> ApiResult<Vec<Step>> {
        let steps = loaders(ctx)?
            .steps
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(steps
            .unwrap_or_default()
            .into_iter()
            .map(Step::from)
            .collect())
    }
    /// When the flow was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

async fn flow_of(ctx: &Context<'_>, step: &step::Model) -> ApiResult<Flow> {
    loaders(ctx)?
        .flows
        .load_one(step.flow_id)
        .await
        .map_err(shared)?
        .map(Flow)
        .ok_or(ApiError::from(domain::Error::NotFound("flow")))
}

/// A step of a chatbot flow.
#[derive(Interface)]
#[graphql(
    field(name = "id", ty = "ID", desc = "Stable id of the step."),
    field(name = "position", ty = "i32", desc = "0-based place in the flow."),
    field(name = "flow", ty = "Flow", desc = "The flow the step belongs to.")
)]
pub enum Step {
    MessageStep(MessageStep),
    TicketStep(TicketStep),
}

impl From<step::Model> for Step {
    fn from(model: step::Model) -> Self {
        if model.kind == domain::flows::KIND_TICKET {
            Step::TicketStep(TicketStep(model))
        } else {
            Step::MessageStep(MessageStep(model))
        }
    }
}

/// The bot says a text.
pub struct MessageStep(pub step::Model);

#[Object]
impl MessageStep {
    /// Stable id of the step.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// 0-based place in the flow.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// The flow the step belongs to.
    async fn flow(&self, ctx: &Context<'_>) -> Result<Flow, ApiError> {
        flow_of(ctx, &self.0).await
    }
    /// What the bot says.
    async fn text(&self) -> &str {
        self.0.text.as_deref().unwrap_or_default()
    }
}

/// The bot opens a ticket when a visitor reaches this step, also when no agent is online.
pub struct TicketStep(pub step::Model);

#[Object]
impl TicketStep {
    /// Stable id of the step; the chat widget passes it to `openTicket`.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// 0-based place in the flow.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// The flow the step belongs to.
    async fn flow(&self, ctx: &Context<'_>) -> Result<Flow, ApiError> {
        flow_of(ctx, &self.0).await
    }
    /// The topic tag given to tickets opened here (internal, never shown to visitors). Routing
    /// rules match it, ignoring case.
    async fn topic(&self) -> &str {
        self.0.topic.as_deref().unwrap_or_default()
    }
    /// What the bot tells the visitor once the ticket is open, e.g. "Talep alındı".
    async fn confirmation_message(&self) -> &str {
        self.0.confirmation_message.as_deref().unwrap_or_default()
    }
    /// Addresses that receive every ticket opened here, besides the routing rules.
    async fn forward_emails(&self) -> Vec<String> {
        domain::flows::forward_emails(&self.0)
    }
}

/// A topic tag used by ticket steps: what the routing form offers (besides `*`).
pub struct TopicTag(pub domain::rules::TopicTag);

#[Object]
impl TopicTag {
    /// The tag, spelled as the first ticket step that used it.
    async fn tag(&self) -> &str {
        &self.0.tag
    }
    /// The ticket steps, in any flow of the account, that use this tag (ignoring case).
    async fn steps(&self) -> Vec<TicketStep> {
        self.0.steps.iter().cloned().map(TicketStep).collect()
    }
}

/// An agent of the account; the routing form offers their addresses.
pub struct Agent(pub agent::Model);

#[Object]
impl Agent {
    /// Stable id of the agent.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// E-mail address, unique in the account (ignoring case).
    async fn email(&self) -> &str {
        &self.0.email
    }
}

/// Sends every new ticket whose topic equals `tag` (or every new ticket, for `*`) to `emails`.
pub struct RoutingRule(pub routing_rule::Model);

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
    /// Who receives the tickets.
    async fn emails(&self) -> Vec<String> {
        domain::rules::emails(&self.0)
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
}

/// The state of a ticket.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum TicketStatus {
    /// Opened by a chatbot, not handled yet.
    Open,
}

/// Whoever left the ticket, as far as they told the chatbot.
#[derive(SimpleObject)]
pub struct Visitor {
    /// Null when the visitor did not give it.
    pub name: Option<String>,
    /// Null when the visitor did not give it; when set, notification e-mails reply to it.
    pub email: Option<String>,
    /// Null when the visitor did not give it.
    pub phone: Option<String>,
}

/// A ticket opened by a chatbot's ticket step.
pub struct Ticket(pub ticket::Model);

#[Object]
impl Ticket {
    /// Stable id of the ticket.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Per-account sequence number (#1, #2, ...), used in e-mail subjects.
    async fn number(&self) -> i64 {
        self.0.number
    }
    /// The topic tag of the step that opened it, as it was then.
    async fn topic(&self) -> &str {
        &self.0.topic
    }
    /// Current state.
    async fn status(&self) -> TicketStatus {
        TicketStatus::Open
    }
    /// What the visitor wrote.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// Null when the visitor gave no name, e-mail or phone.
    async fn visitor(&self) -> Option<Visitor> {
        let t = &self.0;
        if t.visitor_name.is_none() && t.visitor_email.is_none() && t.visitor_phone.is_none() {
            return None;
        }
        Some(Visitor {
            name: t.visitor_name.clone(),
            email: t.visitor_email.clone(),
            phone: t.visitor_phone.clone(),
        })
    }
    /// The flow that opened it; null once that flow is deleted.
    async fn flow(&self, ctx: &Context<'_>) -> ApiResult<Option<Flow>> {
        let Some(flow_id) = self.0.flow_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .flows
            .load_one(flow_id)
            .await
            .map_err(shared)?
            .map(Flow))
    }
    /// The name of the flow when the ticket was opened (kept after the flow is deleted).
    async fn flow_name(&self) -> &str {
        &self.0.flow_name
    }
    /// When the ticket was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// One e-mail per recipient. Empty until the worker has routed the ticket (usually well
    /// under a second), and for a ticket that no rule or forward address matches.
    async fn deliveries(&self, ctx: &Context<'_>) -> ApiResult<Vec<Delivery>> {
        let rows = loaders(ctx)?
            .deliveries
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(rows.unwrap_or_default().into_iter().map(Delivery).collect())
    }
}

/// The state of one e-mail.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// A worker is sending it now.
    Sending,
    /// Accepted by the SMTP server. Final.
    Sent,
    /// The last attempt failed transiently; `nextAttemptAt` says when the next one is due.
    Retrying,
    /// Refused for good (SMTP 5xx) or out of attempts; `lastError` says why. Final.
    Failed,
}

impl DeliveryStatus {
    fn from_db(s: &str) -> Self {
        use domain::routing::status;
        match s {
            status::SENDING => DeliveryStatus::Sending,
            status::SENT => DeliveryStatus::Sent,
            status::RETRYING => DeliveryStatus::Retrying,
            status::FAILED => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// What put a recipient on a ticket.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DeliverySourceKind {
    /// A routing rule whose tag equals the ticket's topic.
    Rule,
    /// A `*` routing rule.
    WildcardRule,
    /// The forward addresses of the ticket step.
    Forward,
}

/// One reason a recipient gets the ticket.
#[derive(SimpleObject)]
pub struct DeliverySource {
    /// Which kind of reason.
    pub kind: DeliverySourceKind,
    /// The rule, for `RULE` and `WILDCARD_RULE`; null for `FORWARD`.
    pub rule_id: Option<ID>,
    /// The rule's tag (`*` for a wildcard rule); null for `FORWARD`.
    pub tag: Option<String>,
}

/// One notification e-mail of a ticket to one recipient.
pub struct Delivery(pub delivery::Model);

#[Object]
impl Delivery {
    /// Stable id of the delivery.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The address it goes to.
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    /// Current state.
    async fn status(&self) -> DeliveryStatus {
        DeliveryStatus::from_db(&self.0.status)
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The error of the last failed attempt; null if none failed, and after a success.
    async fn last_error(&self) -> Option<&str> {
        if self.0.status == domain::routing::status::SENT {
            return None;
        }
        self.0.last_error.as_deref()
    }
    /// When the SMTP server accepted it; null until then.
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    /// When the next attempt is due; null unless `RETRYING`.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// Why this recipient gets the ticket: the rules (by tag, or `*`) and/or the step's forward
    /// list.
    async fn sources(&self) -> Vec<DeliverySource> {
        routing::sources(&self.0)
            .into_iter()
            .map(|s| match s {
                Source::Rule { rule_id, tag } => DeliverySource {
                    kind: DeliverySourceKind::Rule,
                    rule_id: Some(rule_id.into()),
                    tag: Some(tag),
                },
                Source::Wildcard { rule_id } => DeliverySource {
                    kind: DeliverySourceKind::WildcardRule,
                    rule_id: Some(rule_id.into()),
                    tag: Some(domain::validate::WILDCARD.to_owned()),
                },
                Source::Forward => DeliverySource {
                    kind: DeliverySourceKind::Forward,
                    rule_id: None,
                    tag: None,
                },
            })
            .collect()
    }
}

/// A page of tickets, newest first.
#[derive(SimpleObject)]
pub struct TicketConnection {
    /// The tickets with their cursors.
    pub edges: Vec<TicketEdge>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// A ticket and its cursor.
#[derive(SimpleObject)]
pub struct TicketEdge {
    /// Pass as `after` to get the tickets older than this one.
    pub cursor: String,
    /// The ticket.
    pub node: Ticket,
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether older tickets exist after this page.
    pub has_next_page: bool,
    /// The cursor of the last edge; null on an empty page.
    pub end_cursor: Option<String>,
}

/// A new ticket and what the bot says back.
#[derive(SimpleObject)]
pub struct OpenTicketPayload {
    /// The ticket just opened; its notification is already queued.
    pub ticket: Ticket,
    /// The step's confirmation message, for the chat widget to show ("Talep alındı").
    pub confirmation_message: String,
}
