//! Indexes that answer the operators' per-minute series from the last hour's rows only, however
//! many deliveries history holds: sent ones by `sent_at`, failed ones by `updated_at`, for all
//! accounts and for one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Deliveries {
    Table,
    AccountId,
    Status,
    SentAt,
    UpdatedAt,
}

/// Each index: its name and its columns after the status.
const INDEXES: [(&str, bool, Deliveries); 4] = [
    ("idx_deliveries_status_sent_at", false, Deliveries::SentAt),
    (
        "idx_deliveries_status_updated_at",
        false,
        Deliveries::UpdatedAt,
    ),
    (
        "idx_deliveries_account_status_sent_at",
        true,
        Deliveries::SentAt,
    ),
    (
        "idx_deliveries_account_status_updated_at",
        true,
        Deliveries::UpdatedAt,
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, per_account, at) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Deliveries::Table);
            if per_account {
                index.col(Deliveries::AccountId);
            }
            index.col(Deliveries::Status).col(at);
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _) in INDEXES {
            m.drop_index(Index::drop().name(name).table(Deliveries::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
