//! The visitor's surface: the operations a chat widget calls (`startConversation`,
//! `sendVisitorMessage`, `chooseOption`, `conversation`, `openTicket`) and the only types
//! they return.
//!
//! The widget key is public (it sits in web pages), so whatever these types reach, anyone can
//! read. They are built for that by construction: none has a field that leads to a flow, a
//! step, a draft, a topic tag, a routing rule, a delivery, a timeline, an agent or a key.
//! Admin keys call the same operations and get the same answers; everything else an admin sees
//! goes through the admin types (`ticket(id)`, `Ticket.conversation`). A test walks every
//! field reachable from here by introspection (`tests/it/visitor_surface.rs`).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::tickets::{OpenTicket, VisitorInput as DomainVisitor};
use entity::{conversation, ticket};

use super::tickets::{Awaiting, ConversationStatus, TranscriptEntry};
use super::{ApiError, ApiResult, Loaders, cost, db, not_found_id, parse_id, principal, settings};

/// What the visitor sees of their ticket: its number to refer to, nothing of its routing.
pub struct VisitorTicket(pub ticket::Model);

#[Object]
impl VisitorTicket {
    /// Stable id of the ticket (an admin key reads the whole ticket with `ticket(id)`).
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Per-account number (#1, #2, ...), for the visitor to refer to.
    async fn number(&self) -> i64 {
        self.0.number
    }
    /// When the ticket was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A button the chat widget shows.
pub struct ChatOption(pub domain::vocab::ChoiceOption);

#[Object]
impl ChatOption {
    /// Pass to `chooseOption`.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The button's text.
    async fn label(&self) -> &str {
        &self.0.label
    }
}

fn chat_options(options: impl IntoIterator<Item = domain::vocab::ChoiceOption>) -> Vec<ChatOption> {
    options.into_iter().map(ChatOption).collect()
}

/// The state of a conversation, also when it has expired by time without being touched.
pub(super) fn conversation_status(
    ctx: &Context<'_>,
    c: &conversation::Model,
) -> ApiResult<ConversationStatus> {
    use domain::vocab::ConversationStatus as Stored;
    let idle = settings(ctx)?.conversation_idle;
    let stored = c.status;
    let expired_by_time = stored == Stored::Active
        && chrono::Duration::from_std(idle)
            .is_ok_and(|idle| c.last_activity_at + idle < domain::now());
    Ok(match stored {
        _ if expired_by_time => ConversationStatus::Expired,
        Stored::Active => ConversationStatus::Active,
        Stored::Completed => ConversationStatus::Completed,
        Stored::Expired => ConversationStatus::Expired,
    })
}

/// The transcript of a conversation, through the request's batch loader.
pub(super) async fn transcript_of(
    ctx: &Context<'_>,
    c: &conversation::Model,
) -> ApiResult<Vec<TranscriptEntry>> {
    let lines = ctx
        .data::<Loaders>()?
        .transcripts
        .load_one(c.id)
        .await
        .map_err(ApiError::Domain)?;
    Ok(lines
        .unwrap_or_default()
        .into_iter()
        .map(TranscriptEntry::from)
        .collect())
}

/// A visitor's conversation with a chatbot, as the chat widget shows it (also after a page
/// reload).
pub struct VisitorConversation(pub conversation::Model);

#[Object]
impl VisitorConversation {
    /// Stable id of the conversation.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Current state (an idle conversation shows `EXPIRED` once its time has passed).
    async fn status(&self, ctx: &Context<'_>) -> ApiResult<ConversationStatus> {
        conversation_status(ctx, &self.0)
    }
    /// What the bot waits for now.
    async fn awaiting(&self) -> Awaiting {
        self.0.awaiting.into()
    }
    /// The buttons offered now; empty unless `awaiting` is `CHOICE`. Cost: counted as
    /// 20 (the most options a choice step has).
    #[graphql(complexity = "cost::list(cost::CHOICE_OPTIONS, child_complexity)")]
    async fn options(&self, ctx: &Context<'_>) -> ApiResult<Vec<ChatOption>> {
        Ok(chat_options(
            domain::conversations::current_options(db(ctx)?, &self.0).await?,
        ))
    }
    /// Everything the bot and the visitor said, in order. Cost: counted as the most lines a
    /// conversation can hold.
    #[graphql(complexity = "cost::list(cost::TRANSCRIPT_LINES, child_complexity)")]
    async fn transcript(&self, ctx: &Context<'_>) -> ApiResult<Vec<TranscriptEntry>> {
        transcript_of(ctx, &self.0).await
    }
    /// The ticket the conversation opened; null until it reaches a ticket step.
    async fn ticket(&self, ctx: &Context<'_>) -> ApiResult<Option<VisitorTicket>> {
        let Some(id) = self.0.ticket_id else {
            return Ok(None);
        };
        Ok(
            domain::tickets::find_ticket(db(ctx)?, self.0.account_id, id)
                .await?
                .map(VisitorTicket),
        )
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

/// The bot's reply to one visitor action.
pub struct ConversationTurn(pub domain::conversations::Turn);

#[Object]
impl ConversationTurn {
    /// The conversation after this turn.
    async fn conversation(&self) -> VisitorConversation {
        VisitorConversation(self.0.conversation.clone())
    }
    /// What the bot says now, in order (for an invalid answer: why, and the question again).
    async fn bot_messages(&self) -> &[String] {
        &self.0.bot_messages
    }
    /// What the bot waits for next.
    async fn awaiting(&self) -> Awaiting {
        self.0.awaiting.into()
    }
    /// The buttons to show; empty unless `awaiting` is `CHOICE`. Cost: counted as 20.
    #[graphql(complexity = "cost::list(cost::CHOICE_OPTIONS, child_complexity)")]
    async fn options(&self) -> Vec<ChatOption> {
        chat_options(self.0.options.iter().cloned())
    }
    /// The ticket this turn opened; null on every other turn.
    async fn ticket(&self) -> Option<VisitorTicket> {
        self.0.ticket.clone().map(VisitorTicket)
    }
}

/// A new ticket and what the bot says back.
#[derive(SimpleObject)]
pub struct OpenTicketPayload {
    /// The ticket just opened; its notification is already queued.
    pub ticket: VisitorTicket,
    /// The step's confirmation message, for the chat widget to show ("Talep alındı").
    pub confirmation_message: String,
}

fn visitor_input(v: Option<VisitorInput>) -> DomainVisitor {
    v.map_or_else(DomainVisitor::default, |v| DomainVisitor {
        name: v.name,
        email: v.email,
        phone: v.phone,
    })
}

/// The visitor's read operation.
#[derive(Default)]
pub struct VisitorQuery;

#[Object]
impl VisitorQuery {
    /// One conversation, as the chat widget shows it (widget or admin key); null when no
    /// conversation of the account has this id. An admin reads a ticket's whole conversation
    /// with `ticket(id) { conversation { ... } }`.
    async fn conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<VisitorConversation>> {
        let account = principal(ctx)?.account_id;
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        Ok(domain::conversations::find(db(ctx)?, account, id)
            .await?
            .map(VisitorConversation))
    }
}

/// The visitor's write operations.
#[derive(Default)]
pub struct VisitorMutation;

#[Object]
impl VisitorMutation {
    /// Opens a ticket from a ticket step (what the chatbot does when a visitor reaches it) and
    /// queues its e-mail notification in the same transaction. Widget and admin keys.
    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: OpenTicketInput,
    ) -> ApiResult<OpenTicketPayload> {
        let account = principal(ctx)?.account_id;
        let step_id = not_found_id("step", &input.step_id)?;
        let opened = domain::tickets::open_ticket(
            db(ctx)?,
            account,
            &OpenTicket {
                step_id,
                message: input.message,
                visitor: visitor_input(input.visitor),
            },
        )
        .await?;
        Ok(OpenTicketPayload {
            ticket: VisitorTicket(opened.ticket),
            confirmation_message: opened.confirmation_message,
        })
    }

    /// A visitor opens the chat: the bot's first messages and what it waits for. Widget and
    /// admin keys.
    async fn start_conversation(
        &self,
        ctx: &Context<'_>,
        input: StartConversationInput,
    ) -> ApiResult<ConversationTurn> {
        let account = principal(ctx)?.account_id;
        let flow_id = not_found_id("flow", &input.flow_id)?;
        let visitor = visitor_input(input.visitor);
        Ok(ConversationTurn(
            domain::conversations::start(db(ctx)?, account, flow_id, &visitor).await?,
        ))
    }

    /// The visitor answers a question. An invalid `name`, `email` or `phone` answer is asked
    /// again. `BAD_USER_INPUT` when the bot waits for a button or the conversation has ended;
    /// `CONVERSATION_EXPIRED` after the idle timeout. Widget and admin keys.
    async fn send_visitor_message(
        &self,
        ctx: &Context<'_>,
        input: VisitorMessageInput,
    ) -> ApiResult<ConversationTurn> {
        let account = principal(ctx)?.account_id;
        let id = not_found_id("conversation", &input.conversation_id)?;
        let idle = settings(ctx)?.conversation_idle;
        let turn = domain::conversations::send_message(
            db(ctx)?,
            account,
            id,
            &input.text,
            input.client_message_id.as_deref(),
            idle,
        )
        .await?;
        Ok(ConversationTurn(turn))
    }

    /// The visitor presses a button. `BAD_USER_INPUT` for an option not offered now, when the
    /// bot waits for text, or when the conversation has ended; `CONVERSATION_EXPIRED` after the
    /// idle timeout. Widget and admin keys.
    async fn choose_option(
        &self,
        ctx: &Context<'_>,
        input: ChooseOptionInput,
    ) -> ApiResult<ConversationTurn> {
        let account = principal(ctx)?.account_id;
        let id = not_found_id("conversation", &input.conversation_id)?;
        let option_id = parse_id(&input.option_id).ok_or_else(|| {
            domain::Error::invalid("optionId", "is not one of the options offered")
        })?;
        let idle = settings(ctx)?.conversation_idle;
        let turn = domain::conversations::choose_option(
            db(ctx)?,
            account,
            id,
            option_id,
            input.client_message_id.as_deref(),
            idle,
        )
        .await?;
        Ok(ConversationTurn(turn))
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
