//! The account's agents: the people the routing form offers as recipients.

use entity::agent;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr,
};
use uuid::Uuid;

use crate::{Error, Result, limits, now, validate};

/// Adds an agent; the address must be new in the account (ignoring case).
pub async fn create_agent(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    name: &str,
    email: &str,
) -> Result<agent::Model> {
    let name = validate::name("name", name)?;
    let email = validate::email("email", email)?;
    limits::check::<agent::Entity>(
        db,
        agent::Column::AccountId.eq(account_id),
        "agents",
        limits::AGENTS,
    )
    .await?;
    let inserted = agent::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        name: Set(name),
        email_key: Set(email.to_lowercase()),
        email: Set(email),
        created_at: Set(now()),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(agent) => Ok(agent),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
            Error::invalid("email", "an agent with this e-mail address already exists"),
        ),
        Err(e) => Err(e.into()),
    }
}

/// The account's agents, by name.
pub async fn list_agents(db: &impl ConnectionTrait, account_id: Uuid) -> Result<Vec<agent::Model>> {
    Ok(agent::Entity::find()
        .filter(agent::Column::AccountId.eq(account_id))
        .order_by_asc(agent::Column::Name)
        .order_by_asc(agent::Column::Id)
        .all(db)
        .await?)
}
