//! A ticket step can send the visitor a confirmation with the ticket number
//! (`steps.confirm_visitor`, off by default); a ticket keeps the choice of the step it was
//! opened at. Confirmations are deliveries whose recipient key starts with `visitor:`; the
//! partial index counts an address's recent ones in an account (the hourly limit) without
//! adding to the cost of every other delivery.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    ConfirmVisitor,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    ConfirmVisitor,
}

const INDEX: &str = "idx_deliveries_visitor_confirmations";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too (sea-orm-migration uses one only on PostgreSQL):
    /// a start stopped between two changes would leave columns that the next attempt fails
    /// to add again.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Steps::Table)
                .add_column(boolean(Steps::ConfirmVisitor).default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .add_column(boolean(Tickets::ConfirmVisitor).default(false))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX} ON deliveries (account_id, recipient_key, created_at) \
                 WHERE recipient_key LIKE 'visitor:%'"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}"))
            .await?;
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .drop_column(Tickets::ConfirmVisitor)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Steps::Table)
                .drop_column(Steps::ConfirmVisitor)
                .to_owned(),
        )
        .await
    }
}
