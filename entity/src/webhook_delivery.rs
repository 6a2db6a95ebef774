//! One event sent (or to be sent) to one webhook, with its state like a mail delivery's.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Also the `webhook-id` header: receivers de-duplicate on it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub account_id: Uuid,
    pub event: String,
    /// The JSON body, exactly as signed and sent on every attempt.
    pub payload: String,
    pub status: WebhookStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub locked_until: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
