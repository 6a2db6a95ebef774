//! A step of a flow. The `kind` column says which of the optional columns are set.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub flow_id: Uuid,
    /// Copied from the flow so tag aggregation is one indexed query per account.
    pub account_id: Uuid,
    /// 0-based order inside the flow, kept dense.
    pub position: i32,
    /// `message`, `question`, `choice`, `ticket` or `end`.
    pub kind: StepKind,
    /// What the bot says at a message, question, choice or end step.
    pub text: Option<String>,
    /// Ticket steps: the topic tag as first typed.
    pub topic: Option<String>,
    /// Ticket steps: lower-cased topic, what matching and aggregation use.
    pub topic_key: Option<String>,
    pub confirmation_message: Option<String>,
    /// Ticket steps: JSON array of addresses that always get the ticket.
    pub forward_emails: Addresses,
    /// Where the conversation goes next; null means the following position.
    pub next_step_id: Option<Uuid>,
    /// Question steps: the answer's key (`name`, `email`, `phone` or any other).
    pub field: Option<String>,
    /// Choice steps: JSON array of `{id, label, next}` buttons.
    pub options: Option<ChoiceOptions>,
    pub created_at: DateTimeUtc,
    /// Ticket steps: mail the visitor a confirmation with the ticket number (when they gave
    /// an address). Off by default.
    pub confirm_visitor: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::flow::Entity",
        from = "Column::FlowId",
        to = "super::flow::Column::Id",
        on_delete = "Cascade"
    )]
    Flow,
}

impl Related<super::flow::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Flow.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
