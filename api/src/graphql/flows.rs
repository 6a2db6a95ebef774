//! Chatbot design over GraphQL: flows, their steps and published versions, the problems
//! `validateFlow` reports, and topic tags (admin key).

use async_graphql::{Context, ID, Interface, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{flow, flow_version, step};

use super::types::{loaders, page_size, shared};
use super::{ApiError, ApiResult, cost};

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
