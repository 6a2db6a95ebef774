//! A visitor's conversation with a chatbot, running on one published flow version.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub flow_id: Uuid,
    pub flow_version_id: Uuid,
    pub status: ConversationStatus,
    /// The step waiting for the visitor (a question or choice step), if any.
    pub current_step_id: Option<Uuid>,
    pub awaiting: Awaiting,
    /// JSON object of the answers collected so far, by field.
    pub answers: Answers,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_phone: Option<String>,
    pub ticket_id: Option<Uuid>,
    /// Bumped by every turn; a turn only commits on the revision it read.
    pub revision: i32,
    /// The language of what the bot says on its own (re-asks, limits): `en` or `tr`, the
    /// account's default when the conversation started.
    pub locale: Locale,
    /// Visitor messages and button presses so far; capped (`MAX_VISITOR_TURNS`).
    pub visitor_turns: i32,
    /// Invalid answers re-asked at the question now waiting; capped (`MAX_REASKS`).
    pub reasks: i32,
    /// Transcript lines so far: the next line's `seq`, without counting the transcript.
    pub line_count: i32,
    pub created_at: DateTimeUtc,
    pub last_activity_at: DateTimeUtc,
    /// When the visitor's data was erased from it (contact details, answers, lines); null:
    /// never.
    pub erased_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::conversation_message::Entity")]
    Message,
}

impl Related<super::conversation_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
