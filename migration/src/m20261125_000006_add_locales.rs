use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Locale,
}

#[derive(DeriveIden)]
enum RoutingRules {
    Table,
    Locale,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Locale,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(Accounts::Table)
                .add_column(string(Accounts::Locale).default("en"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RoutingRules::Table)
                .add_column(string_null(RoutingRules::Locale))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .add_column(string_null(Deliveries::Locale))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .drop_column(Deliveries::Locale)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RoutingRules::Table)
                .drop_column(RoutingRules::Locale)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Accounts::Table)
                .drop_column(Accounts::Locale)
                .to_owned(),
        )
        .await
    }
}
