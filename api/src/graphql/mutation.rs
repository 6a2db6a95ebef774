//! Write operations. `openTicket` accepts admin and widget keys; everything else needs an
//! admin key. Each one validates all input before writing anything.

use async_graphql::{Context, ID, InputObject, Object, OneofObject};
use domain::flows::StepInput as DomainStep;
use domain::rules::RuleInput;
use domain::tickets::{OpenTicket, VisitorInput as DomainVisitor};

use super::types::{Agent, Flow, OpenTicketPayload, RoutingRule, Step, Ticket};
use super::{ApiResult, admin, db, parse_id, principal};

/// Write operations.
pub struct Mutation;

/// A new flow.
#[derive(InputObject)]
pub struct CreateFlowInput {
    /// 1-200 characters, one line.
    pub name: String,
}

/// A step's content: exactly one of the kinds.
#[derive(OneofObject)]
pub enum StepInput {
    /// The bot says a text.
    Message(MessageStepInput),
    /// The bot opens a ticket.
    Ticket(TicketStepInput),
}

/// A message step.
#[derive(InputObject)]
pub struct MessageStepInput {
    /// What the bot says: 1-2000 characters.
    pub text: String,
}

/// A ticket step.
#[derive(InputObject)]
pub struct TicketStepInput {
    /// Topic tag for its tickets: 1-64 letters, digits, `_`, `-`, `.`, `:` (never `*`).
    /// Internal, never shown to visitors.
    pub topic: String,
    /// What the bot says once the ticket is open, e.g. "Talep alındı": 1-2000 characters.
    pub confirmation_message: String,
    /// Addresses that get every ticket of this step, besides the routing rules (at most 50,
    /// duplicates ignoring case are dropped).
    #[graphql(default)]
    pub forward_emails: Vec<String>,
}

impl From<StepInput> for DomainStep {
    fn from(input: StepInput) -> Self {
        match input {
            StepInput::Message(m) => DomainStep::Message { text: m.text },
            StepInput::Ticket(t) => DomainStep::Ticket {
                topic: t.topic,
                confirmation_message: t.confirmation_message,
                forward_emails: t.forward_emails,
            },
        }
    }
}

/// A new agent.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// 1-200 characters, one line.
    pub name: String,
    /// A bare address, unique in the account (ignoring case).
    pub email: String,
}

/// A routing rule's content.
#[derive(InputObject)]
pub struct RoutingRuleInput {
    /// A topic tag (need not be used by any flow yet; see `RoutingRule.tagKnown`) or `*` for
    /// every new ticket.
    pub tag: String,
    /// 1-50 bare addresses: agents' or any other; duplicates ignoring case are dropped.
    pub emails: Vec<String>,
}

impl From<RoutingRuleInput> for RuleInput {
    fn from(input: RoutingRuleInput) -> Self {
        RuleInput {
            tag: input.tag,
            emails: input.emails,
        }
    }
}

/// What the chat widget sends when a visitor reaches a ticket step.
#[derive(InputObject)]
pub struct OpenTicketInput {
    /// The ticket step the visitor reached.
    pub step_id: ID,
    /// What the visitor wrote: 1-10000 characters.
    pub message: String,
    /// Whatever the visitor told about themselves.
    pub visitor: Option<VisitorInput>,
}

/// The visitor's contact details; each is optional, blank counts as not given.
#[derive(InputObject)]
pub struct VisitorInput {
    /// 1-200 characters, one line.
    pub name: Option<String>,
    /// A bare address; notification e-mails reply to it.
    pub email: Option<String>,
    /// Digits with `+ - ( ) .` and spaces.
    pub phone: Option<String>,
}

fn not_found_id(what: &'static str, id: &ID) -> ApiResult<uuid::Uuid> {
    parse_id(id).ok_or(domain::Error::NotFound(what).into())
}

#[Object]
impl Mutation {
    /// Creates an empty flow.
    async fn create_flow(&self, ctx: &Context<'_>, input: CreateFlowInput) -> ApiResult<Flow> {
        let account = admin(ctx)?;
        Ok(Flow(
            domain::flows::create_flow(db(ctx)?, account, &input.name).await?,
        ))
    }

    /// Deletes a flow and its steps; tickets it opened stay (their `flow` becomes null).
    /// Returns the id.
    async fn delete_flow(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("flow", &id)?;
        domain::flows::delete_flow(db(ctx)?, account, uuid).await?;
        Ok(id)
    }

    /// Appends a step to a flow.
    async fn add_step(&self, ctx: &Context<'_>, flow_id: ID, step: StepInput) -> ApiResult<Step> {
        let account = admin(ctx)?;
        let flow_id = not_found_id("flow", &flow_id)?;
        let step = domain::flows::add_step(db(ctx)?, account, flow_id, &step.into()).await?;
        Ok(step.into())
    }

    /// Replaces a step's content (its kind may change); its position stays.
    async fn update_step(&self, ctx: &Context<'_>, id: ID, step: StepInput) -> ApiResult<Step> {
        let account = admin(ctx)?;
        let id = not_found_id("step", &id)?;
        let step = domain::flows::update_step(db(ctx)?, account, id, &step.into()).await?;
        Ok(step.into())
    }

    /// Removes a step; the steps after it move up. Returns the id.
    async fn delete_step(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("step", &id)?;
        domain::flows::delete_step(db(ctx)?, account, uuid).await?;
        Ok(id)
    }

    /// Adds an agent.
    async fn create_agent(&self, ctx: &Context<'_>, input: CreateAgentInput) -> ApiResult<Agent> {
        let account = admin(ctx)?;
        Ok(Agent(
            domain::agents::create_agent(db(ctx)?, account, &input.name, &input.email).await?,
        ))
    }

    /// Creates a routing rule.
    async fn create_routing_rule(
        &self,
        ctx: &Context<'_>,
        input: RoutingRuleInput,
    ) -> ApiResult<RoutingRule> {
        let account = admin(ctx)?;
        Ok(RoutingRule(
            domain::rules::create_rule(db(ctx)?, account, &input.into()).await?,
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
            domain::rules::update_rule(db(ctx)?, account, id, &input.into()).await?,
        ))
    }

    /// Deletes a routing rule. Returns the id.
    async fn delete_routing_rule(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("routing rule", &id)?;
        domain::rules::delete_rule(db(ctx)?, account, uuid).await?;
        Ok(id)
    }

    /// Opens a ticket from a ticket step (what the chatbot does when a visitor reaches it) and
    /// queues its e-mail notification in the same transaction. Widget and admin keys.
    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: OpenTicketInput,
    ) -> ApiResult<OpenTicketPayload> {
        let account = principal(ctx)?.account_id;
        let step_id = not_found_id("step", &input.step_id)?;
        let visitor = input
            .visitor
            .map_or_else(DomainVisitor::default, |v| DomainVisitor {
                name: v.name,
                email: v.email,
                phone: v.phone,
            });
        let opened = domain::tickets::open_ticket(
            db(ctx)?,
            account,
            &OpenTicket {
                step_id,
                message: input.message,
                visitor,
            },
        )
        .await?;
        Ok(OpenTicketPayload {
            ticket: Ticket(opened.ticket),
            confirmation_message: opened.confirmation_message,
        })
    }
}
