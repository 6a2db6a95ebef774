//! An integration's HTTP endpoint, subscribed to some of the account's events.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub url: String,
    /// JSON array of event names (`ticket.opened`, ...).
    pub events: EventNames,
    /// The signing secret (`whsec_...`), kept to sign every request.
    pub secret: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
