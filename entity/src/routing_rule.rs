//! A routing rule: every new ticket whose topic equals `tag` (or every ticket, for `*`) is
//! mailed to the agents it names (`rule_agent`) and to `emails`.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "routing_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub tag: String,
    /// Lower-cased tag; `*` stays `*`.
    pub tag_key: String,
    /// JSON array of typed recipient addresses (agents are named through `rule_agent`).
    pub emails: Addresses,
    pub created_at: DateTimeUtc,
    /// Language of the e-mails this rule sends; null: the account's.
    pub locale: Option<Locale>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::AccountId",
        to = "super::account::Column::Id",
        on_delete = "Cascade"
    )]
    Account,
}

impl ActiveModelBehavior for ActiveModel {}
