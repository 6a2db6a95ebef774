use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    AccountId,
    Url,
    Events,
    Secret,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    AccountId,
    Event,
    Payload,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    LockedUntil,
    DeliveredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    WebhookDeliveryId,
    Attempt,
    StatusCode,
    Error,
    DurationMs,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Webhooks::Table)
                .col(pk_uuid(Webhooks::Id))
                .col(uuid(Webhooks::AccountId))
                .col(text(Webhooks::Url))
                .col(json(Webhooks::Events))
                .col(string(Webhooks::Secret))
                .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Webhooks::Table, Webhooks::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhooks_account")
                .table(Webhooks::Table)
                .col(Webhooks::AccountId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(pk_uuid(WebhookDeliveries::Id))
                .col(uuid(WebhookDeliveries::WebhookId))
                .col(uuid(WebhookDeliveries::AccountId))
                .col(string(WebhookDeliveries::Event))
                .col(text(WebhookDeliveries::Payload))
                .col(string(WebhookDeliveries::Status))
                .col(integer(WebhookDeliveries::Attempts).default(0))
                .col(text_null(WebhookDeliveries::LastError))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::NextAttemptAt,
                ))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::LockedUntil,
                ))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::DeliveredAt,
                ))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .col(timestamp_with_time_zone(WebhookDeliveries::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                        .to(Webhooks::Table, Webhooks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A webhook's deliveries, newest first, page by page.
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_webhook_id")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::WebhookId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(pk_uuid(WebhookAttempts::Id))
                .col(uuid(WebhookAttempts::WebhookDeliveryId))
                .col(integer(WebhookAttempts::Attempt))
                .col(integer_null(WebhookAttempts::StatusCode))
                .col(text_null(WebhookAttempts::Error))
                .col(integer(WebhookAttempts::DurationMs))
                .col(timestamp_with_time_zone(WebhookAttempts::At))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookAttempts::Table, WebhookAttempts::WebhookDeliveryId)
                        .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_attempts_delivery")
                .table(WebhookAttempts::Table)
                .col(WebhookAttempts::WebhookDeliveryId)
                .col(WebhookAttempts::Attempt)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}
