//! A ticket opened by a chatbot's ticket step. What routing and the e-mail need is copied from
//! the step and flow at opening, so later edits to the design do not change a ticket.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// Per-account sequence number shown to people (#1, #2, ...).
    pub number: i64,
    /// Null once the flow or step is deleted.
    pub flow_id: Option<Uuid>,
    pub step_id: Option<Uuid>,
    pub flow_name: String,
    pub topic: String,
    pub topic_key: String,
    /// `OPEN` until someone closes it; reopening puts it back.
    pub status: TicketStatus,
    pub message: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_phone: Option<String>,
    /// The step's forward addresses at opening (JSON array).
    pub forward_emails: Addresses,
    /// The conversation that opened it, for tickets opened by a running chatbot.
    pub conversation_id: Option<Uuid>,
    /// The conversation's transcript up to the ticket step (JSON array).
    pub transcript: Option<Transcript>,
    /// How many earlier lines of the conversation `transcript` leaves out to stay bounded
    /// (0: it is whole). The conversation itself keeps every line.
    pub transcript_omitted: i32,
    /// The answers the conversation collected (JSON object).
    pub answers: Option<Answers>,
    pub created_at: DateTimeUtc,
    /// When the worker resolved its recipients; null until then.
    pub routed_at: Option<DateTimeUtc>,
    /// When the visitor's data was erased from it (name, contact details, message, transcript,
    /// answers); null: never.
    pub erased_at: Option<DateTimeUtc>,
    /// The agent working on it; null: nobody (also once that agent is deleted).
    pub assignee_id: Option<Uuid>,
    /// What the person who closed it wrote; null while open.
    pub closing_note: Option<String>,
    /// When it was last closed; null while open.
    pub closed_at: Option<DateTimeUtc>,
    /// Whether the step it was opened at sends the visitor a confirmation.
    pub confirm_visitor: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::delivery::Entity")]
    Delivery,
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::AccountId",
        to = "super::account::Column::Id"
    )]
    Account,
}

impl Related<super::account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::delivery::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Delivery.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
