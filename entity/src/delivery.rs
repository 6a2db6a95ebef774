//! One e-mail of one ticket to one recipient: the record of truth for what was sent.

use sea_orm::entity::prelude::*;

use crate::values::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub account_id: Uuid,
    pub recipient: String,
    /// Lower-cased recipient; unique per ticket, which makes recipient resolution idempotent.
    pub recipient_key: String,
    /// JSON array of what put the recipient here: `{"kind":"rule","tag":..}` or `{"kind":"forward"}`.
    pub sources: Sources,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Our own Message-ID, stable across attempts.
    pub message_id: String,
    /// The SMTP server's reply when it accepted the mail.
    pub smtp_response: Option<String>,
    pub next_attempt_at: Option<DateTimeUtc>,
    /// While `SENDING`: until when the claiming worker owns the row.
    pub locked_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Language of the e-mail, chosen when the ticket was routed; null: English.
    pub locale: Option<Locale>,
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

impl Related<super::ticket::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Ticket.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
