//! An agent named by a routing rule: the rule mails the agent's address as it is when a
//! ticket is routed, and the link goes when either the rule or the agent does.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rule_agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub rule_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: Uuid,
    /// The agent's place among the rule's agents, from 0, as the form submitted them.
    pub position: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::routing_rule::Entity",
        from = "Column::RuleId",
        to = "super::routing_rule::Column::Id",
        on_delete = "Cascade"
    )]
    RoutingRule,
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id",
        on_delete = "Cascade"
    )]
    Agent,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}
