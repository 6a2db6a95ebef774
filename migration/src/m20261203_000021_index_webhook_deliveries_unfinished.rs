//! The webhook sweep (`domain::webhooks::sweep`) reads the unfinished webhook deliveries in id
//! order every round; finished ones are kept (for years, without a ticket retention), so it
//! reads them through this partial index, whose size follows the unfinished ones only.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_webhook_deliveries_unfinished";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX} ON webhook_deliveries (id) \
                 WHERE status IN ('PENDING', 'SENDING', 'RETRYING')"
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
