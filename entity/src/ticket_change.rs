//! One change a person made to a ticket (assigned, unassigned, closed, reopened), with who
//! made it: a line of the ticket's timeline. Goes with its ticket.

use sea_orm::entity::prelude::*;

use crate::values::ChangeKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub account_id: Uuid,
    pub at: DateTimeUtc,
    pub kind: ChangeKind,
    /// Who made it, as people read it (`admin key tk_admin_AbCdEf`).
    pub actor: String,
    /// The agent assigned, for `Assigned`; kept as a name too, for after the agent is gone.
    pub agent_id: Option<Uuid>,
    pub agent_name: Option<String>,
    /// The closing note, for `Closed`.
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::ticket::Entity",
        from = "Column::TicketId",
        to = "super::ticket::Column::Id",
        on_delete = "Cascade"
    )]
    Ticket,
}

impl ActiveModelBehavior for ActiveModel {}
