//! GraphQL object types. They wrap SeaORM models but are separate from them: what the schema
//! promises does not change when a column does.

use async_graphql::{Context, Enum, ID, Interface, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::routing::{self, Source};
use entity::{
    account, agent, conversation, delivery, flow, flow_version, routing_rule, step, ticket,
};

use super::{ApiError, ApiResult, Loaders, cost};

fn loaders<'a>(ctx: &Context<'a>) -> ApiResult<&'a Loaders> {
    Ok(ctx.data::<Loaders>()?)
}

fn shared(e: std::sync::Arc<domain::Error>) -> ApiError {
    ApiError::Domain(e)
}

/// A list's `first`: 1 to 200, else `BAD_USER_INPUT` on `first`.
pub(super) fn page_size(first: Option<i32>) -> ApiResult<usize> {
    let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
    domain::tickets::check_page_size(first)?;
    Ok(usize::try_from(first).unwrap_or(usize::MAX))
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
        Ok(
            match StepKind::parse(&model.kind).map_err(domain::Error::from)? {
                StepKind::Ticket => Step::Ticket(TicketStep(model)),
                StepKind::Question => Step::Question(QuestionStep(model)),
                StepKind::Choice => Step::Choice(ChoiceStep(model)),
                StepKind::End => Step::End(EndStep(model)),
                StepKind::Message => Step::Message(MessageStep(model)),
            },
        )
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
pub struct ChoiceOption(pub domain::flows::ChoiceOption);

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
        domain::flows::options(&self.0)
            .into_iter()
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
        domain::flows::forward_emails(&self.0)
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
    /// The language of this rule's e-mails; null: the account's `defaultLocale`.
    async fn locale(&self) -> Option<Locale> {
        self.0
            .locale
            .as_deref()
            .map(|code| Locale::from(domain::vocab::Locale::from_code(Some(code))))
    }
}

/// A language notification e-mails are written in.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::vocab::Locale")]
pub enum Locale {
    /// English.
    En,
    /// Turkish.
    Tr,
}

/// Settings of the caller's account.
pub struct AccountSettings(pub account::Model);

#[Object]
impl AccountSettings {
    /// The account's id.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The account's name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The language of notification e-mails, unless a rule sets its own.
    async fn default_locale(&self) -> Locale {
        domain::vocab::Locale::from_code(Some(&self.0.locale)).into()
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
    /// The conversation that opened it; null for tickets opened with `openTicket`.
    async fn conversation(&self, ctx: &Context<'_>) -> ApiResult<Option<Conversation>> {
        let Some(id) = self.0.conversation_id else {
            return Ok(None);
        };
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        Ok(domain::conversations::find(db, self.0.account_id, id)
            .await?
            .map(Conversation))
    }
    /// The conversation's latest lines up to the ticket step: at most 100 lines holding at
    /// most 30,000 characters (`transcriptOmitted` counts the earlier ones left out; the
    /// conversation keeps them). Empty for tickets opened with `openTicket`.
    /// Cost: counted as 100 lines.
    #[graphql(complexity = "cost::list(cost::TICKET_TRANSCRIPT_LINES, child_complexity)")]
    async fn transcript(&self) -> Vec<TranscriptEntry> {
        domain::conversations::ticket_transcript(&self.0)
            .into_iter()
            .map(TranscriptEntry::from)
            .collect()
    }
    /// How many earlier lines of the conversation `transcript` leaves out to stay bounded;
    /// 0 when it is whole (and for tickets opened with `openTicket`).
    async fn transcript_omitted(&self) -> i32 {
        self.0.transcript_omitted
    }
    /// The answers the conversation collected, by field (`{"email": "...", "order_no": "..."}`);
    /// null for tickets opened with `openTicket`.
    async fn answers(&self) -> Option<Json<serde_json::Value>> {
        self.0.answers.clone().map(Json)
    }
    /// One e-mail per recipient, the `first` (1 to 200) in the order they were created. Empty
    /// until the worker has routed the ticket (usually well under a second), and for a ticket
    /// that no rule or forward address matches; `deliveries(topic:)` of the operations API
    /// pages through all of them. Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 200)] first: Option<i32>,
    ) -> ApiResult<Vec<Delivery>> {
        let first = page_size(first)?;
        let rows = loaders(ctx)?
            .deliveries
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .take(first)
            .map(Delivery)
            .collect())
    }
    /// The ticket's history, oldest first: opened by which flow, routed to whom, who was
    /// notified through which rule, and which deliveries are retrying or failed, and why. A
    /// delivery shows its latest attempt. The `first` (1 to 200) events. Cost: counted as
    /// `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 200)] first: Option<i32>,
    ) -> ApiResult<Vec<TicketEvent>> {
        let first = page_size(first)?;
        let rows = loaders(ctx)?
            .deliveries
            .load_one(self.0.id)
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(domain::timeline::events(&self.0, &rows)?
            .into_iter()
            .take(first)
            .map(|e| TicketEvent {
                at: e.at,
                kind: e.kind.into(),
                message: e.message,
                delivery: e
                    .delivery_id
                    .and_then(|id| rows.iter().find(|d| d.id == id))
                    .cloned()
                    .map(Delivery),
            })
            .collect())
    }
}

/// What a ticket's timeline event is about.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::timeline::EventKind")]
pub enum TicketEventKind {
    /// A chatbot opened the ticket.
    Opened,
    /// The worker resolved the recipients.
    Routed,
    /// No routing rule and no forward address matched: nobody is notified.
    Unrouted,
    /// The SMTP server accepted the mail to a recipient.
    Notified,
    /// A delivery's last attempt failed transiently; another one is scheduled.
    DeliveryRetrying,
    /// A delivery failed for good.
    DeliveryFailed,
}

/// One line of a ticket's timeline.
#[derive(SimpleObject)]
pub struct TicketEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What it is about.
    pub kind: TicketEventKind,
    /// One English sentence, e.g. "Notified a@example.com via rule offline_message (1 attempt)".
    pub message: String,
    /// The delivery it is about; null for `OPENED`, `ROUTED` and `UNROUTED`.
    pub delivery: Option<Delivery>,
}

/// The state of one e-mail.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::vocab::DeliveryStatus")]
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
    /// A stored status; one the code does not know is an error, never a default.
    fn from_db(s: &str) -> ApiResult<Self> {
        Ok(domain::vocab::DeliveryStatus::parse(s)
            .map_err(domain::Error::from)?
            .into())
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

impl Delivery {
    async fn ticket(&self, ctx: &Context<'_>) -> ApiResult<ticket::Model> {
        loaders(ctx)?
            .tickets
            .load_one(self.0.ticket_id)
            .await
            .map_err(shared)?
            .ok_or(ApiError::from(domain::Error::NotFound("ticket")))
    }
}

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
    async fn status(&self) -> ApiResult<DeliveryStatus> {
        DeliveryStatus::from_db(&self.0.status)
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The error of the last failed attempt; null if none failed, and after a success.
    async fn last_error(&self) -> Option<&str> {
        if self.0.status == domain::vocab::DeliveryStatus::Sent.as_str() {
            return None;
        }
        self.0.last_error.as_deref()
    }
    /// When the SMTP server accepted it; null until then.
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    /// When it was created (when the ticket was routed).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its state last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The ticket it notifies about; an admin key reads it with `ticket(id)`. Deliveries are
    /// what operators see, so they lead to no visitor's message, contact data or transcript.
    async fn ticket_id(&self) -> ID {
        self.0.ticket_id.into()
    }
    /// The ticket's per-account number.
    async fn ticket_number(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        Ok(self.ticket(ctx).await?.number)
    }
    /// The ticket's topic tag.
    async fn topic(&self, ctx: &Context<'_>) -> ApiResult<String> {
        Ok(self.ticket(ctx).await?.topic)
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

/// Who said a line of a conversation.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Sender {
    /// The chatbot.
    Bot,
    /// The visitor.
    Visitor,
}

/// One line of a conversation.
#[derive(SimpleObject)]
pub struct TranscriptEntry {
    /// Who said it.
    pub sender: Sender,
    /// What was said (for a button press: its label).
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<domain::conversations::Line> for TranscriptEntry {
    fn from(l: domain::conversations::Line) -> Self {
        TranscriptEntry {
            sender: if l.sender == domain::conversations::BOT {
                Sender::Bot
            } else {
                Sender::Visitor
            },
            text: l.text,
            at: l.at,
        }
    }
}

/// What the bot waits for.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Awaiting {
    /// A typed answer: call `sendVisitorMessage`.
    Text,
    /// One of `options`: call `chooseOption`.
    Choice,
    /// Nothing: the conversation is over.
    Nothing,
}

impl From<domain::conversations::Awaiting> for Awaiting {
    fn from(a: domain::conversations::Awaiting) -> Self {
        match a {
            domain::conversations::Awaiting::Text => Awaiting::Text,
            domain::conversations::Awaiting::Choice => Awaiting::Choice,
            domain::conversations::Awaiting::Nothing => Awaiting::Nothing,
        }
    }
}

/// The state of a conversation.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ConversationStatus {
    /// Waiting for the visitor.
    Active,
    /// Reached an end step or the end of the flow.
    Completed,
    /// Idle too long; the visitor must start a new conversation.
    Expired,
}

/// A visitor's conversation with a chatbot, on the flow version that was live when it began
/// (admin keys, through the ticket it opened).
pub struct Conversation(pub conversation::Model);

#[Object]
impl Conversation {
    /// Stable id of the conversation.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Current state (an idle conversation shows `EXPIRED` once its time has passed).
    async fn status(&self, ctx: &Context<'_>) -> ApiResult<ConversationStatus> {
        super::visitor::conversation_status(ctx, &self.0)
    }
    /// What the bot waits for now.
    async fn awaiting(&self) -> Awaiting {
        domain::conversations::Awaiting::parse(&self.0.awaiting).into()
    }
    /// The buttons offered now; empty unless `awaiting` is `CHOICE`.
    /// Cost: counted as 20.
    #[graphql(complexity = "cost::list(cost::CHOICE_OPTIONS, child_complexity)")]
    async fn options(&self, ctx: &Context<'_>) -> ApiResult<Vec<ChoiceOption>> {
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        Ok(domain::conversations::current_options(db, &self.0)
            .await?
            .into_iter()
            .map(ChoiceOption)
            .collect())
    }
    /// Everything said so far, in order.
    /// Cost: counted as the most lines a conversation holds.
    #[graphql(complexity = "cost::list(cost::TRANSCRIPT_LINES, child_complexity)")]
    async fn transcript(&self, ctx: &Context<'_>) -> ApiResult<Vec<TranscriptEntry>> {
        super::visitor::transcript_of(ctx, &self.0).await
    }
    /// The answers collected so far, by the questions' fields.
    async fn answers(&self) -> Json<serde_json::Value> {
        Json(self.0.answers.clone())
    }
    /// The ticket the conversation opened; null until it reaches a ticket step.
    async fn ticket(&self, ctx: &Context<'_>) -> ApiResult<Option<Ticket>> {
        let Some(id) = self.0.ticket_id else {
            return Ok(None);
        };
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        Ok(domain::tickets::find_ticket(db, self.0.account_id, id)
            .await?
            .map(Ticket))
    }
    /// The flow version it runs on.
    async fn flow_version_id(&self) -> ID {
        self.0.flow_version_id.into()
    }
    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the visitor last did something.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }
}

/// What a key may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ApiKeyKind {
    /// Everything in the account. Keep it on servers.
    Admin,
    /// Only the visitor operations; meant for public web pages.
    Widget,
}

impl From<ApiKeyKind> for domain::keys::KeyKind {
    fn from(k: ApiKeyKind) -> Self {
        match k {
            ApiKeyKind::Admin => domain::keys::KeyKind::Admin,
            ApiKeyKind::Widget => domain::keys::KeyKind::Widget,
        }
    }
}

/// An API key of the account. The secret itself is shown once, by `createApiKey`, and never
/// stored.
pub struct ApiKey(pub entity::api_key::Model);

#[Object]
impl ApiKey {
    /// Stable id of the key (not the key).
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// What it may do.
    async fn kind(&self) -> ApiKeyKind {
        match domain::keys::KeyKind::parse(&self.0.kind) {
            Some(domain::keys::KeyKind::Widget) => ApiKeyKind::Widget,
            _ => ApiKeyKind::Admin,
        }
    }
    /// The key's first characters (`tk_widget_AbCdEf`), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last used (to the minute); null if never.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    /// When it was revoked; null while it works.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// The web origins (`https://shop.example`) whose pages may use this key; a browser
    /// request from any other origin is refused (`ORIGIN_NOT_ALLOWED`). Calls without an
    /// `Origin` header (servers, scripts) are not affected.
    async fn allowed_origins(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        let origins = loaders(ctx)?
            .origins
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(origins.unwrap_or_default())
    }
}

/// A new key and its secret, shown this one time.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key's details.
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`. Store it now: it cannot be shown
    /// again.
    pub secret: String,
}
