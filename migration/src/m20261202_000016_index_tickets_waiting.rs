//! A partial index of the tickets still waiting for routing, by account and age: the
//! per-account backlog of the operator's views (`domain::ops`) counts these without reading
//! the routed history, whose size grows for years while the waiting ones stay few (a flood's
//! backlog at most). Both engines have partial indexes.
//!
//! Built inside the migration's transaction, so it blocks ticket inserts while it reads the
//! tickets table; `IF NOT EXISTS` lets a large PostgreSQL deployment build it beforehand with
//! `CREATE INDEX CONCURRENTLY` (README, "Scale out on PostgreSQL").

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_tickets_waiting_for_routing";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX} ON tickets (account_id, created_at) \
                 WHERE routed_at IS NULL"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}"))
            .await?;
        Ok(())
    }
}
