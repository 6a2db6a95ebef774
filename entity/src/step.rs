//! A step of a flow. The `kind` column says which of the optional columns are set.

use sea_orm::entity::prelude::*;

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
    /// `message` or `ticket`.
    pub kind: String,
    /// What a message step says.
    pub text: Option<String>,
    /// Ticket steps: the topic tag as first typed.
    pub topic: Option<String>,
    /// Ticket steps: lower-cased topic, what matching and aggregation use.
    pub topic_key: Option<String>,
    pub confirmation_message: Option<String>,
    /// Ticket steps: JSON array of addresses that always get the ticket.
    pub forward_emails: Json,
    pub created_at: DateTimeUtc,
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
