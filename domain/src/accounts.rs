//! Account-wide settings.

use entity::account;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::vocab::Locale;
use crate::{Error, Result};

/// The account.
pub async fn find(db: &impl ConnectionTrait, account_id: Uuid) -> Result<account::Model> {
    account::Entity::find_by_id(account_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("account"))
}

/// The longest ticket retention an account may set: ten years.
pub const MAX_TICKET_RETENTION_DAYS: i32 = 3_650;

/// Sets how many days the account keeps a finished ticket (routed, every delivery ended) (`None`: for
/// ever, the default). Retention deletes older ones with their deliveries.
pub async fn set_ticket_retention(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    days: Option<i32>,
) -> Result<account::Model> {
    if let Some(days) = days
        && !(1..=MAX_TICKET_RETENTION_DAYS).contains(&days)
    {
        return Err(Error::invalid(
            "days",
            format!("between 1 and {MAX_TICKET_RETENTION_DAYS}, or null to keep tickets for ever"),
        ));
    }
    account::Entity::update_many()
        .col_expr(account::Column::TicketRetentionDays, Expr::value(days))
        .filter(account::Column::Id.eq(account_id))
        .exec(db)
        .await?;
    find(db, account_id).await
}

/// Sets the language of the account's notification e-mails; rules with a language of their
/// own keep it. Tickets routed from now on use it.
pub async fn set_locale(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    locale: Locale,
) -> Result<account::Model> {
    account::Entity::update_many()
        .col_expr(account::Column::Locale, Expr::value(locale))
        .filter(account::Column::Id.eq(account_id))
        .exec(db)
        .await?;
    find(db, account_id).await
}
