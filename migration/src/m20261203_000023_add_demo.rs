//! `demo`: what the embedded first start made for a newcomer (its account, published flow and
//! widget key), so the API serves the demo page at `/` on every later start. The widget key is
//! kept readable here: a widget key is public by design (it goes into web pages), and this one
//! belongs to a demo account on a single machine's SQLite file. At most one row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Demo {
    Table,
    Id,
    AccountId,
    FlowId,
    WidgetKey,
    MailTo,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Demo::Table)
                .col(integer(Demo::Id).primary_key())
                .col(uuid(Demo::AccountId))
                .col(uuid(Demo::FlowId))
                .col(string(Demo::WidgetKey))
                .col(string(Demo::MailTo))
                .col(timestamp_with_time_zone(Demo::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Demo::Table, Demo::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Demo::Table).to_owned())
            .await
    }
}
