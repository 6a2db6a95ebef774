//! Sending paused by an operator or an admin: for everyone (`scope` `*`, no account) or for
//! one account (`scope` its id). While a row covers an account, workers set its due jobs
//! aside (`parked_jobs`) instead of running them; the row goes when sending is resumed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sending_pauses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    pub account_id: Option<Uuid>,
    pub paused_at: DateTimeUtc,
    /// Who paused it, as people read it (`operator`, `admin key tk_admin_AbCdEf`).
    pub paused_by: String,
    /// Set by the operator (only the operator lifts it), not by the account's admin.
    pub by_operator: bool,
    pub reason: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
