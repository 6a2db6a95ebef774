//! One action taken on the machinery (pausing or resuming sending, putting a failed delivery
//! back, cancelling one), with who took it, when, on what and why. Kept for as long as its
//! account; actions on everyone have no account.

use sea_orm::entity::prelude::*;

use crate::values::OperatorActionKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operator_actions")]
pub struct Model {
    /// UUIDv7: ordering by id is ordering by time.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: DateTimeUtc,
    /// Who, as people read it (`operator`, `admin key tk_admin_AbCdEf`).
    pub actor: String,
    /// The account acted on; `None` for everyone.
    pub account_id: Option<Uuid>,
    pub action: OperatorActionKind,
    /// What it was done to (a delivery's or webhook delivery's id), if one thing.
    pub subject: Option<String>,
    pub reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
