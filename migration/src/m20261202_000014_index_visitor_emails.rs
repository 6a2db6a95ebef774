//! Indexes that find a visitor's tickets and conversations by e-mail address ignoring case,
//! for an erasure request (`domain::erasure`), without reading the account's whole history.
//! Expression indexes on `lower(visitor_email)`; both engines have them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str); 2] = [
    ("idx_tickets_account_email", "tickets"),
    ("idx_conversations_account_email", "conversations"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in INDEXES {
            m.get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX {name} ON {table} (account_id, lower(visitor_email))"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            m.get_connection()
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
