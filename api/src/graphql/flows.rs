//! Chatbot design over GraphQL (admin key): its reads and writes (`flows`, `topicTags`,
//! `createFlow`, `addStep`, `publishFlow`, ...), their inputs, and the types they answer:
//! flows, steps, published versions, the problems `validateFlow` reports, topic tags.

use async_graphql::{Context, ID, InputObject, Interface, Object, OneofObject, SimpleObject};
use chrono::{DateTime, Utc};
use domain::flows::{OptionInput, StepInput as DomainStep};
use entity::{flow, flow_version, step};

use super::types::{loaders, page_size, shared};
use super::{ApiError, ApiResult, admin, cost, db, not_found_id, parse_id};

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
    /// Cost: counted as 200 (the most steps a flow has).
    #[graphql(complexity = "cost::list(cost::STEPS, child_complexity)")]
    async fn steps(&self, ctx: &Context<'_>) -> ApiResult<Vec<Step>> {
        let steps = loaders(ctx)?
            .steps
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        steps
            .unwrap_or_default()
            .into_iter()
            .map(Step::try_from)
            .collect()
    }
    /// When the flow was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Published versions, newest first: the `first` newest (1 to 200). Empty until the flow
    /// is published. Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
    ) -> ApiResult<Vec<FlowVersion>> {
        let first = page_size(first)?;
        let versions = loaders(ctx)?
            .versions
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(versions
            .unwrap_or_default()
            .into_iter()
            .take(first)
            .map(FlowVersion)
            .collect())
    }
    /// The version new conversations start on (the latest published); null until published.
    async fn live_version(&self, ctx: &Context<'_>) -> ApiResult<Option<FlowVersion>> {
        let versions = loaders(ctx)?
            .versions
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(versions
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(FlowVersion))
    }
}

/// An immutable snapshot of a flow, published with `publishFlow`.
pub struct FlowVersion(pub flow_version::Model);

#[Object]
impl FlowVersion {
    /// Stable id of the version.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// 1, 2, ... per flow.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// When it was published.
    async fn published_at(&self) -> DateTime<Utc> {
        self.0.published_at
    }
}

/// Something that stops a flow from being published.
#[derive(SimpleObject)]
pub struct FlowProblem {
    /// `EMPTY_FLOW`, `DANGLING_LINK`, `CROSS_FLOW_LINK`, `UNLINKED_OPTION`,
    /// `UNREACHABLE_STEP`, `LOOP_WITHOUT_WAIT` or `NO_TICKET_OR_END`.
    pub code: String,
    /// The step concerned; null for problems of the whole flow (`EMPTY_FLOW`).
    pub step_id: Option<ID>,
    /// What is wrong, for people.
    pub message: String,
}

impl From<domain::design::Problem> for FlowProblem {
    fn from(p: domain::design::Problem) -> Self {
        FlowProblem {
            code: p.code.to_owned(),
            step_id: p.step_id.map(Into::into),
            message: p.message,
        }
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
    Message(MessageStep),
    Question(QuestionStep),
    Choice(ChoiceStep),
    Ticket(TicketStep),
    End(EndStep),
}

impl TryFrom<step::Model> for Step {
    type Error = ApiError;

    /// A stored kind the code does not know is an error, never a message step.
    fn try_from(model: step::Model) -> ApiResult<Self> {
        use domain::vocab::StepKind;
        Ok(match model.kind {
            StepKind::Ticket => Step::Ticket(TicketStep(model)),
            StepKind::Question => Step::Question(QuestionStep(model)),
            StepKind::Choice => Step::Choice(ChoiceStep(model)),
            StepKind::End => Step::End(EndStep(model)),
            StepKind::Message => Step::Message(MessageStep(model)),
        })
    }
}

fn next_id(step: &step::Model) -> Option<ID> {
    step.next_step_id.map(Into::into)
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
    /// The step after this one; null means the following position.
    async fn next(&self) -> Option<ID> {
        next_id(&self.0)
    }
}

/// The bot asks and waits for a typed answer.
pub struct QuestionStep(pub step::Model);

#[Object]
impl QuestionStep {
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
    /// What the bot asks.
    async fn text(&self) -> &str {
        self.0.text.as_deref().unwrap_or_default()
    }
    /// The key the answer is stored under (`name`, `email` and `phone` are validated).
    async fn field(&self) -> &str {
        self.0.field.as_deref().unwrap_or_default()
    }
    /// The step after the answer; null means the following position.
    async fn next(&self) -> Option<ID> {
        next_id(&self.0)
    }
}

/// A button of a choice step.
pub struct ChoiceOption(pub domain::vocab::ChoiceOption);

#[Object]
impl ChoiceOption {
    /// Pass to `chooseOption`. Changes when the step is updated.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The button's text.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// The step it leads to; null until linked (design only; visitors do not see it).
    async fn next(&self) -> Option<ID> {
        self.0.next.map(Into::into)
    }
}

/// The bot offers buttons and waits for one.
pub struct ChoiceStep(pub step::Model);

#[Object]
impl ChoiceStep {
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
    /// What the bot says above the buttons.
    async fn text(&self) -> &str {
        self.0.text.as_deref().unwrap_or_default()
    }
    /// The buttons, in order.
    /// Cost: counted as 20 (the most buttons a step has).
    #[graphql(complexity = "cost::list(cost::CHOICE_OPTIONS, child_complexity)")]
    async fn options(&self) -> Vec<ChoiceOption> {
        self.0
            .options
            .iter()
            .flat_map(|o| o.iter().cloned())
            .map(ChoiceOption)
            .collect()
    }
}

/// The conversation ends here.
pub struct EndStep(pub step::Model);

#[Object]
impl EndStep {
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
    /// A last text; null when the bot says nothing more.
    async fn text(&self) -> Option<&str> {
        self.0.text.as_deref()
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
        self.0.forward_emails.0.clone()
    }
    /// The step after the ticket is opened; null means the following position.
    async fn next(&self) -> Option<ID> {
        next_id(&self.0)
    }
    /// Whether the visitor gets a confirmation e-mail with the ticket number when they gave
    /// an address (at most 3 per address per hour from the account).
    async fn confirm_visitor(&self) -> bool {
        self.0.confirm_visitor
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
    /// The ticket steps, in any flow of the account, that use this tag (ignoring case): the
    /// `first` oldest (1 to 200). Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn steps(
        &self,
        #[graphql(default = 50)] first: Option<i32>,
    ) -> ApiResult<Vec<TicketStep>> {
        let first = page_size(first)?;
        Ok(self
            .0
            .steps
            .iter()
            .take(first)
            .cloned()
            .map(TicketStep)
            .collect())
    }
}

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
    /// Mail the visitor a confirmation with the ticket number (a fixed text in the account's
    /// language, through the deliveries, retried and in the timeline) when they gave an
    /// e-mail address. Off by default. At most 3 per visitor address per hour from the
    /// account: more tickets from one address get none (the timeline says so).
    #[graphql(default)]
    pub confirm_visitor: bool,
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
                confirm_visitor: t.confirm_visitor,
            },
            StepInput::End(e) => DomainStep::End { text: e.text },
        })
    }
}

/// The admin key's reads of this feature.
#[derive(Default)]
pub struct FlowQuery;

#[Object(name = "FlowQuery")]
impl FlowQuery {
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
        let first = page_size(first)?;
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
}

/// The admin key's writes of this feature; each validates all input before writing.
#[derive(Default)]
pub struct FlowMutation;

#[Object(name = "FlowMutation")]
impl FlowMutation {
    /// Creates an empty flow.
    async fn create_flow(&self, ctx: &Context<'_>, input: CreateFlowInput) -> ApiResult<Flow> {
        let account = admin(ctx)?;
        Ok(Flow(
            domain::flows::create_flow(db(ctx)?, account, &input.name).await?,
        ))
    }

    /// Renames a flow (`name`: 1-200 characters, one line). Tickets keep the flow name they
    /// were opened with.
    async fn rename_flow(&self, ctx: &Context<'_>, id: ID, name: String) -> ApiResult<Flow> {
        let account = admin(ctx)?;
        let id = not_found_id("flow", &id)?;
        Ok(Flow(
            domain::flows::rename_flow(db(ctx)?, account, id, &name).await?,
        ))
    }

    /// Copies a flow as a new, unpublished flow named `name`, with a copy of every step:
    /// links between its steps point at the copies, links to other flows' steps stay. Counts
    /// against the account's flows.
    async fn copy_flow(&self, ctx: &Context<'_>, id: ID, name: String) -> ApiResult<Flow> {
        let account = admin(ctx)?;
        let id = not_found_id("flow", &id)?;
        Ok(Flow(
            domain::flows::copy_flow(db(ctx)?, account, id, &name).await?,
        ))
    }

    /// Deletes a flow and its steps: it is listed nowhere, no conversation starts on it, and
    /// its topics leave `topicTags`, `tagKnown` and `routingPreview` unless another step uses
    /// them. Conversations already running on its published versions finish on them and open
    /// their tickets (their topics count in `topicTags` and `tagKnown` until they end); the
    /// versions go once no conversation is left on them. Tickets stay with their copies
    /// (`flowName`, topic); their `flow` becomes null. Returns the id.
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

    /// Moves a step to `position` (0-based, below the flow's step count); the steps in
    /// between shift by one. `next` links keep pointing at the same steps; a step without one
    /// goes on to whichever step follows it after the move.
    async fn move_step(&self, ctx: &Context<'_>, id: ID, position: i32) -> ApiResult<Step> {
        let account = admin(ctx)?;
        let id = not_found_id("step", &id)?;
        domain::flows::move_step(db(ctx)?, account, id, position)
            .await?
            .try_into()
    }

    /// Removes a step; the steps after it move up. Returns the id.
    async fn delete_step(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("step", &id)?;
        domain::flows::delete_step(db(ctx)?, account, uuid).await?;
        Ok(id)
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
