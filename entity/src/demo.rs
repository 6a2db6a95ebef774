//! The demo the embedded first start made (see the `demo` migration): at most one row.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "demo")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub account_id: Uuid,
    pub flow_id: Uuid,
    /// The demo account's widget key, which the demo page embeds (public by design).
    pub widget_key: String,
    /// Where the demo's `*` rule sends tickets.
    pub mail_to: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
