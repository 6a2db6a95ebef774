//! Indexes that keep work on history constant: the operators' per-minute series reads the
//! last hour's rows only (sent deliveries by `sent_at`, failed ones by `updated_at`, for all
//! accounts and for one), and retention finds idle conversations by `last_activity_at` and
//! an account's old tickets by `created_at`.

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

#[derive(DeriveIden)]
enum Tickets {
    Table,
    AccountId,
    CreatedAt,
}

const OLD_TICKETS: &str = "idx_tickets_account_created_at";

#[derive(DeriveIden)]
enum Conversations {
    Table,
    LastActivityAt,
}

const IDLE_CONVERSATIONS: &str = "idx_conversations_last_activity_at";

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
        m.create_index(
            Index::create()
                .name(OLD_TICKETS)
                .table(Tickets::Table)
                .col(Tickets::AccountId)
                .col(Tickets::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(IDLE_CONVERSATIONS)
                .table(Conversations::Table)
                .col(Conversations::LastActivityAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _) in INDEXES {
            m.drop_index(Index::drop().name(name).table(Deliveries::Table).to_owned())
                .await?;
        }
        m.drop_index(
            Index::drop()
                .name(OLD_TICKETS)
                .table(Tickets::Table)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name(IDLE_CONVERSATIONS)
                .table(Conversations::Table)
                .to_owned(),
        )
        .await
    }
}
