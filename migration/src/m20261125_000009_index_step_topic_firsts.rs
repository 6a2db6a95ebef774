//! The first step of each topic key of an account, by an index probe: what tag aggregation
//! shows as the tag's spelling.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    AccountId,
    TopicKey,
    CreatedAt,
    Id,
}

const NAME: &str = "idx_steps_account_topic_first";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name(NAME)
                .table(Steps::Table)
                .col(Steps::AccountId)
                .col(Steps::TopicKey)
                .col(Steps::CreatedAt)
                .col(Steps::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(NAME).table(Steps::Table).to_owned())
            .await
    }
}
