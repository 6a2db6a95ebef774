//! Running chatbots: a visitor's conversation walks a published flow version step by step.
//! Reaching a ticket step opens the ticket exactly as `openTicket` does (same transaction
//! with its job), carrying the transcript and the answers.
//!
//! A turn reads the conversation, works out the bot's reply with [`walk`] (pure), and commits
//! only on the revision it read, so concurrent or retried requests never interleave. A visitor
//! message sent again with the same `client_message_id` gets the earlier turn back.
//!
//! A conversation is bounded, so no visitor can grow a ticket or its mail without limit: at
//! most [`MAX_VISITOR_TURNS`] visitor turns and [`MAX_REASKS`] re-asks of one question, hence at
//! most [`TRANSCRIPT_LINES`] lines; the ticket keeps the latest [`TICKET_TRANSCRIPT_LINES`]
//! lines within [`TICKET_TRANSCRIPT_CHARS`] characters. A turn reads counters on the
//! conversation row, never the transcript, so its cost does not grow with the conversation.

use std::time::Duration;

use entity::{account, conversation, conversation_message, flow, flow_version, ticket};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, SqlErr,
    TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::design::{self, successor};
use crate::tickets::{self, NewTicket, VisitorInput};
use crate::vocab::{
    Answers, Awaiting, ChoiceOption, ConversationStatus, PublishedStep, Sender, StepKind,
};
use crate::{Error, Result, now, validate};

mod lines;
mod script;

pub use lines::transcripts;
use lines::{Said, latest_lines, replay};
pub use script::{
    MAX_BOT_LINES_PER_TURN, MAX_REASKS, MAX_VISITOR_TURNS, MAX_WALK_LINES, Notice,
    TICKET_TRANSCRIPT_CHARS, TICKET_TRANSCRIPT_LINES, TRANSCRIPT_LINES, Walk, walk,
};
use script::{after_invalid, check_answer, close_at_turn_limit, ticket_window};

/// The bot's reply to one visitor action.
#[derive(Clone, Debug)]
pub struct Turn {
    pub conversation: conversation::Model,
    pub bot_messages: Vec<String>,
    pub awaiting: Awaiting,
    pub options: Vec<ChoiceOption>,
    /// Set on the turn that opened the ticket.
    pub ticket: Option<ticket::Model>,
}

struct Loaded {
    conversation: conversation::Model,
    version: flow_version::Model,
    steps: Vec<PublishedStep>,
}

/// One conversation of the account, or `None`.
pub async fn find(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<conversation::Model>> {
    Ok(conversation::Entity::find_by_id(id)
        .filter(conversation::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

async fn load(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    idle: Duration,
) -> Result<Loaded> {
    let conversation = find(db, account_id, id)
        .await?
        .ok_or(Error::NotFound("conversation"))?;
    if conversation.status == ConversationStatus::Expired || is_idle(&conversation, idle) {
        if conversation.status == ConversationStatus::Active {
            conversation::Entity::update_many()
                .col_expr(
                    conversation::Column::Status,
                    Expr::value(ConversationStatus::Expired),
                )
                .col_expr(
                    conversation::Column::Awaiting,
                    Expr::value(Awaiting::Nothing),
                )
                .filter(conversation::Column::Id.eq(id))
                .filter(conversation::Column::Revision.eq(conversation.revision))
                .exec(db)
                .await?;
        }
        return Err(Error::ConversationExpired);
    }
    let version = flow_version::Entity::find_by_id(conversation.flow_version_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("conversation"))?;
    let steps = version.steps.0.clone();
    Ok(Loaded {
        conversation,
        version,
        steps,
    })
}

fn is_idle(c: &conversation::Model, idle: Duration) -> bool {
    c.status == ConversationStatus::Active
        && chrono::Duration::from_std(idle).is_ok_and(|idle| c.last_activity_at + idle < now())
}

/// Starts a conversation on the flow's live (latest published) version.
pub async fn start<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    flow_id: Uuid,
    visitor: &VisitorInput,
) -> Result<Turn> {
    let visitor = tickets::validate_visitor(visitor)?;
    let flow = crate::flows::find_flow(db, account_id, flow_id)
        .await?
        .ok_or(Error::NotFound("flow"))?;
    let version = design::live_version(db, account_id, flow_id)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "flowId",
                "the flow has no published version; publish it first",
            )
        })?;
    let steps = version.steps.0.clone();
    // The bot's own words keep the language the conversation started in.
    let locale = account::Entity::find_by_id(account_id)
        .one(db)
        .await?
        .map(|a| a.locale)
        .unwrap_or_default();
    let started = now();
    let conversation = conversation::Model {
        id: Uuid::now_v7(),
        account_id,
        flow_id,
        flow_version_id: version.id,
        status: ConversationStatus::Active,
        current_step_id: None,
        awaiting: Awaiting::Nothing,
        answers: Answers::default(),
        visitor_name: visitor.name,
        visitor_email: visitor.email,
        visitor_phone: visitor.phone,
        ticket_id: None,
        revision: 0,
        locale,
        visitor_turns: 0,
        reasks: 0,
        line_count: 0,
        created_at: started,
        last_activity_at: started,
        erased_at: None,
    };
    let loaded = Loaded {
        conversation,
        version,
        steps,
    };
    let walked = walk(&loaded.steps, (!loaded.steps.is_empty()).then_some(0));
    let txn = crate::infra::db::begin(db).await?;
    // Deleted since it was read: a conversation starts on a flow that still exists (and its
    // running conversations keep its versions; `flows::delete_flow`).
    crate::flows::lock_flow(&txn, flow.id).await?;
    let model: conversation::ActiveModel = loaded.conversation.clone().into();
    let inserted = model.insert(&txn).await?;
    let loaded = Loaded {
        conversation: inserted,
        ..loaded
    };
    let turn = commit_turn(&txn, &flow, loaded, None, walked, None, 0)
        .await?
        .ok_or(Error::invalid(
            "flowId",
            "could not start the conversation; try again",
        ))?;
    txn.commit().await?;
    Ok(turn)
}

/// What the visitor did this turn.
struct VisitorLine {
    text: String,
    client_message_id: Option<String>,
}

/// The visitor types a message (an answer to a question).
pub async fn send_message<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
    text: &str,
    client_message_id: Option<&str>,
    idle: Duration,
) -> Result<Turn> {
    let client_message_id = client_id(client_message_id)?;
    if let Some(turn) = replay(db, account_id, id, client_message_id.as_deref()).await? {
        return Ok(turn);
    }
    let loaded = load(db, account_id, id, idle).await?;
    let state = loaded.conversation.awaiting;
    match state {
        Awaiting::Text => {}
        Awaiting::Choice => {
            return Err(Error::invalid(
                "text",
                "the bot is waiting for one of the options (chooseOption)",
            ));
        }
        Awaiting::Nothing => {
            return Err(Error::invalid(
                "conversationId",
                "the conversation has ended",
            ));
        }
    }
    let text = validate::message("text", text)?;
    let at = current_index(&loaded)?;
    let step = &loaded.steps[at];
    let field = step.field.clone().unwrap_or_default();
    let locale = loaded.conversation.locale;
    let (walked, answer, reasks) = match check_answer(&field, &text) {
        Ok(answer) => (
            walk(&loaded.steps, successor(&loaded.steps, at, step.next)),
            Some((field, answer)),
            0,
        ),
        Err(notice) => {
            let (walked, reasks) = after_invalid(
                &loaded.steps,
                at,
                notice,
                loaded.conversation.reasks,
                locale,
            );
            (walked, None, reasks)
        }
    };
    let flow = flow_of(db, &loaded).await?;
    let line = VisitorLine {
        text,
        client_message_id: client_message_id.clone(),
    };
    let txn = crate::infra::db::begin(db).await?;
    let turn = commit_turn(&txn, &flow, loaded, Some(line), walked, answer, reasks).await;
    finish(db, txn, turn, account_id, id, client_message_id.as_deref()).await
}

/// The visitor presses one of the buttons of a choice step.
pub async fn choose_option<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
    option_id: Uuid,
    client_message_id: Option<&str>,
    idle: Duration,
) -> Result<Turn> {
    let client_message_id = client_id(client_message_id)?;
    if let Some(turn) = replay(db, account_id, id, client_message_id.as_deref()).await? {
        return Ok(turn);
    }
    let loaded = load(db, account_id, id, idle).await?;
    match loaded.conversation.awaiting {
        Awaiting::Choice => {}
        Awaiting::Text => {
            return Err(Error::invalid(
                "optionId",
                "the bot is waiting for a text answer (sendVisitorMessage)",
            ));
        }
        Awaiting::Nothing => {
            return Err(Error::invalid(
                "conversationId",
                "the conversation has ended",
            ));
        }
    }
    let at = current_index(&loaded)?;
    let option = loaded.steps[at]
        .options
        .iter()
        .find(|o| o.id == option_id)
        .cloned()
        .ok_or_else(|| Error::invalid("optionId", "is not one of the options offered"))?;
    let next = match option.next {
        Some(target) => loaded.steps.iter().position(|s| s.id == target),
        None => successor(&loaded.steps, at, None),
    };
    let walked = walk(&loaded.steps, next);
    let flow = flow_of(db, &loaded).await?;
    let line = VisitorLine {
        text: option.label,
        client_message_id: client_message_id.clone(),
    };
    let txn = crate::infra::db::begin(db).await?;
    let turn = commit_turn(&txn, &flow, loaded, Some(line), walked, None, 0).await;
    finish(db, txn, turn, account_id, id, client_message_id.as_deref()).await
}

fn client_id(id: Option<&str>) -> Result<Option<String>> {
    validate::optional(id, |v| {
        if v.chars().count() > 200 || v.chars().any(char::is_control) {
            Err(Error::invalid(
                "clientMessageId",
                "must be at most 200 characters on one line",
            ))
        } else {
            Ok(v.to_owned())
        }
    })
}

/// Commits a turn, or explains a lost race: a request retried concurrently gets the turn its
/// twin committed.
async fn finish<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    txn: C::Transaction,
    turn: Result<Option<Turn>>,
    account_id: Uuid,
    id: Uuid,
    client_message_id: Option<&str>,
) -> Result<Turn> {
    match turn? {
        Some(turn) => {
            txn.commit().await?;
            if let Some(ticket) = &turn.ticket {
                crate::infra::events::published(
                    db,
                    crate::infra::events::Event::TicketOpened {
                        account_id: ticket.account_id,
                        ticket_id: ticket.id,
                    },
                );
            }
            Ok(turn)
        }
        None => {
            drop(txn);
            if let Some(turn) = replay(db, account_id, id, client_message_id).await? {
                return Ok(turn);
            }
            Err(Error::invalid(
                "conversationId",
                "the conversation moved on meanwhile; load it and try again",
            ))
        }
    }
}

fn current_index(loaded: &Loaded) -> Result<usize> {
    loaded
        .conversation
        .current_step_id
        .and_then(|id| loaded.steps.iter().position(|s| s.id == id))
        .ok_or(Error::invalid(
            "conversationId",
            "the conversation has ended",
        ))
}

/// The flow of the conversation's version, also when it has been deleted since: a running
/// conversation finishes on its version (`flows::delete_flow`).
async fn flow_of(db: &impl ConnectionTrait, loaded: &Loaded) -> Result<flow::Model> {
    flow::Entity::find_by_id(loaded.version.flow_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("flow"))
}

/// Writes the visitor's line, the bot's lines, the new state and, at a ticket step, the
/// ticket with its job - all on `txn`, and only if nobody else changed the conversation since
/// it was read. `reasks` is the re-ask count at the step the conversation then waits at.
async fn commit_turn(
    txn: &impl ConnectionTrait,
    flow: &flow::Model,
    loaded: Loaded,
    visitor_line: Option<VisitorLine>,
    mut walked: Walk,
    answer: Option<(String, String)>,
    reasks: i32,
) -> Result<Option<Turn>> {
    let Loaded {
        conversation: mut c,
        steps,
        ..
    } = loaded;
    let at = now();
    let read_revision = c.revision;
    // Written first: it takes the write lock and fails if another turn committed meanwhile.
    let claimed = conversation::Entity::update_many()
        .col_expr(
            conversation::Column::Revision,
            Expr::col(conversation::Column::Revision).add(1),
        )
        .col_expr(conversation::Column::LastActivityAt, Expr::value(at))
        .filter(conversation::Column::Id.eq(c.id))
        .filter(conversation::Column::Revision.eq(read_revision))
        .exec(txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    c.revision = read_revision + 1;
    c.last_activity_at = at;

    if let Some((field, value)) = answer {
        match field.as_str() {
            "name" => c.visitor_name = Some(value.clone()),
            "email" => c.visitor_email = Some(value.clone()),
            "phone" => c.visitor_phone = Some(value.clone()),
            _ => {}
        }
        c.answers.0.insert(field, value);
    }
    if visitor_line.is_some() {
        c.visitor_turns += 1;
        close_at_turn_limit(&mut walked, c.visitor_turns, c.locale);
    }
    c.reasks = if walked.waiting_at.is_some() {
        reasks
    } else {
        0
    };

    // Only a ticket opened on this turn needs earlier lines, and only as many as it keeps.
    let opens_ticket = walked.ticket_at.is_some() && c.ticket_id.is_none();
    let earlier = if opens_ticket {
        latest_lines(txn, c.id, TICKET_TRANSCRIPT_LINES).await?
    } else {
        Vec::new()
    };
    let mut said = Said {
        conversation_id: c.id,
        first_seq: c.line_count,
        at,
        rows: Vec::new(),
        lines: earlier,
    };
    if let Some(line) = visitor_line {
        said.push(Sender::Visitor, line.text, line.client_message_id);
    }
    let mut opened = None;
    for (i, text) in walked.bot.iter().enumerate() {
        if let Some((step_index, before)) = walked.ticket_at
            && before == i
            && c.ticket_id.is_none()
            && opened.is_none()
        {
            opened = Some(open_from(txn, flow, &c, &steps[step_index], &said).await?);
        }
        said.push(Sender::Bot, text.clone(), None);
    }
    if let Some((step_index, before)) = walked.ticket_at
        && before == walked.bot.len()
        && c.ticket_id.is_none()
        && opened.is_none()
    {
        opened = Some(open_from(txn, flow, &c, &steps[step_index], &said).await?);
    }
    if let Some(t) = &opened {
        c.ticket_id = Some(t.id);
    }
    debug_assert!(said.total() as usize <= TRANSCRIPT_LINES);
    c.line_count = said.total();
    if !said.rows.is_empty() {
        let inserted = conversation_message::Entity::insert_many(said.rows)
            .exec(txn)
            .await;
        if let Err(e) = inserted {
            // The same client message id committed by a concurrent twin of this request.
            if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                return Ok(None);
            }
            return Err(e.into());
        }
    }

    let (awaiting, options) = match walked.waiting_at {
        Some(i) if steps[i].kind == StepKind::Choice => {
            (Awaiting::Choice, steps[i].options.clone())
        }
        Some(_) => (Awaiting::Text, Vec::new()),
        None => (Awaiting::Nothing, Vec::new()),
    };
    c.awaiting = awaiting;
    c.current_step_id = walked.waiting_at.map(|i| steps[i].id);
    if walked.waiting_at.is_none() {
        c.status = ConversationStatus::Completed;
    }
    let mut model: conversation::ActiveModel = c.clone().into();
    model.revision = Set(c.revision);
    for column in [
        conversation::Column::Status,
        conversation::Column::CurrentStepId,
        conversation::Column::Awaiting,
        conversation::Column::Answers,
        conversation::Column::VisitorName,
        conversation::Column::VisitorEmail,
        conversation::Column::VisitorPhone,
        conversation::Column::TicketId,
        conversation::Column::VisitorTurns,
        conversation::Column::Reasks,
        conversation::Column::LineCount,
    ] {
        model.reset(column);
    }
    let c = model.update(txn).await?;
    Ok(Some(Turn {
        conversation: c,
        bot_messages: walked.bot,
        awaiting,
        options,
        ticket: opened,
    }))
}

/// Opens the conversation's ticket at a ticket step of its version, with the latest lines
/// said so far (bounded by [`ticket_window`]) and the visitor's lines among them as message.
async fn open_from(
    txn: &impl ConnectionTrait,
    flow: &flow::Model,
    c: &conversation::Model,
    step: &PublishedStep,
    said: &Said,
) -> Result<ticket::Model> {
    let kept = &said.lines[ticket_window(&said.lines)..];
    let omitted = said.total() - kept.len() as i32;
    let visitor_text: Vec<&str> = kept
        .iter()
        .filter(|l| l.sender == Sender::Visitor)
        .map(|l| l.text.as_str())
        .collect();
    let message = if visitor_text.is_empty() {
        "(the visitor wrote nothing; see the transcript)".to_owned()
    } else {
        visitor_text.join("\n")
    };
    tickets::insert_ticket(
        txn,
        c.account_id,
        NewTicket {
            flow_id: flow.id,
            flow_name: flow.name.clone(),
            step_id: step.id,
            topic: step.topic.clone().unwrap_or_default(),
            forward_emails: step.forward_emails.clone(),
            confirm_visitor: step.confirm_visitor,
            message,
            visitor: VisitorInput {
                name: c.visitor_name.clone(),
                email: c.visitor_email.clone(),
                phone: c.visitor_phone.clone(),
            },
            conversation_id: Some(c.id),
            transcript: Some(kept.to_vec().into()),
            transcript_omitted: omitted,
            answers: Some(c.answers.clone()),
        },
    )
    .await
}

/// The options the conversation's current choice step offers (empty unless awaiting a choice).
pub async fn current_options(
    db: &impl ConnectionTrait,
    c: &conversation::Model,
) -> Result<Vec<ChoiceOption>> {
    if c.awaiting != Awaiting::Choice {
        return Ok(Vec::new());
    }
    let Some(step_id) = c.current_step_id else {
        return Ok(Vec::new());
    };
    let version = flow_version::Entity::find_by_id(c.flow_version_id)
        .one(db)
        .await?;
    Ok(version
        .map(|v| v.steps.0)
        .and_then(|steps| steps.into_iter().find(|s| s.id == step_id))
        .map(|s| s.options)
        .unwrap_or_default())
}
