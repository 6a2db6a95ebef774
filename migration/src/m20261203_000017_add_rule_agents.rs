//! Routing rules name agents by reference (`rule_agents`), so an agent's new address applies
//! to every rule at once and a deleted agent leaves the rules that named them.
//!
//! Existing rules stored agents' addresses as typed text: each address that belongs to an
//! agent of the rule's account (ignoring case) becomes a reference to that agent, in the
//! order the rule listed them, and leaves the typed list. The conversion goes account by
//! account (only accounts with agents), so it holds one account's agents and rules at a time.

use std::collections::{HashMap, HashSet};

use sea_orm::{DatabaseBackend, JsonValue, Statement, Value, prelude::Uuid};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoutingRules {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RuleAgents {
    Table,
    RuleId,
    AgentId,
    Position,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too (sea-orm-migration uses one only on PostgreSQL):
    /// a conversion stopped halfway would leave some rules converted and the table made, and
    /// the next start could neither finish nor redo it.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RuleAgents::Table)
                .col(uuid(RuleAgents::RuleId))
                .col(uuid(RuleAgents::AgentId))
                .col(integer(RuleAgents::Position))
                .primary_key(
                    Index::create()
                        .col(RuleAgents::RuleId)
                        .col(RuleAgents::AgentId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(RuleAgents::Table, RuleAgents::RuleId)
                        .to(RoutingRules::Table, RoutingRules::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(RuleAgents::Table, RuleAgents::AgentId)
                        .to(Agents::Table, Agents::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Deleting an agent finds the links to remove by this index.
        m.create_index(
            Index::create()
                .name("idx_rule_agents_agent")
                .table(RuleAgents::Table)
                .col(RuleAgents::AgentId)
                .to_owned(),
        )
        .await?;
        convert_agent_addresses(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RuleAgents::Table).to_owned())
            .await
    }
}

async fn convert_agent_addresses(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let accounts = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT DISTINCT account_id FROM agents",
        ))
        .await?;
    for account in accounts {
        let account: Uuid = account.try_get("", "account_id")?;
        let mut agents: HashMap<String, Uuid> = HashMap::new();
        for row in db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT id, email_key FROM agents WHERE account_id = {}",
                    p(1)
                ),
                [account.into()],
            ))
            .await?
        {
            agents.insert(row.try_get("", "email_key")?, row.try_get("", "id")?);
        }
        let rules = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT id, emails FROM routing_rules WHERE account_id = {}",
                    p(1)
                ),
                [account.into()],
            ))
            .await?;
        for rule in rules {
            let id: Uuid = rule.try_get("", "id")?;
            let emails: JsonValue = rule.try_get("", "emails")?;
            let Some(emails) = emails.as_array() else {
                continue;
            };
            let mut named: Vec<Uuid> = Vec::new();
            let mut seen = HashSet::new();
            let mut typed: Vec<JsonValue> = Vec::new();
            for email in emails {
                match email.as_str().and_then(|e| agents.get(&e.to_lowercase())) {
                    Some(agent) => {
                        if seen.insert(*agent) {
                            named.push(*agent);
                        }
                    }
                    None => typed.push(email.clone()),
                }
            }
            if named.is_empty() {
                continue;
            }
            for (position, agent) in named.iter().enumerate() {
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "INSERT INTO rule_agents (rule_id, agent_id, position) VALUES ({}, {}, {})",
                        p(1),
                        p(2),
                        p(3)
                    ),
                    [
                        id.into(),
                        (*agent).into(),
                        Value::Int(Some(position as i32)),
                    ],
                ))
                .await?;
            }
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE routing_rules SET emails = {} WHERE id = {}",
                    p(1),
                    p(2)
                ),
                [
                    Value::Json(Some(Box::new(JsonValue::Array(typed)))),
                    id.into(),
                ],
            ))
            .await?;
        }
    }
    Ok(())
}
