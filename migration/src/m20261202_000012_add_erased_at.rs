//! When a visitor's data was erased from a ticket or a conversation (null: never), and how
//! long an account keeps its finished tickets (null: for ever).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tickets {
    Table,
    ErasedAt,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    ErasedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    TicketRetentionDays,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .add_column(timestamp_with_time_zone_null(Tickets::ErasedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Conversations::Table)
                .add_column(timestamp_with_time_zone_null(Conversations::ErasedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Accounts::Table)
                .add_column(integer_null(Accounts::TicketRetentionDays))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .drop_column(Tickets::ErasedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Conversations::Table)
                .drop_column(Conversations::ErasedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Accounts::Table)
                .drop_column(Accounts::TicketRetentionDays)
                .to_owned(),
        )
        .await
    }
}
