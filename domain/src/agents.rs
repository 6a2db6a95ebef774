//! The account's agents: the people routing rules name as recipients. A rule holds a
//! reference to each agent it names, so an agent's new address applies to every rule at once
//! and a deleted agent leaves every rule that named them.

use entity::agent;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, SqlErr,
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
    address_taken(inserted)
}

/// An insert or update of an agent, with the account's unique address as a field error.
fn address_taken(written: std::result::Result<agent::Model, DbErr>) -> Result<agent::Model> {
    match written {
        Ok(agent) => Ok(agent),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
            Error::invalid("email", "an agent with this e-mail address already exists"),
        ),
        // Deleted since it was read.
        Err(DbErr::RecordNotUpdated) => Err(Error::NotFound("agent")),
        Err(e) => Err(e.into()),
    }
}

/// Changes an agent's name and/or address (`None` keeps it). The rules that name the agent
/// mail the new address from the next ticket routed on; deliveries already planned keep the
/// address they were planned for.
pub async fn update_agent(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<agent::Model> {
    let name = name.map(|n| validate::name("name", n)).transpose()?;
    let email = email.map(|e| validate::email("email", e)).transpose()?;
    let existing = agent::Entity::find_by_id(id)
        .filter(agent::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("agent"))?;
    let mut model: agent::ActiveModel = existing.into();
    if let Some(name) = name {
        model.name = Set(name);
    }
    if let Some(email) = email {
        model.email_key = Set(email.to_lowercase());
        model.email = Set(email);
    }
    address_taken(model.update(db).await)
}

/// Deletes an agent: the rules that named them no longer do (a rule left with no recipient
/// says so, `hasRecipients`), and tickets assigned to them are unassigned.
pub async fn delete_agent(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> Result<Uuid> {
    let result = agent::Entity::delete_many()
        .filter(agent::Column::Id.eq(id))
        .filter(agent::Column::AccountId.eq(account_id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound("agent"));
    }
    Ok(id)
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

/// Agents by id, for batch loading; the caller has checked the account.
pub async fn agents_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, agent::Model>> {
    Ok(agent::Entity::find()
        .filter(agent::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect())
}
