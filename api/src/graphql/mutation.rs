//! Write operations of the admin key, and the inputs of the visitor operations (which live in
//! `visitor`). Each one validates all input before writing anything.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, OneofObject};
use domain::flows::{OptionInput, StepInput as DomainStep};
use domain::keys::KeyCache;
use domain::rules::RuleInput;

use super::access::{AccountSettings, Agent, ApiKey, ApiKeyKind, CreatedApiKey, Locale};
use super::flows::{Flow, FlowProblem, FlowVersion, Step};
use super::routing::{RoutingRule, TestEmail};
use super::{ApiResult, admin, cost, db, not_found_id, parse_id};

/// Write operations.
#[derive(Default)]
pub struct Mutation;

/// A new flow.
#[derive(InputObject)]
pub struct CreateFlowInput {
    /// 1-200 characters, one line.
    pub name: String,
}

/// A step's content: exactly one of the kinds. `next` links name the step the conversation
/// goes to afterwards (a step of the same flow); without one it goes to the following
/// position. Links are checked by `validateFlow`, not here, so steps can be linked in any
/// order.
#[derive(OneofObject)]
pub enum StepInput {
    /// The bot says a text.
    Message(MessageStepInput),
    /// The bot asks and waits for a typed answer.
    Question(QuestionStepInput),
    /// The bot offers buttons and waits for one.
    Choice(ChoiceStepInput),
    /// The bot opens a ticket.
    Ticket(TicketStepInput),
    /// The conversation ends.
    End(EndStepInput),
}

/// A message step.
#[derive(InputObject)]
pub struct MessageStepInput {
    /// What the bot says: 1-2000 characters.
    pub text: String,
    /// The step after this one; default: the following position.
    pub next: Option<ID>,
}

/// A question step.
#[derive(InputObject)]
pub struct QuestionStepInput {
    /// What the bot asks: 1-2000 characters.
    pub text: String,
    /// The key the answer is stored under: `name`, `email` and `phone` answers are validated
    /// (and asked again when invalid) and fill in the visitor's contact; any other key
    /// (1-64 letters, digits, `_`) stores free text.
    pub field: String,
    /// The step after the answer; default: the following position.
    pub next: Option<ID>,
}

/// A choice step.
#[derive(InputObject)]
pub struct ChoiceStepInput {
    /// What the bot says above the buttons: 1-2000 characters.
    pub text: String,
    /// 1-20 buttons, in order.
    pub options: Vec<ChoiceOptionInput>,
}

/// A button of a choice step.
#[derive(InputObject)]
pub struct ChoiceOptionInput {
    /// The button's text: 1-200 characters, one line.
    pub label: String,
    /// The step the button leads to; may be set later with `updateStep` (until then
    /// `validateFlow` reports `UNLINKED_OPTION`).
    pub next: Option<ID>,
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
    /// The step after the ticket is opened; default: the following position (none: the
    /// conversation completes).
    pub next: Option<ID>,
}

/// An end step.
#[derive(InputObject)]
pub struct EndStepInput {
    /// A last text, e.g. "Görüşmek üzere"; optional.
    pub text: Option<String>,
}

fn link(field: &str, id: Option<ID>) -> Result<Option<uuid::Uuid>, domain::Error> {
    id.map(|id| parse_id(&id).ok_or_else(|| domain::Error::invalid(field, "is not a step id")))
        .transpose()
}

impl StepInput {
    fn into_domain(self) -> Result<DomainStep, domain::Error> {
        Ok(match self {
            StepInput::Message(m) => DomainStep::Message {
                text: m.text,
                next: link("step.message.next", m.next)?,
            },
            StepInput::Question(q) => DomainStep::Question {
                text: q.text,
                field: q.field,
                next: link("step.question.next", q.next)?,
            },
            StepInput::Choice(c) => DomainStep::Choice {
                text: c.text,
                options: c
                    .options
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| {
                        Ok(OptionInput {
                            label: o.label,
                            next: link(&format!("step.choice.options[{i}].next"), o.next)?,
                        })
                    })
                    .collect::<Result<_, domain::Error>>()?,
            },
            StepInput::Ticket(t) => DomainStep::Ticket {
                topic: t.topic,
                confirmation_message: t.confirmation_message,
                forward_emails: t.forward_emails,
                next: link("step.ticket.next", t.next)?,
            },
            StepInput::End(e) => DomainStep::End { text: e.text },
        })
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
    /// The language of this rule's e-mails; omitted or null: the account's `defaultLocale`.
    pub locale: Option<Locale>,
}

impl From<RoutingRuleInput> for RuleInput {
    fn from(input: RoutingRuleInput) -> Self {
        RuleInput {
            tag: input.tag,
            emails: input.emails,
            locale: input.locale.map(Into::into),
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

/// Starts a conversation.
#[derive(InputObject)]
pub struct StartConversationInput {
    /// The flow to talk to; it must have been published.
    pub flow_id: ID,
    /// Whatever the widget knows about the visitor already.
    pub visitor: Option<VisitorInput>,
}

/// A message the visitor typed.
#[derive(InputObject)]
pub struct VisitorMessageInput {
    /// The conversation.
    pub conversation_id: ID,
    /// What the visitor typed: 1-10000 characters.
    pub text: String,
    /// The widget's own id for this message (at most 200 characters). A request retried with
    /// the same id gets the first answer back and changes nothing.
    pub client_message_id: Option<String>,
}

/// A button the visitor pressed.
#[derive(InputObject)]
pub struct ChooseOptionInput {
    /// The conversation.
    pub conversation_id: ID,
    /// One of the `options` of the last turn.
    pub option_id: ID,
    /// As for `sendVisitorMessage`.
    pub client_message_id: Option<String>,
}

#[Object(name = "CoreMutation")]
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
        let step =
            domain::flows::add_step(db(ctx)?, account, flow_id, &step.into_domain()?).await?;
        step.try_into()
    }

    /// Replaces a step's content (its kind may change); its position stays.
    async fn update_step(&self, ctx: &Context<'_>, id: ID, step: StepInput) -> ApiResult<Step> {
        let account = admin(ctx)?;
        let id = not_found_id("step", &id)?;
        let step = domain::flows::update_step(db(ctx)?, account, id, &step.into_domain()?).await?;
        step.try_into()
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

    /// Sets the language of the account's notification e-mails (rules with a `locale` of their
    /// own keep it). Tickets routed from now on use it.
    async fn set_default_locale(
        &self,
        ctx: &Context<'_>,
        locale: Locale,
    ) -> ApiResult<AccountSettings> {
        let account = admin(ctx)?;
        Ok(AccountSettings(
            domain::accounts::set_locale(db(ctx)?, account, locale.into()).await?,
        ))
    }

    /// Deletes a routing rule. Returns the id.
    async fn delete_routing_rule(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("routing rule", &id)?;
        domain::rules::delete_rule(db(ctx)?, account, uuid).await?;
        Ok(id)
    }

    /// Creates an API key; its secret is in the answer and nowhere else, ever.
    /// `allowedOrigins` are the sites whose pages may use it (see `ApiKey.allowedOrigins`);
    /// a widget key needs its site's origin here to work in visitors' browsers.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        kind: ApiKeyKind,
        #[graphql(default)] allowed_origins: Vec<String>,
    ) -> ApiResult<CreatedApiKey> {
        let account = admin(ctx)?;
        let (key, secret) =
            domain::keys::create_key(db(ctx)?, account, kind.into(), &allowed_origins).await?;
        Ok(CreatedApiKey {
            key: ApiKey(key),
            secret,
        })
    }

    /// Revokes an API key: from the next request on it is refused (`UNAUTHENTICATED`).
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let account = admin(ctx)?;
        let id = not_found_id("api key", &id)?;
        Ok(ApiKey(
            domain::keys::revoke_key(db(ctx)?, ctx.data::<Arc<KeyCache>>()?, account, id).await?,
        ))
    }

    /// Replaces the web origins whose pages may use the key (`https://shop.example`, at most
    /// 20; lower-cased, without path or default port). An empty list means no browser page.
    async fn set_api_key_origins(
        &self,
        ctx: &Context<'_>,
        id: ID,
        origins: Vec<String>,
    ) -> ApiResult<ApiKey> {
        let account = admin(ctx)?;
        let id = not_found_id("api key", &id)?;
        Ok(ApiKey(
            domain::keys::set_origins(db(ctx)?, account, id, &origins).await?,
        ))
    }

    /// Every problem that stops the flow's draft from being published; empty when it can be.
    /// Cost: counted as 4,200 (a problem per step and button).
    #[graphql(complexity = "cost::list(cost::FLOW_PROBLEMS, child_complexity)")]
    async fn validate_flow(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Vec<FlowProblem>> {
        let account = admin(ctx)?;
        let id = not_found_id("flow", &id)?;
        let problems = domain::design::validate_flow(db(ctx)?, account, id).await?;
        Ok(problems.into_iter().map(FlowProblem::from).collect())
    }

    /// Publishes the flow's draft as its next immutable version; refused (`BAD_USER_INPUT`,
    /// field `id`) while `validateFlow` reports problems. New conversations start on it;
    /// conversations in progress keep the version they started on.
    async fn publish_flow(&self, ctx: &Context<'_>, id: ID) -> ApiResult<FlowVersion> {
        let account = admin(ctx)?;
        let id = not_found_id("flow", &id)?;
        Ok(FlowVersion(
            domain::design::publish_flow(db(ctx)?, account, id).await?,
        ))
    }
}
