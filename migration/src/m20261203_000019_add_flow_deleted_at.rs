//! A deleted flow keeps its row (with `deleted_at`) while conversations still run on its
//! published versions, so they can finish and open their tickets; the workers' retention
//! removes the row, and with it the versions, once no conversation is left on them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Flows {
    Table,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Flows::Table)
                .add_column(timestamp_with_time_zone_null(Flows::DeletedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Flows::Table)
                .drop_column(Flows::DeletedAt)
                .to_owned(),
        )
        .await
    }
}
