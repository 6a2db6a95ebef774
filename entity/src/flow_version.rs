//! An immutable, published snapshot of a flow's steps. Conversations run on one.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub flow_id: Uuid,
    pub account_id: Uuid,
    /// 1, 2, ... per flow.
    pub number: i32,
    /// The steps as they were when published (JSON array, in order).
    pub steps: PublishedSteps,
    pub published_at: DateTimeUtc,
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

impl ActiveModelBehavior for ActiveModel {}
