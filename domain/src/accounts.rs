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
