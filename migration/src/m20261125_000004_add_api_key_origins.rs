use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ApiKeyOrigins {
    Table,
    ApiKeyId,
    Origin,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ApiKeyOrigins::Table)
                .col(uuid(ApiKeyOrigins::ApiKeyId))
                .col(string(ApiKeyOrigins::Origin))
                .primary_key(
                    Index::create()
                        .col(ApiKeyOrigins::ApiKeyId)
                        .col(ApiKeyOrigins::Origin),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeyOrigins::Table, ApiKeyOrigins::ApiKeyId)
                        .to(ApiKeys::Table, ApiKeys::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A CORS preflight carries no key: it asks whether any key allows the origin.
        m.create_index(
            Index::create()
                .name("idx_api_key_origins_origin")
                .table(ApiKeyOrigins::Table)
                .col(ApiKeyOrigins::Origin)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ApiKeyOrigins::Table).to_owned())
            .await
    }
}
