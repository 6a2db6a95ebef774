//! A tenant: one company with its own flows, agents, rules and tickets.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    /// Last ticket number handed out; bumped inside the transaction that opens a ticket.
    pub ticket_seq: i64,
    pub created_at: DateTimeUtc,
    /// Language of the account's notification e-mails (`en`, `tr`).
    pub locale: Locale,
    /// Days the account keeps a closed ticket (routed, every delivery ended); null: for ever.
    pub ticket_retention_days: Option<i32>,
    /// The round of the queue's fair pickup the account's next job goes in
    /// (`domain::infra::queue::ROUND_JOBS`).
    pub queue_round: i64,
    /// The account's jobs in that round so far.
    pub queue_round_jobs: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
