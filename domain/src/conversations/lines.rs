//! The lines of a conversation as stored, one row each: what a turn adds, the latest lines a
//! ticket keeps, a retried request's earlier turn, and whole transcripts for batch loading.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{conversation_message, ticket};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::{MAX_BOT_LINES_PER_TURN, Turn, current_options, find};
use crate::vocab::{Line, Sender};
use crate::{Error, Result};

/// The lines a turn adds, numbered on from the conversation's line count, and the latest
/// lines a ticket opened on this turn would keep.
pub(super) struct Said {
    pub(super) conversation_id: Uuid,
    pub(super) first_seq: i32,
    pub(super) at: DateTime<Utc>,
    pub(super) rows: Vec<conversation_message::ActiveModel>,
    /// Earlier lines (only loaded when the turn opens the ticket), then this turn's.
    pub(super) lines: Vec<Line>,
}

impl Said {
    pub(super) fn push(&mut self, sender: Sender, text: String, client_id: Option<String>) {
        self.rows.push(conversation_message::ActiveModel {
            id: Set(Uuid::now_v7()),
            conversation_id: Set(self.conversation_id),
            seq: Set(self.total()),
            sender: Set(sender),
            text: Set(text.clone()),
            client_message_id: Set(client_id),
            created_at: Set(self.at),
        });
        self.lines.push(Line {
            sender,
            text,
            at: self.at,
        });
    }

    /// Lines the conversation holds with the ones said so far on this turn.
    pub(super) fn total(&self) -> i32 {
        self.first_seq + self.rows.len() as i32
    }
}

/// The latest `n` lines of a conversation, oldest first.
pub(super) async fn latest_lines(
    db: &impl ConnectionTrait,
    id: Uuid,
    n: usize,
) -> Result<Vec<Line>> {
    let mut rows = conversation_message::Entity::find()
        .filter(conversation_message::Column::ConversationId.eq(id))
        .order_by_desc(conversation_message::Column::Seq)
        .limit(n as u64)
        .all(db)
        .await?;
    rows.reverse();
    Ok(rows
        .into_iter()
        .map(|m| Line {
            sender: m.sender,
            text: m.text,
            at: m.created_at,
        })
        .collect())
}

/// The turn an earlier request with this client message id produced, if there was one. Reads
/// that line and the few after it, not the transcript.
pub(super) async fn replay(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    client_message_id: Option<&str>,
) -> Result<Option<Turn>> {
    let Some(client_id) = client_message_id else {
        return Ok(None);
    };
    let Some(conversation) = find(db, account_id, id).await? else {
        return Err(Error::NotFound("conversation"));
    };
    let Some(sent) = conversation_message::Entity::find()
        .filter(conversation_message::Column::ConversationId.eq(id))
        .filter(conversation_message::Column::ClientMessageId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    // The bot's reply to it, and the visitor's next line if there is one: a turn says at most
    // MAX_BOT_LINES_PER_TURN lines.
    let after = conversation_message::Entity::find()
        .filter(conversation_message::Column::ConversationId.eq(id))
        .filter(conversation_message::Column::Seq.gt(sent.seq))
        .order_by_asc(conversation_message::Column::Seq)
        .limit(MAX_BOT_LINES_PER_TURN as u64 + 1)
        .all(db)
        .await?;
    let bot_messages: Vec<String> = after
        .iter()
        .take_while(|l| l.sender == Sender::Bot)
        .map(|l| l.text.clone())
        .collect();
    let next_visitor_at = after
        .iter()
        .find(|l| l.sender == Sender::Visitor)
        .map(|l| l.created_at);
    // The ticket is this turn's if it was opened after the line and before the next one.
    let ticket = match conversation.ticket_id {
        Some(tid) => ticket::Entity::find_by_id(tid).one(db).await?.filter(|t| {
            t.created_at >= sent.created_at && next_visitor_at.is_none_or(|n| n > t.created_at)
        }),
        None => None,
    };
    let awaiting = conversation.awaiting;
    let options = current_options(db, &conversation).await?;
    Ok(Some(Turn {
        conversation,
        bot_messages,
        awaiting,
        options,
        ticket,
    }))
}

/// The transcripts of conversations, for batch loading.
pub async fn transcripts(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Line>>> {
    let rows = conversation_message::Entity::find()
        .filter(conversation_message::Column::ConversationId.is_in(ids.iter().copied()))
        .order_by_asc(conversation_message::Column::ConversationId)
        .order_by_asc(conversation_message::Column::Seq)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<Line>> = HashMap::new();
    for m in rows {
        out.entry(m.conversation_id).or_default().push(Line {
            sender: m.sender,
            text: m.text,
            at: m.created_at,
        });
    }
    Ok(out)
}
