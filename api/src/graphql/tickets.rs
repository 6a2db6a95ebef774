//! Tickets over GraphQL as admins and operators read them: the admin key's `tickets` and
//! `ticket`, and the types: the ticket, its deliveries and timeline, and the conversation
//! that opened it.

use async_graphql::{Context, Enum, ID, Json, Object, OneofObject, SimpleObject};
use chrono::{DateTime, Utc};
use domain::vocab::Source;
use entity::{conversation, delivery, ticket};

use super::access::Agent;
use super::flows::{ChoiceOption, Flow};
use super::types::{PageInfo, loaders, page_size, shared};
use super::{ApiError, ApiResult, admin, cost, cursor, db, not_found_id, parse_id, principal};

/// The state of a ticket.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::vocab::TicketStatus")]
pub enum TicketStatus {
    /// Still to be handled: opened by a chatbot, or reopened.
    Open,
    /// Handled (`closeTicket`); `reopenTicket` puts it back to `OPEN`.
    Closed,
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
        self.0.status.into()
    }
    /// The agent working on it (`assignTicket`); null: nobody, also once that agent is
    /// deleted.
    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        let Some(id) = self.0.assignee_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .agents
            .load_one(id)
            .await
            .map_err(shared)?
            .map(Agent))
    }
    /// What the person who closed it wrote; null while open and when they wrote nothing.
    async fn closing_note(&self) -> Option<&str> {
        self.0.closing_note.as_deref()
    }
    /// When it was closed; null while open.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
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
    /// When the visitor's data was erased from it (`eraseVisitorData`); null: never. An erased
    /// ticket keeps its number, topic, times and deliveries; its visitor fields, message,
    /// transcript and answers are empty.
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.0.erased_at
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
        self.0
            .transcript
            .as_deref()
            .unwrap_or_default()
            .iter()
            .cloned()
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
    async fn answers(&self) -> Option<Json<domain::vocab::Answers>> {
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
    /// notified through which rule, which deliveries are retrying or failed, and why, and who
    /// assigned, closed or reopened it. A delivery shows its latest attempt. The `first`
    /// (1 to 200) events. Cost: counted as `first`.
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
        let changes = loaders(ctx)?
            .changes
            .load_one(self.0.id)
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(domain::timeline::events(&self.0, &rows, &changes)?
            .into_iter()
            .take(first)
            .map(|e| TicketEvent {
                at: e.at,
                kind: e.kind.into(),
                message: e.message,
                actor: e.actor,
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
    /// Someone cancelled a delivery before it was sent (`cancelDelivery`); the message says
    /// who and why.
    DeliveryCancelled,
    /// The visitor's data was erased from the ticket on request (`eraseVisitorData`).
    Erased,
    /// The SMTP server accepted the visitor's confirmation (`TicketStep.confirmVisitor`).
    VisitorConfirmed,
    /// The step asks for a visitor confirmation, but the visitor's address had its hourly
    /// share of confirmations from the account: none was mailed.
    ConfirmationSkipped,
    /// Someone gave the ticket to an agent (`assignTicket`).
    Assigned,
    /// Someone took the ticket from its agent (`assignTicket` with no agent).
    Unassigned,
    /// Someone closed the ticket (`closeTicket`); the message carries the note.
    Closed,
    /// Someone reopened the ticket (`reopenTicket`).
    Reopened,
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
    /// Who made the change, for `ASSIGNED`, `UNASSIGNED`, `CLOSED` and `REOPENED`: the admin
    /// key by its prefix (`admin key tk_admin_AbCdEf`); null for what the service did.
    pub actor: Option<String>,
    /// The delivery it is about (`NOTIFIED`, `DELIVERY_RETRYING`, `DELIVERY_FAILED`,
    /// `VISITOR_CONFIRMED`); null for the others.
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
    /// Cancelled before it was sent (`cancelDelivery`); `lastError` says by whom and why.
    /// Final.
    Cancelled,
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
    /// The visitor's own confirmation with the ticket number (`TicketStep.confirmVisitor`),
    /// not a notification.
    VisitorConfirmation,
}

/// One reason a recipient gets the ticket.
#[derive(SimpleObject)]
pub struct DeliverySource {
    /// Which kind of reason.
    pub kind: DeliverySourceKind,
    /// The rule, for `RULE` and `WILDCARD_RULE`; null for `FORWARD` and
    /// `VISITOR_CONFIRMATION`.
    pub rule_id: Option<ID>,
    /// The rule's tag (`*` for a wildcard rule); null for `FORWARD` and
    /// `VISITOR_CONFIRMATION`.
    pub tag: Option<String>,
}

impl From<Source> for DeliverySource {
    fn from(source: Source) -> Self {
        match source {
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
            Source::Visitor => DeliverySource {
                kind: DeliverySourceKind::VisitorConfirmation,
                rule_id: None,
                tag: None,
            },
        }
    }
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
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The error of the last failed attempt; null if none failed, and after a success.
    async fn last_error(&self) -> Option<&str> {
        if self.0.status == domain::vocab::DeliveryStatus::Sent {
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
        self.0
            .sources
            .iter()
            .cloned()
            .map(DeliverySource::from)
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

/// Who said a line of a conversation.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::vocab::Sender")]
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

impl From<domain::vocab::Line> for TranscriptEntry {
    fn from(l: domain::vocab::Line) -> Self {
        TranscriptEntry {
            sender: l.sender.into(),
            text: l.text,
            at: l.at,
        }
    }
}

/// What the bot waits for.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::vocab::Awaiting")]
pub enum Awaiting {
    /// A typed answer: call `sendVisitorMessage`.
    Text,
    /// One of `options`: call `chooseOption`.
    Choice,
    /// Nothing: the conversation is over.
    Nothing,
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
        self.0.awaiting.into()
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
    async fn answers(&self) -> Json<domain::vocab::Answers> {
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

/// The admin key's reads of this feature.
#[derive(Default)]
pub struct TicketQuery;

#[Object(name = "TicketQuery")]
impl TicketQuery {
    /// The account's tickets, newest first; `topic` filters by tag (ignoring case), `status`
    /// by state, `assigneeId` by the agent working on them (another account's agent is
    /// `NOT_FOUND`); filters combine. Pass the last `endCursor` as `after` for the next page
    /// (a cursor stays valid while tickets change: pages follow ticket numbers). `first` is
    /// 1 to 200.
    /// Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        topic: Option<String>,
        status: Option<TicketStatus>,
        assignee_id: Option<ID>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<TicketConnection> {
        let account = admin(ctx)?;
        let after = cursor::after("ticket", after.as_deref())?;
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let filter = domain::tickets::TicketFilter {
            topic,
            status: status.map(Into::into),
            assignee: assignee_id
                .map(|id| not_found_id("agent", &id))
                .transpose()?,
        };
        let page = domain::tickets::list_tickets(db(ctx)?, account, &filter, first, after).await?;
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

/// Whose data `eraseVisitorData` erases: one of the two.
#[derive(OneofObject)]
pub enum EraseVisitorInput {
    /// Everything stored under this address in the account (ignoring case): tickets,
    /// conversations, and the conversations that led to those tickets.
    Email(String),
    /// One conversation of the account, and the ticket it opened.
    ConversationId(ID),
}

/// What `eraseVisitorData` changed. All zero (`nothingLeft`): nothing of this visitor was
/// left, because it was erased before or never stored.
#[derive(SimpleObject)]
pub struct VisitorErasure {
    /// Tickets whose visitor fields, message, transcript and answers were erased.
    pub tickets: i64,
    /// Conversations whose contact details and answers were erased.
    pub conversations: i64,
    /// Lines of those conversations, deleted.
    pub conversation_lines: i64,
    /// Stored webhook payloads (sent or still to send) with the visitor's details nulled.
    pub webhook_payloads: i64,
    /// True when nothing changed.
    pub nothing_left: bool,
}

/// A ticket after `closeTicket`, `reopenTicket` or `assignTicket`.
#[derive(SimpleObject)]
pub struct TicketUpdate {
    /// The ticket as it is now.
    pub ticket: Ticket,
    /// False when it was so already (maybe by someone else a moment before): nothing changed
    /// and no timeline line, event or webhook was added.
    pub changed: bool,
}

/// The admin key's writes of tickets.
#[derive(Default)]
pub struct TicketMutation;

async fn change_ticket(
    ctx: &Context<'_>,
    id: &ID,
    change: domain::ticket_work::Change,
) -> ApiResult<TicketUpdate> {
    let caller = principal(ctx)?;
    let account = caller.require_admin()?;
    let id = not_found_id("ticket", id)?;
    let db = db(ctx)?;
    let actor = domain::ticket_work::actor(db, caller.key_id).await?;
    let done = domain::ticket_work::change(db, account, id, &change, &actor).await?;
    Ok(TicketUpdate {
        ticket: Ticket(done.ticket),
        changed: done.changed,
    })
}

#[Object(name = "TicketMutation")]
impl TicketMutation {
    /// Closes an open ticket, with an optional note (at most 2,000 characters; `BAD_USER_INPUT`
    /// on `note` beyond). A timeline line says who closed it, subscribers of `ticketUpdated`
    /// and `ticket.updated` webhooks hear of it. Closing a closed ticket changes nothing
    /// (`changed: false`).
    async fn close_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
    ) -> ApiResult<TicketUpdate> {
        change_ticket(ctx, &id, domain::ticket_work::Change::Close { note }).await
    }

    /// Puts a closed ticket back to `OPEN` (its closing note goes; the timeline keeps it).
    /// Reopening an open ticket changes nothing (`changed: false`).
    async fn reopen_ticket(&self, ctx: &Context<'_>, id: ID) -> ApiResult<TicketUpdate> {
        change_ticket(ctx, &id, domain::ticket_work::Change::Reopen).await
    }

    /// Gives the ticket to an agent of the account (another account's is `NOT_FOUND`), or,
    /// with `agentId` omitted or null, takes it from whoever has it. Giving it to the agent
    /// who has it changes nothing (`changed: false`).
    async fn assign_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        agent_id: Option<ID>,
    ) -> ApiResult<TicketUpdate> {
        let agent = agent_id.map(|a| not_found_id("agent", &a)).transpose()?;
        change_ticket(ctx, &id, domain::ticket_work::Change::Assign { agent }).await
    }

    /// Erases a visitor's data in the account on their request (KVKK, GDPR): name, contact
    /// details, messages, answers and transcripts in tickets, conversations and stored webhook
    /// payloads, in one transaction. Tickets stay as records (number, topic, times, delivery
    /// states), and their timeline says when the data was erased. Mails already sent to
    /// agents cannot be recalled. Erasing again changes nothing and says so (`nothingLeft`).
    /// Cost: one pass over the account's tickets and conversations for an address.
    async fn erase_visitor_data(
        &self,
        ctx: &Context<'_>,
        input: EraseVisitorInput,
    ) -> ApiResult<VisitorErasure> {
        let account = admin(ctx)?;
        let visitor = match input {
            EraseVisitorInput::Email(email) => domain::erasure::Visitor::Email(email),
            EraseVisitorInput::ConversationId(id) => {
                domain::erasure::Visitor::Conversation(not_found_id("conversation", &id)?)
            }
        };
        let erased = domain::erasure::erase(db(ctx)?, account, &visitor).await?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(VisitorErasure {
            tickets: count(erased.tickets),
            conversations: count(erased.conversations),
            conversation_lines: count(erased.conversation_lines),
            webhook_payloads: count(erased.webhook_payloads),
            nothing_left: erased == domain::erasure::Erased::default(),
        })
    }
}
